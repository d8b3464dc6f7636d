"""Tests of `utils/models/tf_session.py`: the maps' maxima in the graph against numpy, the forward functions built on
them, the thread counts, weights fed to variables, and the TensorFlow settings of `utils/__init__.py`."""

import argparse
import os
import subprocess
import sys

import numpy as np
import pytest

import recfield
from conftest import REPO, build_session, tf1
from keras_fixtures import build_sequential
from utils.base.quiet_tf import tf
from utils.base.threads import thread_counts
from utils.core.model import Model
from utils.models import keras_file
from utils.models.tf_session import (FedWeights, channel_maxima, find_layers, global_pools, held_forward_func,
                                      limit_eager_threads, print_tensor_names, session_config, session_forward_funcs)
from utils.running import cli


def build_maxima():
    """A map placeholder `[None, 5, 7, 4]` and its `channel_maxima`."""
    feature_map = tf1.placeholder(tf.float32, [None, 5, 7, 4])
    return feature_map, channel_maxima(feature_map)


def test_maxima_equal_numpys_also_with_nan_and_infinities(rng):
    session, (feature_map, maxima) = build_session(build_maxima)
    maps = rng.normal(size=(6, 5, 7, 4)).astype(np.float32)
    maps[2, 1, 3, 0] = np.nan
    maps[3, ..., 1] = -np.inf
    maps[4, 0, 6, 2] = np.inf
    with session:
        np.testing.assert_array_equal(session.run(maxima, {feature_map: maps}), maps.max(axis=(1, 2)))


def build_two_layers():
    """images `[None, 5, 7, 2]` -> conv (ReLU of the images and their negation: ties at 0) -> pool; and the mean."""
    images = tf1.placeholder(tf.float32, [None, 5, 7, 2], name='images')
    scale = tf1.placeholder_with_default(1.0, [], name='scale')
    conv = tf.nn.relu(tf.concat([images, -images], axis=-1) * scale, name='conv')
    pool = tf.nn.max_pool2d(conv, 2, 1, 'VALID', name='pool')
    return images, scale, [conv, pool], tf.reduce_mean(pool, name='mean')


def test_session_functions_give_the_maps_and_their_maxima(rng):
    session, (images, scale, layers, mean) = build_session(build_two_layers)
    with session:
        forward_func, maxima_forward_func = session_forward_funcs(session, images, layers, {scale: 2.0},
                                                                  run_also=[mean])
        batch = np.round(rng.normal(size=(4, 5, 7, 2)), 1).astype(np.float32)
        maps = forward_func(batch)
        assert len(maps) == 2 and np.array_equal(maps[0], session.run(layers[0], {images: batch, scale: 2.0}))
        assert len(forward_func(batch, layers=layers[1:])) == 1
        pairs = maxima_forward_func(batch)
    assert len(pairs) == 2
    for (feature_map, maxima), expected in zip(pairs, maps):
        np.testing.assert_array_equal(feature_map, expected)
        np.testing.assert_array_equal(maxima, expected.max(axis=(1, 2)))


def test_keras_maxima_forward_function_gives_the_maps_and_their_maxima(rng):
    model = build_sequential()
    layers = [model.get_layer('conv1'), model.get_layer('pool1')]
    batch = rng.normal(size=(3, 32, 32, 3)).astype(np.float32)
    maps = keras_file.forward_function(model, layers)(batch)
    pairs = keras_file.maxima_forward_function(model, layers)(batch)
    assert len(pairs) == 2
    for (feature_map, maxima), expected in zip(pairs, maps):
        np.testing.assert_array_equal(feature_map, expected)
        np.testing.assert_array_equal(maxima, expected.max(axis=(1, 2)))


def test_thread_counts_come_from_the_environment(monkeypatch):
    monkeypatch.delenv('TF_NUM_INTRAOP_THREADS', raising=False)
    monkeypatch.setenv('TF_NUM_INTEROP_THREADS', '1')
    assert thread_counts() == (0, 1)
    config = session_config()
    assert (config.intra_op_parallelism_threads, config.inter_op_parallelism_threads) == (0, 1)
    monkeypatch.setenv('TF_NUM_INTRAOP_THREADS', 'two')
    with pytest.raises(ValueError, match="TF_NUM_INTRAOP_THREADS='two' is not a thread count"):
        session_config()


def test_eager_threads_already_running_are_kept_with_a_warning(monkeypatch, caplog):
    tf.constant(1.0) + 1  # the eager runtime runs: its thread pools exist
    current = tf.config.threading.get_intra_op_parallelism_threads()
    monkeypatch.setenv('TF_NUM_INTRAOP_THREADS', str(current + 1))
    monkeypatch.delenv('TF_NUM_INTEROP_THREADS', raising=False)
    limit_eager_threads()
    assert tf.config.threading.get_intra_op_parallelism_threads() == current
    assert f'asks for {current + 1}' in caplog.text


def fed_conv_session(kernel, bias, fed):
    """A session of images `[None, 9, 9, 3]` -> 3x3 conv + bias + ReLU, the weights held by `fed` (a
    `FedWeights`, initialised) or, with `fed` None, by constants. Returns `(session, images, output)`."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, 9, 9, 3])
        weights = [fed.variable(kernel, 'kernel'), fed.variable(bias, 'bias')] if fed else [kernel, bias]
        output = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(images, weights[0], 1, 'SAME'), weights[1]))
        if fed:
            fed.add_digest('weights_sha256')
    session = tf1.Session(graph=graph)
    if fed:
        fed.initialize(session)
    return session, images, output


def test_fed_weights_give_the_maps_of_constants_and_leave_the_values_out_of_the_graph(rng):
    kernel = rng.normal(size=(3, 3, 3, 8)).astype(np.float32)
    bias = rng.normal(size=8).astype(np.float32)
    batch = rng.normal(size=(2, 9, 9, 3)).astype(np.float32)
    maps = []
    for fed in (None, FedWeights()):
        session, images, output = fed_conv_session(kernel, bias, fed)
        with session:
            maps.append(session.run(output, {images: batch}))
            graph_def = session.graph.as_graph_def().SerializeToString()
        assert (kernel.tobytes() in graph_def) == (fed is None)
    assert maps[1].any()
    np.testing.assert_array_equal(maps[1], maps[0])


def test_the_graph_of_fed_weights_tells_weights_apart_by_their_digest(rng):
    kernel = rng.normal(size=(3, 3, 3, 8)).astype(np.float32)
    bias = np.zeros(8, np.float32)

    def fingerprint(kernel):
        session, images, output = fed_conv_session(kernel, bias, FedWeights())
        with session:
            return Model(lambda batch: [session.run(output, {images: batch})], [output], [2, 9, 9, 3],
                         (-1.0, 1.0)).fingerprint()

    changed = kernel.copy()
    changed[1, 1, 0, 0] += 1.0
    assert fingerprint(kernel) == fingerprint(kernel.copy()) != fingerprint(changed)


def run_python(code, *args, **environment):
    """Runs `python -c code args` from the repository root with these environment variables (None: unset);
    returns its stdout."""
    env = dict(os.environ)
    for variable, value in environment.items():
        if value is None:
            env.pop(variable, None)
        else:
            env[variable] = value
    result = subprocess.run([sys.executable, '-c', code, *args], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize('value, expected', [(None, '1'), ('0', '0')])
def test_importing_utils_turns_onednn_on_unless_the_environment_says(value, expected):
    code = 'import os, utils; print(os.environ["TF_ENABLE_ONEDNN_OPTS"])'
    assert run_python(code, TF_ENABLE_ONEDNN_OPTS=value).strip() == expected


VGG16_MAPS = """
import argparse, sys
import numpy as np
from utils.examples import vgg16
names = [vgg16.relu_tensor_name(1, 2), vgg16.relu_tensor_name(3, 3)]
model = vgg16.open_model(argparse.Namespace(layers=names, image_size=64, batch_size=4))
batch = np.random.default_rng(1).uniform(*model.value_range, (4, 64, 64, 3)).astype(np.float32)
np.savez(sys.argv[1], *model.run(batch))
model.close()
"""


def vgg16_maps(path, threads, onednn):
    """conv1_2 and conv3_3 of VGG16 on a random batch, computed in a subprocess with AVX2 kernels on `threads`
    threads; `onednn` None leaves TF_ENABLE_ONEDNN_OPTS unset (`import utils` then sets it)."""
    run_python(VGG16_MAPS, path, TF_ENABLE_ONEDNN_OPTS=onednn, ONEDNN_MAX_CPU_ISA='AVX2',
               TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS=threads)
    with np.load(path) as arrays:
        return [arrays[name] for name in sorted(arrays.files)]


@pytest.mark.slow
def test_vgg16_maps_are_the_same_bits_on_one_and_two_threads_with_avx2_kernels(tmp_path):
    """What makes a shard on a one-thread Dask worker give the firings of a two-thread single run on an AVX2
    CPU: oneDNN's kernels, which `import utils` asks for. TensorFlow's Eigen kernels, its default on such CPUs,
    split the sums among threads, so their last bits change with the thread count."""
    one_thread, two_threads = (vgg16_maps(str(tmp_path / f'{threads}.npz'), threads, None) for threads in '12')
    assert [feature_map.shape for feature_map in one_thread] == [(4, 64, 64, 64), (4, 16, 16, 256)]
    for one, two in zip(one_thread, two_threads):
        np.testing.assert_array_equal(one, two)
    eigen = [vgg16_maps(str(tmp_path / f'eigen-{threads}.npz'), threads, '0') for threads in '12']
    assert any((one != two).any() for one, two in zip(*eigen))  # what the setting is for


@pytest.fixture(scope='module')
def conv_graph():
    """`(graph, images)`: images [None, 8, 8, 3] -> conv [None, 8, 8, 2]."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, 8, 8, 3], name='images')
        tf.nn.conv2d(images, tf.ones([3, 3, 3, 2]), 1, 'SAME', name='conv')
    return graph, images


def test_find_layers_finds_the_layers_and_writes_nothing(conv_graph, tmp_path):
    graph, images = conv_graph
    args = _flags(['--layers', 'conv', '--out_dir', str(tmp_path / 'out'),
                                               '--tensorboard_dir', str(tmp_path / 'logs')])
    assert [layer.name for layer in find_layers(graph, images, args)] == ['conv:0']
    assert list(tmp_path.iterdir()) == []


def test_print_tensor_names_prints_every_tensor_from_the_input_with_its_shape(conv_graph, capsys):
    print_tensor_names(*conv_graph)
    assert capsys.readouterr().out == 'conv:0 (None, 8, 8, 2)\n'


def test_find_layers_names_an_unknown_layer(conv_graph):
    args = _flags(['--layers', 'conv:0,conv:1'])
    with pytest.raises(ValueError, match="no layer 'conv:1'"):
        find_layers(*conv_graph, args)


def _flags(argv):
    """The flags of an `*_activations.py` script."""
    parser = argparse.ArgumentParser()
    cli.add_common_arguments(parser, ['net/conv1:0'], '/tmp/out')
    cli.add_activation_arguments(parser)
    return parser.parse_args(argv)


def test_a_graph_with_squeeze_and_excitation_gets_local_fields_and_the_scan_the_whole_network():
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, 24, 24, 3], name='images')
        c1 = tf.nn.relu(tf.nn.conv2d(images, rng.normal(size=(3, 3, 3, 4)).astype('float32'), 1, 'SAME'), name='c1')
        pooled = tf.reduce_mean(c1, [1, 2], keepdims=True, name='pooled')
        gate = tf.sigmoid(tf.nn.conv2d(pooled, rng.normal(size=(1, 1, 4, 4)).astype('float32'), 1, 'SAME'))
        scaled = tf.multiply(c1, gate, name='scaled')
        c2 = tf.nn.relu(tf.nn.conv2d(scaled, rng.normal(size=(3, 3, 4, 4)).astype('float32'), 1, 'SAME'), name='c2')
    layers = [c1, pooled, scaled, c2]
    with tf1.Session(graph=graph) as session:
        assert [tensor.name for tensor in global_pools(graph, images)] == ['pooled:0']
        forward_func, _ = session_forward_funcs(session, images, layers)
        local_forward_func, local_layers = held_forward_func(session, images, layers, (-1.0, 1.0), forward_func)
        assert local_layers == [2, 3]
        model = Model(forward_func, layers, [4, 24, 24, 3], (-1.0, 1.0), any_batch_size=True,
                      local_forward_func=local_forward_func, local_layers=local_layers)
        fields = recfield.measure_model(model)
        assert [(field.size, field.local) for field in fields] == [((3, 3), False), (None, False), ((3, 3), True),
                                                                   ((5, 5), True)]
        assert (fields[1].recfield[0, 0] == [0, 0, 24, 24]).all()  # the pooling itself: the whole image
        assert model.fingerprint().endswith(', global poolings held')
        batch = rng.uniform(-1, 1, (3, 24, 24, 3)).astype(np.float32)
        np.testing.assert_array_equal(model.run(batch)[3], session.run(c2, feed_dict={images: batch}))
        # Without a global pooling there is nothing to hold.
        assert held_forward_func(session, images, [c1], (-1.0, 1.0), forward_func) == (None, [])
