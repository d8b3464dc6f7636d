"""The FaceNet example end to end, on a small frozen graph with FaceNet's interface and an LFW-style folder.

The graph has the tensor names of FaceNet's Inception-ResNet-v1 (`input`, `phase_train`, the default
layers) and its stem's kernels, strides and paddings, two Inception-ResNet-A blocks and a Reduction-A block,
with 16 channels per convolution and BatchNorm switched by `phase_train` through `tf.cond`, frozen the way
FaceNet's models are (variables turned into constants).
"""

import logging
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

import facenet_activations
import facenet_recfield
from conftest import tf1
from test_lfw import make_lfw
from test_recfield import boxes_from_dependencies, chain_dependencies
from utils import facenet, lfw
from utils.layers import file_stem
from utils.visualize import describe_layer, measure_receptive_field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH_SIZE = 4
CHANNELS = 16  # enough that a probe is never masked by every channel at once


# -- a small FaceNet --------------------------------------------------------------------------------------

def conv_bn_relu(net, scope, kernel, phase_train, rng, stride=1, padding='SAME'):
    """A slim-style convolution: `<scope>/convolution`, `<scope>/BatchNorm/...` switched by `phase_train`,
    `<scope>/Relu`."""
    with tf1.variable_scope(scope):
        fan_in = kernel * kernel * int(net.shape[-1])
        weights = tf1.get_variable('weights', initializer=rng.normal(
            0, np.sqrt(2 / fan_in), (kernel, kernel, int(net.shape[-1]), CHANNELS)).astype(np.float32))
        convolution = tf.nn.conv2d(net, weights, stride, padding, name='convolution')
        with tf1.variable_scope('BatchNorm'):
            beta = tf1.get_variable('beta', initializer=rng.normal(0, 0.1, CHANNELS).astype(np.float32))
            moving_mean = tf1.get_variable('moving_mean', trainable=False,
                                           initializer=rng.normal(0, 0.1, CHANNELS).astype(np.float32))
            moving_variance = tf1.get_variable('moving_variance', trainable=False,
                                               initializer=rng.uniform(0.5, 2, CHANNELS).astype(np.float32))
            mean, variance = tf.cond(phase_train, lambda: tf.nn.moments(convolution, [0, 1, 2]),
                                     lambda: (tf.identity(moving_mean), tf.identity(moving_variance)))
            normalised = tf.nn.batch_normalization(convolution, mean, variance, beta, None, 1e-3)
        return tf.nn.relu(normalised, name='Relu')


def block35(net, scope, phase_train, rng):
    """Inception-ResNet-A: three branches of 1x1 and 3x3 convolutions, concatenated, added to the input."""
    with tf1.variable_scope(scope):
        branch_0 = conv_bn_relu(net, 'Branch_0/Conv2d_1x1', 1, phase_train, rng)
        branch_1 = conv_bn_relu(net, 'Branch_1/Conv2d_0a_1x1', 1, phase_train, rng)
        branch_1 = conv_bn_relu(branch_1, 'Branch_1/Conv2d_0b_3x3', 3, phase_train, rng)
        branch_2 = conv_bn_relu(net, 'Branch_2/Conv2d_0a_1x1', 1, phase_train, rng)
        branch_2 = conv_bn_relu(branch_2, 'Branch_2/Conv2d_0b_3x3', 3, phase_train, rng)
        branch_2 = conv_bn_relu(branch_2, 'Branch_2/Conv2d_0c_3x3', 3, phase_train, rng)
        mixed = tf.concat([branch_0, branch_1, branch_2], 3, name='concat')
        weights = rng.normal(0, np.sqrt(1 / (3 * CHANNELS)), (1, 1, 3 * CHANNELS, CHANNELS)).astype(np.float32)
        up = tf.nn.conv2d(mixed, tf1.get_variable('Conv2d_1x1/weights', initializer=weights), 1, 'SAME')
        return tf.nn.relu(tf.add(net, 0.17 * up, name='add'), name='Relu')


def reduction_a(net, phase_train, rng):
    """Reduction-A (`Mixed_6a`): a strided 3x3, a 1x1-3x3-strided 3x3 tower and a max-pool, concatenated."""
    with tf1.variable_scope('Mixed_6a'):
        branch_0 = conv_bn_relu(net, 'Branch_0/Conv2d_1a_3x3', 3, phase_train, rng, 2, 'VALID')
        branch_1 = conv_bn_relu(net, 'Branch_1/Conv2d_0a_1x1', 1, phase_train, rng)
        branch_1 = conv_bn_relu(branch_1, 'Branch_1/Conv2d_0b_3x3', 3, phase_train, rng)
        branch_1 = conv_bn_relu(branch_1, 'Branch_1/Conv2d_1a_3x3', 3, phase_train, rng, 2, 'VALID')
        branch_2 = tf.nn.max_pool2d(net, 3, 2, 'VALID', name='Branch_2/MaxPool_1a_3x3')
        return tf.concat([branch_0, branch_1, branch_2], 3, name='concat')


def build_small_facenet(seed=3):
    """The graph's ops, in a new graph; returns the graph."""
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, 160, 160, 3], name='input')
        phase_train = tf1.placeholder(tf.bool, [], name='phase_train')
        with tf1.variable_scope('InceptionResnetV1'):
            net = conv_bn_relu(images, 'Conv2d_1a_3x3', 3, phase_train, rng, 2, 'VALID')
            net = conv_bn_relu(net, 'Conv2d_2a_3x3', 3, phase_train, rng, 1, 'VALID')
            net = conv_bn_relu(net, 'Conv2d_2b_3x3', 3, phase_train, rng)
            net = tf.nn.max_pool2d(net, 3, 2, 'VALID', name='MaxPool_3a_3x3')
            net = conv_bn_relu(net, 'Conv2d_3b_1x1', 1, phase_train, rng, 1, 'VALID')
            net = conv_bn_relu(net, 'Conv2d_4a_3x3', 3, phase_train, rng, 1, 'VALID')
            net = conv_bn_relu(net, 'Conv2d_4b_3x3', 3, phase_train, rng, 2, 'VALID')
            with tf1.variable_scope('Repeat'):
                for index in (1, 2):
                    net = block35(net, f'block35_{index}', phase_train, rng)
            net = reduction_a(net, phase_train, rng)
        tf.math.l2_normalize(tf.reduce_mean(net, [1, 2]), 1, name='embeddings')
    return graph


def freeze(graph, path):
    """Writes the graph with its variables turned into constants, as FaceNet's `.pb` models are."""
    with graph.as_default(), tf1.Session(graph=graph) as session:
        session.run(tf1.global_variables_initializer())
        frozen = tf1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), ['embeddings'])
    with open(path, 'wb') as stream:
        stream.write(frozen.SerializeToString())


# -- the closed form ----------------------------------------------------------------------------------------

def conv(kernel, stride=1, padding='SAME'):
    return dict(kernel=kernel, stride=stride, padding=padding)


def expected_reads(length):
    """bool `[out, length]` dependencies along one axis of 160, for every default layer."""
    reads = {}
    stem = chain_dependencies(length, [conv(3, 2, 'VALID'), conv(3, 1, 'VALID'), conv(3)])
    reads['Conv2d_2b_3x3/convolution'] = stem
    stem = chain_dependencies(length, [conv(3, 2, 'VALID'), conv(1, 1, 'VALID'), conv(3, 1, 'VALID')], stem)
    reads['Conv2d_4a_3x3/convolution'] = stem
    net = chain_dependencies(length, [conv(3, 2, 'VALID')], stem)
    reads['Conv2d_4b_3x3/convolution'] = net
    for index in (1, 2):
        towers = [chain_dependencies(length, layers, net)
                  for layers in ([conv(1)], [conv(1), conv(3)], [conv(1), conv(3), conv(3)])]
        net = net | towers[0] | towers[1] | towers[2]  # residual add of the concatenated towers
        reads[f'Repeat/block35_{index}/add'] = net
    towers = [chain_dependencies(length, layers, net)
              for layers in ([conv(3, 2, 'VALID')], [conv(1), conv(3), conv(3, 2, 'VALID')], [conv(3, 2, 'VALID')])]
    reads['Mixed_6a/concat'] = towers[0] | towers[1] | towers[2]
    return {f'InceptionResnetV1/{name}:0': value for name, value in reads.items()}


# -- fixtures -----------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('model') / 'small-facenet.pb')
    freeze(build_small_facenet(), path)
    return path


@pytest.fixture(scope='module')
def lfw_folder(tmp_path_factory):
    return make_lfw(str(tmp_path_factory.mktemp('data')))


@pytest.fixture(scope='module')
def network(model_path):
    network = facenet.load_network(model_path)
    yield network
    network.session.close()


@pytest.fixture(scope='module')
def receptive_fields(network):
    """The measured receptive field of every default layer, phase_train fed False, batches of BATCH_SIZE."""
    layers = [network.session.graph.get_tensor_by_name(name) for name in facenet.DEFAULT_LAYERS]
    imshape = [BATCH_SIZE, 160, 160, 3]
    return {layer.name: (layer, measure_receptive_field(network.session, network.images_ph, layer, imshape,
                                                         facenet.VALUE_RANGE, network.feed_dict))
            for layer in layers}


def run_script(script, *args):
    result = subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope='module')
def activations_run(model_path, lfw_folder, tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp('activations'))
    lfw_dir, pairs_path = lfw_folder
    result = run_script('facenet_activations.py', '--model_path', model_path, '--lfw_dir', lfw_dir, '--pairs',
                        pairs_path, '--out_dir', out_dir, '--batch_size', str(BATCH_SIZE))
    return out_dir, result


# -- tests --------------------------------------------------------------------------------------------------

def test_network_interface(network):
    assert network.images_ph.name == 'input:0' and network.image_size == 160
    assert [tensor.name for tensor in network.feed_dict] == ['phase_train:0']
    assert list(network.feed_dict.values()) == [False]


def test_receptive_fields_match_the_closed_form(receptive_fields):
    reads = expected_reads(160)
    for name, (_, field) in receptive_fields.items():
        np.testing.assert_array_equal(field.recfield, boxes_from_dependencies(reads[name], reads[name]),
                                      err_msg=name)
        assert not field.whole_image, name
    # The largest boxes: FaceNet's receptive field sizes (the ones before Mixed_6a as in the real network,
    # which has five Inception-ResNet-A blocks where this one has two).
    largest = {name: field.max()[0] for name, (_, field) in receptive_fields.items()}
    assert list(largest.values()) == [11, 23, 31, 63, 127]


def test_phase_train_true_is_reported_as_whole_image(network, caplog):
    layer = network.session.graph.get_tensor_by_name(facenet.DEFAULT_LAYERS[0])
    phase_train = next(iter(network.feed_dict))
    with caplog.at_level(logging.WARNING, logger='recfield'):
        field = measure_receptive_field(network.session, network.images_ph, layer, [2, 160, 160, 3],
                                        facenet.VALUE_RANGE, {phase_train: True})
    assert field.whole_image and (field.recfield == [0, 0, 160, 160]).all()
    assert any('mixes images' in record.getMessage() and 'phase_train: False' in record.getMessage()
               for record in caplog.records)


def test_activations_script(activations_run, receptive_fields, network, lfw_folder):
    out_dir, result = activations_run
    # The same receptive fields as measured here, one line per layer.
    assert result.stdout.splitlines() == [describe_layer(layer, field) for layer, field in receptive_fields.values()]
    for name, (_, field) in receptive_fields.items():
        for kind, cell_width in (('full', 160), ('crop', field.max()[1])):
            picture = cv2.imread(os.path.join(out_dir, f'{file_stem(name)}-{kind}.jpg'))
            assert picture is not None, (name, kind)
            assert picture.shape[1] == 10 * (cell_width + 2), (name, kind)

    # The strongest face of each drawn channel is the one found here with phase_train False, from the images
    # of the pairs, cropped and prewhitened.
    paths = lfw.image_paths(*lfw_folder)
    inputs, display = (np.concatenate(parts) for parts in zip(*lfw.load_batches(paths, 160, 100)))
    name = 'InceptionResnetV1/Conv2d_4a_3x3/convolution:0'
    features = network.session.run(name, {network.images_ph: inputs, **network.feed_dict})
    firings = features.max(axis=(1, 2))  # [image, channel]
    channels = np.flatnonzero(firings.max(axis=0) > 0)[:10]
    picture = cv2.imread(os.path.join(out_dir, f'{file_stem(name)}-full.jpg')).astype(np.float32)
    top_row = picture[-5 * 162 + 1:-4 * 162 - 1]
    for column, channel in enumerate(channels):
        cell = top_row[:, column * 162 + 1:column * 162 + 161]
        distances = np.abs(display.astype(np.float32) - cell).mean(axis=(1, 2, 3))
        assert np.argmin(distances) == np.argmax(firings[:, channel]), channel


def test_recfield_script(model_path, receptive_fields, tmp_path):
    result = run_script('facenet_recfield.py', '--model_path', model_path, '--out_dir', str(tmp_path),
                        '--batch_size', str(BATCH_SIZE))
    assert result.stdout.splitlines() == [describe_layer(layer, field) for layer, field in receptive_fields.values()]
    for name, (_, field) in receptive_fields.items():
        drawn = cv2.imread(str(tmp_path / f'recfield-{file_stem(name)}.png'), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(drawn, field.draw_example())


def test_model_and_lfw_found_under_facenet_dir(model_path, lfw_folder, tmp_path, capsys, caplog):
    """--facenet_dir: data/pairs.txt picks the images; relative paths are looked for inside it."""
    facenet_dir = tmp_path / 'facenet'
    (facenet_dir / 'data').mkdir(parents=True)
    os.symlink(model_path, facenet_dir / 'model.pb')
    os.symlink(lfw_folder[0], facenet_dir / 'lfw')
    with open(lfw_folder[1]) as source, open(facenet_dir / 'data' / 'pairs.txt', 'w') as target:
        target.write(''.join(source.readlines()[:2]))  # header and one pair: two images
    common = ['--facenet_dir', str(facenet_dir), '--model_path', 'model.pb', '--out_dir', str(tmp_path / 'out')]
    assert facenet_recfield.main(common + ['--print_all_names']) == 0
    names = capsys.readouterr().out
    assert all(name in names for name in facenet.DEFAULT_LAYERS)

    layer = facenet.DEFAULT_LAYERS[0]
    with caplog.at_level(logging.INFO, logger='utils.lfw'):
        assert facenet_activations.main(common + ['--lfw_dir', 'lfw', '--layers', layer, '--num_samples', '2']) == 0
    assert f'2 images for the pairs of {facenet_dir / "data" / "pairs.txt"}' in caplog.text
    assert capsys.readouterr().out.startswith(layer)
    assert cv2.imread(str(tmp_path / 'out' / f'{file_stem(layer)}-full.jpg')).shape[0] > 2 * 162


def save_graph(path, names):
    """A frozen graph of placeholders with these names, and a convolution of the first."""
    graph = tf.Graph()
    with graph.as_default():
        placeholders = [tf1.placeholder(tf.float32, [None, 96, 96, 3], name=name) for name in names]
        tf.nn.conv2d(placeholders[0], tf.ones([3, 3, 3, 2]), 1, 'SAME', name='conv')
    with open(path, 'wb') as stream:
        stream.write(graph.as_graph_def().SerializeToString())
    return str(path)


def test_graph_without_phase_train_or_input(tmp_path):
    network = facenet.load_network(save_graph(tmp_path / 'plain.pb', ['input']))
    with network.session:
        assert network.feed_dict == {} and network.image_size == 96
    with pytest.raises(ValueError, match='no input tensor input:0; its placeholders are images, phase'):
        facenet.load_network(save_graph(tmp_path / 'other.pb', ['images', 'phase']))


@pytest.mark.parametrize('argv, words', [
    (['--layers', 'InceptionResnetV1/Conv2d_4a_3x3/Conv2D:0'], 'Did you mean InceptionResnetV1/Conv2d_4a_3x3/'),
    (['--model_path', 'missing.pb'], 'no model at missing.pb'),
], ids=['bad-layer', 'missing-model'])
def test_bad_flags_are_one_line_errors(model_path, tmp_path, capsys, argv, words):
    from utils.cli import run_main
    argv = ['--model_path', model_path, '--out_dir', str(tmp_path)] + argv
    assert run_main(facenet_recfield.main, argv) == 2
    assert words in capsys.readouterr().err


def test_activations_need_lfw_dir_except_to_print_names(model_path, tmp_path, capsys):
    from utils.cli import run_main
    argv = ['--model_path', model_path, '--out_dir', str(tmp_path)]
    assert run_main(facenet_activations.main, argv) == 2
    assert '--lfw_dir is required' in capsys.readouterr().err
    assert run_main(facenet_activations.main, argv + ['--print_all_names']) == 0
    assert 'InceptionResnetV1/Conv2d_2b_3x3/convolution:0' in capsys.readouterr().out
