"""Tests of `utils/base/layer_names.py`: finding `--layers` names in a graph, on a small graph of named layers."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import tf1
from utils.base.layer_names import computed_tensors, describe_tensors, file_stem, resolve_layers


@pytest.fixture(scope='module')
def small_graph():
    """images -> net/conv1/Conv2D -> net/conv1/Relu -> net/pool/MaxPool -> net/logits (2-D), plus constants."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, 8, 8, 3], name='images')
        with tf.name_scope('net/conv1/'):
            weights = tf.constant(np.ones((3, 3, 3, 4), np.float32), name='weights')
            relu = tf.nn.relu(tf.nn.conv2d(images, weights, 1, 'SAME'), name='Relu')
        with tf.name_scope('net/pool/'):
            pool = tf.nn.max_pool2d(relu, 2, 2, 'VALID', name='MaxPool')
        tf.reduce_mean(pool, axis=[1, 2], name='net/logits')
    return graph, images


def test_computed_tensors_follow_the_input_and_skip_constants(small_graph):
    graph, images = small_graph
    names = [tensor.name for tensor in computed_tensors(graph, images)]
    assert names[:2] == ['net/conv1/Conv2D:0', 'net/conv1/Relu:0']
    assert 'net/pool/MaxPool:0' in names and 'net/logits:0' in names
    assert not any('weights' in name or name.startswith('images') for name in names)


def test_describe_tensors_gives_name_and_shape(small_graph):
    graph, images = small_graph
    lines = describe_tensors(computed_tensors(graph, images)).splitlines()
    assert 'net/conv1/Relu:0 (None, 8, 8, 4)' in lines and 'net/pool/MaxPool:0 (None, 4, 4, 4)' in lines


def test_tensor_and_op_names_resolve(small_graph):
    graph, images = small_graph
    layers = resolve_layers(graph, ['net/pool/MaxPool:0', 'net/conv1/Relu'], images)
    assert [layer.name for layer in layers] == ['net/pool/MaxPool:0', 'net/conv1/Relu:0']


@pytest.mark.parametrize('name, words', [
    ('net/conv1/Relu:1', 'Did you mean net/conv1/Relu:0'),  # a close name
    ('MaxPool', 'Did you mean net/pool/MaxPool:0'),  # a part of the name
    ('fc7', 'No layer has a similar name'),
    ('net/conv1/weights:0', 'Did you mean'),  # a constant is not a layer
])
def test_unknown_names_suggest_close_ones(small_graph, name, words):
    graph, images = small_graph
    with pytest.raises(ValueError, match='--print_all_names') as error:
        resolve_layers(graph, [name], images)
    assert f'no layer {name!r}' in str(error.value) and words in str(error.value)


def test_layer_must_be_a_feature_map(small_graph):
    graph, images = small_graph
    with pytest.raises(ValueError, match=r'net/logits:0 has shape \(None, 4\).*feature map'):
        resolve_layers(graph, ['net/logits:0'], images)
    with pytest.raises(ValueError, match='no layers given'):
        resolve_layers(graph, [], images)


def test_file_stem():
    assert file_stem('vgg_16/conv1/conv1_2/Relu:0') == 'vgg_16-conv1-conv1_2-Relu0'
    assert file_stem('conv1') == 'conv1'
    # ONNX exports begin tensor names with '/': no file name may start like a command-line option.
    assert file_stem('/layer1/layer1.1/relu_1/Relu_output_0') == 'layer1-layer1.1-relu_1-Relu_output_0'
    assert file_stem('/') == 'layer'


def test_a_long_layer_name_gets_a_short_stem_of_its_own():
    # A 300-character name once failed only when its pictures were written, after the whole scan.
    long_name = 'block/' * 50 + 'Relu:0'
    stem = file_stem(long_name)
    assert len(stem.encode()) <= 200 and stem.startswith('block-block-')
    assert stem != file_stem(long_name.replace('Relu', 'Tanh'))
    assert file_stem('ünïcödé/' * 40 + 'x:0').encode().decode() and len(file_stem('ü' * 300).encode()) <= 200
    assert file_stem('a/b/Relu:0') == 'a-b-Relu0'
