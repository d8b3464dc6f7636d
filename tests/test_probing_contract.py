"""The forward-function contract (`utils.probing.contract`): the `layers` keyword, and the checks of one
returned feature map with the messages they raise."""

import numpy as np
import pytest

from utils.probing.contract import checked_map, takes_layers_keyword, what_came_back


def test_takes_layers_keyword():
    assert takes_layers_keyword(lambda batch, layers=None: batch)
    assert not takes_layers_keyword(lambda batch: batch)
    assert not takes_layers_keyword(type)  # a builtin without a signature


def test_what_came_back_counts_a_list_and_names_anything_else():
    assert what_came_back([1, 2]) == '2 values' and what_came_back((1,)) == '1 values'
    assert what_came_back(np.zeros(3)) == 'ndarray' and what_came_back(None) == 'NoneType'


def test_a_good_map_comes_back_as_an_array():
    feature_map = checked_map([[[[1.0, 2.0]]]] * 3, 'forward_func', 3, num_channels=2)
    assert isinstance(feature_map, np.ndarray) and feature_map.shape == (3, 1, 1, 2)
    assert checked_map(np.zeros((2, 4, 4, 5), np.int32), 'forward_func', 2).dtype == np.int32  # any channels


@pytest.mark.parametrize('result, words', [
    ([[1.0], [1.0, 2.0]], 'forward_func returned list, not a feature map array: '),
    (np.array(['a'] * 16).reshape(2, 2, 2, 2), 'forward_func returned ndarray of dtype <U1; it must return a numeric'),
    (np.zeros((2, 8)), r'forward_func returned an array of shape \(2, 8\); it must return a 4-D feature map'),
    (np.zeros((3, 4, 4, 1)), 'forward_func returned 3 feature maps for a batch of 2 images; it must return one per'),
])
def test_a_bad_map_is_refused_with_the_probers_messages(result, words):
    with pytest.raises(ValueError, match=words):
        checked_map(result, 'forward_func', 2)


@pytest.mark.parametrize('result, words', [
    (np.zeros((2, 8)), r'maxima_forward_func returned an array of shape \(2, 8\) for conv/Relu:0; it must return'),
    (np.zeros((3, 4, 4, 1)), 'maxima_forward_func returned 3 feature maps of conv/Relu:0 for a batch of 2 images'),
    (np.zeros((2, 6, 6, 1)), r'maxima_forward_func returned a map of shape \(2, 6, 6, 1\) for conv/Relu:0; '
                             r'expected \[2, height, width, 4\]\.'),
])
def test_a_bad_map_of_a_named_layer_is_refused_naming_it(result, words):
    with pytest.raises(ValueError, match=words):
        checked_map(result, 'maxima_forward_func', 2, layer_name='conv/Relu:0', num_channels=4)
