"""Tests of `utils/base/channel_statistics.py`: every statistic against brute force on small generated maxima, exact
merges of parts in any order, the quantiles' error bound, and class selectivity on a toy dataset with known classes."""

from fractions import Fraction

import numpy as np
import pytest

from activations import TopActivations
from utils.base.channel_statistics import (ARRAYS, PREFIX, QUANTILES, RELATIVE_ERROR, ChannelStatistics, ExactSums,
                                           float32_parts)


def generated_maxima(rng, num_images=300, num_channels=6):
    """float32 maxima of every kind: negative and positive, tiny (denormal) and huge, zeros, a dead channel."""
    scales = rng.choice([1e-42, 1e-20, 1.0, 3.0, 1e30], (num_images, num_channels))
    maxima = (rng.standard_normal((num_images, num_channels)) * scales).astype(np.float32)
    maxima[:, 1] = np.maximum(maxima[:, 1], 0)  # a ReLU: zeros
    maxima[:, 2] = 0  # never fires
    maxima[:, 3] = np.float32(2.5)  # the same on every image
    return maxima


def assert_same_statistics(statistics, expected):
    arrays, expected_arrays = statistics.to_arrays(), expected.to_arrays()
    for name in ARRAYS:
        np.testing.assert_array_equal(arrays[PREFIX + name], expected_arrays[PREFIX + name], err_msg=name)


def test_statistics_are_those_of_the_maxima_computed_one_by_one(rng):
    maxima = generated_maxima(rng)
    statistics = ChannelStatistics(maxima.shape[1])
    for start in range(0, len(maxima), 64):
        statistics.update(maxima[start:start + 64])
    exact = maxima.astype(np.float64)
    assert statistics.num_images == len(maxima)
    np.testing.assert_array_equal(statistics.firing_counts, (maxima > 0).sum(axis=0))
    np.testing.assert_array_equal(statistics.never_firing, [2])
    exact_means = [float(sum(map(Fraction, column.tolist())) / len(column)) for column in exact.T]
    np.testing.assert_allclose(statistics.means(), exact_means, rtol=1e-15)  # exact sums, then float64
    np.testing.assert_allclose(statistics.stds(), exact.std(axis=0), rtol=1e-12)
    assert statistics.stds()[3] == 0 and statistics.means()[3] == 2.5
    ranked = np.sort(exact, axis=0)
    for column, percent in enumerate(QUANTILES):
        true = ranked[max(1, -(-percent * len(maxima) // 100)) - 1]
        estimate = statistics.quantiles()[:, column]
        assert ((estimate == 0) == (true == 0)).all() and (np.sign(estimate) == np.sign(true)).all()
        np.testing.assert_array_less(np.abs(estimate - true), RELATIVE_ERROR * np.abs(true) * (1 + 1e-12) + 1e-300)


def test_parts_merged_in_any_order_give_the_arrays_of_one_scan(rng):
    maxima = generated_maxima(rng)
    whole = ChannelStatistics(maxima.shape[1]).update(maxima)
    bounds = [0, 1, 37, 150, 151, len(maxima)]
    parts = [ChannelStatistics(maxima.shape[1]).update(maxima[start:stop]) for start, stop in zip(bounds, bounds[1:])]
    forwards, backwards = ChannelStatistics(), ChannelStatistics()
    for part in parts:
        forwards.merge(part)
    for part in parts[::-1]:
        backwards.merge(part)
    for merged in (forwards, backwards):
        assert_same_statistics(merged, whole)
        np.testing.assert_array_equal(merged.quantiles(), whole.quantiles())
        np.testing.assert_array_equal(merged.stds(), whole.stds())


def test_exact_sums_carry_and_borrow_to_the_exact_total():
    values = np.array([2.0 ** 100, 1.0, -2.0 ** 100, 2.0 ** -140, -1.0, 3.0], np.float32)
    sums = ExactSums(1)
    for value in values:  # one at a time: every carry and borrow through the digits
        mantissas, exponents = float32_parts(np.array([value], np.float32))
        sums.add_values(np.zeros(1, np.int64), mantissas, exponents)
    assert sums.totals()[0] == 3.0 + 2.0 ** -140
    assert (sums.values[0, :-1] >= 0).all() and (sums.values[0, :-1] < 1 << 16).all()


@pytest.mark.parametrize('value', [1.0, 1.0078125, np.nextafter(np.float32(2), np.float32(0)), 3e-45, 1e-38, 0.1,
                                   -0.75, 3.4e38])
def test_a_quantile_is_within_the_relative_error_of_the_value_at_bucket_edges(value):
    statistics = ChannelStatistics(1).update(np.array([[value]], np.float32))
    true = float(np.float32(value))
    assert abs(statistics.quantiles()[0, 0] - true) <= RELATIVE_ERROR * abs(true) * (1 + 1e-12)  # float64 rounding


def test_a_channel_that_fires_on_one_class_only_has_selectivity_1():
    labels = np.array([0, 1, 2, 0, 1, 2, 1, 1])
    maxima = np.zeros((len(labels), 3), np.float32)
    maxima[:, 0] = np.where(labels == 1, 4.0, 0)  # class 1 only
    maxima[:, 1] = 2.0  # every class alike
    maxima[:, 2] = np.array([1, 2, 3, 4, 5, 6, 7, 8], np.float32)
    statistics = ChannelStatistics(3, ['cat', 'dog', 'eel']).update(maxima[:5], labels[:5])
    statistics.merge(ChannelStatistics(3, ['cat', 'dog', 'eel']).update(maxima[5:], labels[5:]))
    means = np.array([[maxima[labels == label, channel].mean() for label in range(3)] for channel in range(3)])
    np.testing.assert_allclose(statistics.class_means(), means)
    largest = means.max(axis=1)
    rest = (means.sum(axis=1) - largest) / 2
    np.testing.assert_allclose(statistics.selectivities(), (largest - rest) / (largest + rest))
    assert statistics.selectivities()[0] == 1 and statistics.selectivities()[1] == 0


def test_selectivity_needs_two_classes_and_a_channel_that_fires():
    maxima = np.array([[0, 1], [0, 2]], np.float32)
    assert np.isnan(ChannelStatistics(2, ['a']).update(maxima, [0, 0]).selectivities()).all()
    assert np.isnan(ChannelStatistics(2).update(maxima).selectivities()).all()
    two = ChannelStatistics(2, ['a', 'b']).update(maxima, [0, 1])
    assert np.isnan(two.selectivities()[0]) and two.selectivities()[1] == pytest.approx(1 / 3)


def test_labels_must_name_a_class_of_every_image():
    statistics = ChannelStatistics(1, ['a', 'b'])
    for labels in (None, [0], [0, 2], [-1, 0]):
        with pytest.raises(ValueError, match="give every image's class, 0 to 1"):
            statistics.update(np.ones((2, 1), np.float32), labels)
    with pytest.raises(ValueError, match='classes'):
        ChannelStatistics(1, ['a']).merge(ChannelStatistics(1, ['b']).update(np.ones((1, 1)), [0]))


def test_a_tracker_keeps_the_statistics_and_classes_of_its_images_through_save_and_merge(rng, tmp_path):
    features = rng.standard_normal((10, 3, 3, 2)).astype(np.float32)
    images = rng.integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1])
    whole = TopActivations(2, class_names=['a', 'b']).update(images, features, labels=labels)
    first = TopActivations(2, class_names=['a', 'b']).update(images[:4], features[:4], labels=labels[:4])
    second = TopActivations(2, 4, class_names=['a', 'b']).update(images[4:], features[4:], labels=labels[4:])
    first.save(tmp_path / 'first.npz')
    merged = TopActivations.load(tmp_path / 'first.npz').merge(second)
    assert_same_statistics(merged.statistics, whole.statistics)
    assert_same_statistics(whole.statistics, ChannelStatistics(2, ['a', 'b']).update(features.max(axis=(1, 2)), labels))
    for channel in range(2):
        assert merged.entry_classes(channel) == whole.entry_classes(channel) == [
            'ab'[labels[index]] for index in whole.indices[channel]]
    assert TopActivations(2).update(images, features).entry_classes(0) is None
