"""Tests of `utils/pipeline.py`: models from TensorFlow tensors or from anything else, scans, fields, pictures.

The pipeline only calls `forward_func`: the box-filter network written in numpy (`shard_fixtures`) must go
through it as a TensorFlow graph of the same layers does, with the same results.
"""

import logging
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from activations import TopActivations
from conftest import build_session, run_script, tf1
from shard_fixtures import (BOX_DESCRIPTIONS, BOX_IMSHAPE, BOX_LAYERS, BOX_VALUE_RANGE, box_filter_args,
                            box_filter_images, box_filter_maps, open_box_filter_dataset, open_box_filter_model)
from utils import pipeline
from utils.layers import file_stem
from utils.pipeline import Layer, Model, shard_bounds


@pytest.fixture(scope='module')
def network():
    """The box-filter network as a TF graph on 12x12 grey images, with a flag that flips the filter's sign."""
    def build():
        images = tf1.placeholder(tf.float32, [None, 12, 12, 1], name='images')
        flip = tf1.placeholder_with_default(1.0, [], name='flip')
        kernel = np.stack([np.ones((3, 3)), -np.ones((3, 3))], axis=-1)[:, :, None].astype(np.float32)
        conv = tf.nn.relu(flip * tf.nn.conv2d(images, kernel, 1, 'SAME'), name='conv/Relu')
        pool = tf.nn.max_pool2d(conv, 2, 2, 'VALID', name='pool/MaxPool')
        return images, flip, conv, pool
    session, (images, flip, conv, pool) = build_session(build)
    yield session, images, flip, [conv, pool]
    session.close()


def tf_model(network, feeds=()):
    """A `Model` of the TF network's two layers, whose forward_func takes the `layers` keyword."""
    session, images_ph, _, layers = network
    return Model(lambda x, layers=layers: session.run(layers, {images_ph: x, **dict(feeds)}), layers,
                 BOX_IMSHAPE, BOX_VALUE_RANGE)


def numpy_model():
    return open_box_filter_model(None)


class CountingForward:
    """A forward_func (without the `layers` keyword) that counts its calls and records its batches' sizes."""

    def __init__(self, forward_func):
        self._forward_func = forward_func
        self.batch_sizes = []

    def __call__(self, batch):
        self.batch_sizes.append(len(batch))
        return self._forward_func(batch)


def assert_same_trackers(trackers, expected):
    for tracker, other in zip(trackers, expected, strict=True):
        for name in ('firings', 'coords', 'indices', 'kept_image_indices', 'num_seen'):
            np.testing.assert_array_equal(getattr(tracker, name), getattr(other, name), err_msg=name)


# -- Model ------------------------------------------------------------------------------------------------------

def test_layers_from_tensors_and_from_layer_tuples(network):
    model = tf_model(network)
    assert model.layers == BOX_LAYERS and model.layer_names == ['conv/Relu:0', 'pool/MaxPool:0']
    assert all(isinstance(layer, Layer) for layer in model.layers)
    assert numpy_model().layers == BOX_LAYERS  # given as they are
    assert model.imshape == BOX_IMSHAPE and model.value_range == BOX_VALUE_RANGE


def test_a_layer_without_a_known_channel_count_is_refused():
    graph = tf.Graph()
    with graph.as_default():
        unknown_channels = tf1.placeholder(tf.float32, [None, 8, 8, None], name='unknown')
        flat = tf1.placeholder(tf.float32, [None, 10], name='flat')
    for tensor in (unknown_channels, flat):
        with pytest.raises(ValueError, match=f'layer {tensor.name} has shape .* known number of channels'):
            Model(lambda x: [x], [tensor], BOX_IMSHAPE, BOX_VALUE_RANGE)


@pytest.mark.parametrize('forward_func, words', [
    (lambda x: box_filter_maps(x)[:1], 'returned 1 values; it must return a list of 2 feature maps'),
    (lambda x: box_filter_maps(x)[0], 'returned ndarray; it must return a list of 2'),
    (lambda x: [box_filter_maps(x)[0][:1], box_filter_maps(x)[1]], r'shape \(1, 12, 12, 2\) for conv/Relu:0; '
                                                                    r'expected \[3, height, width, 2\]'),
    (lambda x: [box_filter_maps(x)[0], box_filter_maps(x)[1][..., :1]], r'for pool/MaxPool:0; expected \[3, '),
    (lambda x: [box_filter_maps(x)[0][..., 0], box_filter_maps(x)[1]], r'shape \(3, 12, 12\) for conv/Relu:0'),
])
def test_run_refuses_what_is_not_one_map_per_layer(forward_func, words):
    model = Model(forward_func, BOX_LAYERS, BOX_IMSHAPE, BOX_VALUE_RANGE)
    with pytest.raises(ValueError, match=words):
        model.run(box_filter_images(3)[0])


def test_layer_forward_func_passes_the_layer_when_forward_func_takes_layers(network):
    session, images_ph, _, layers = network
    asked = []

    def forward(batch, layers=layers):
        asked.append(list(layers))
        return session.run(layers, {images_ph: batch})

    model = Model(forward, layers, BOX_IMSHAPE, BOX_VALUE_RANGE)
    inputs, _ = box_filter_images(4)
    pool_map, = model.layer_forward_func(1)(inputs)
    assert asked == [[layers[1]]]  # the tensor itself: only the part of the graph it needs runs
    np.testing.assert_array_equal(pool_map, session.run(layers[1], {images_ph: inputs}))


def test_layer_forward_func_picks_the_map_otherwise():
    counting = CountingForward(box_filter_maps)  # no `layers` keyword
    model = Model(counting, BOX_LAYERS, BOX_IMSHAPE, BOX_VALUE_RANGE)
    inputs, _ = box_filter_images(4)
    pool_map, = model.layer_forward_func(1)(inputs)
    assert counting.batch_sizes == [4]
    np.testing.assert_array_equal(pool_map, box_filter_maps(inputs)[1])


def test_model_closes_what_it_holds():
    closed = []
    with Model(box_filter_maps, BOX_LAYERS, BOX_IMSHAPE, BOX_VALUE_RANGE, close=lambda: closed.append(1)):
        assert not closed
    assert closed == [1]


def test_model_id_names_the_files_and_hashes_their_contents(tmp_path):
    first, second = tmp_path / 'model.index', tmp_path / 'model.data'
    first.write_bytes(b'index')
    second.write_bytes(b'data')
    model_id = pipeline.model_id('cifar10', [str(first), str(second)])
    assert model_id.startswith('cifar10 model.index+model.data sha256:') and len(model_id.split(':')[-1]) == 16
    assert pipeline.model_id('cifar10', [str(first), str(second)]) == model_id
    second.write_bytes(b'other data')
    assert pipeline.model_id('cifar10', [str(first), str(second)]) != model_id


# -- shards of a dataset -----------------------------------------------------------------------------------------

@pytest.mark.parametrize('num_images, batch_size, num_shards', [(12, 4, 2), (13, 4, 3), (100, 7, 4), (5, 4, 3)])
def test_shards_are_contiguous_whole_batches_covering_the_dataset(num_images, batch_size, num_shards):
    bounds = [shard_bounds(num_images, batch_size, num_shards, index) for index in range(num_shards)]
    assert bounds[0][0] == 0 and bounds[-1][1] == num_images
    assert all(stop == next_start for (_, stop), (next_start, _) in zip(bounds, bounds[1:]))
    assert all(start % batch_size == 0 for start, _ in bounds)
    lengths = [-(-(stop - start) // batch_size) for start, stop in bounds]
    assert max(lengths) - min(lengths) <= 1  # in batches


@pytest.mark.parametrize('num_shards', [2, 3])
def test_scans_of_the_shards_merge_to_the_scan_of_the_whole(tmp_path, num_shards):
    model, dataset = numpy_model(), open_box_filter_dataset(box_filter_args(tmp_path, num_images=10))
    whole = pipeline.scan(model, dataset, 3)
    merged = pipeline.scan(model, dataset, 3, 0, num_shards)
    for shard_index in range(1, num_shards):
        for tracker, shard_tracker in zip(merged, pipeline.scan(model, dataset, 3, shard_index, num_shards)):
            tracker.merge(shard_tracker)
    assert_same_trackers(merged, whole)
    assert whole[0].num_seen == 10 and len(whole) == 2


def test_a_shard_without_batches_is_empty_and_warned_about(tmp_path, caplog):
    model, dataset = numpy_model(), open_box_filter_dataset(box_filter_args(tmp_path, num_images=5))
    with caplog.at_level(logging.WARNING, logger='utils.pipeline'):
        trackers = pipeline.scan(model, dataset, 2, 0, 3)  # 2 batches, 3 shards: the first has none
    assert [tracker.num_seen for tracker in trackers] == [0, 0]
    assert 'shard 0 of 3 is empty' in caplog.text


def test_one_run_per_batch_and_the_same_result_as_one_layer_at_a_time(network):
    session, images_ph, _, layers = network
    inputs, display = box_filter_images(10, seed=1)
    counting = CountingForward(lambda x: session.run(layers, {images_ph: x}))
    batches = pipeline.numbered((inputs[start:start + 4], display[start:start + 4]) for start in range(0, 10, 4))
    trackers = pipeline.track_top_activations(Model(counting, layers, BOX_IMSHAPE, BOX_VALUE_RANGE), batches,
                                              num_samples=3, num_batches=3)
    assert counting.batch_sizes == [4, 4, 2]
    assert_same_trackers(trackers, [TopActivations(3).update(display, session.run(layer, {images_ph: inputs}))
                                    for layer in layers])


def test_what_forward_func_feeds_reaches_every_batch(network):
    inputs, display = box_filter_images(4, seed=2)
    plain, _ = pipeline.track_top_activations(tf_model(network), [(inputs, display)], 2)
    flip = network[2]
    flipped, _ = pipeline.track_top_activations(tf_model(network, {flip: -1.0}), [(inputs, display)], 2)
    # Flipping the sign swaps the two channels (a box filter and its negative).
    np.testing.assert_array_equal(flipped.firings, plain.firings[::-1])


# -- receptive fields and pictures ------------------------------------------------------------------------------

def test_measure_receptive_fields_prints_each_layers_line(capsys):
    fields = pipeline.measure_receptive_fields(numpy_model())
    assert capsys.readouterr().out.splitlines() == BOX_DESCRIPTIONS
    assert sorted(fields) == [0, 1]
    assert (fields[1].size, fields[1].stride, fields[1].padding) == ((4, 4), (2, 2), (1, 1))
    only_pool = pipeline.measure_receptive_fields(numpy_model(), [1])
    assert list(only_pool) == [1] and only_pool[1] == fields[1]
    assert capsys.readouterr().out.splitlines() == BOX_DESCRIPTIONS[1:]


def run_whole_pipeline(model, out_dir):
    """What an example script does: fields, scan, pictures, receptive-field examples.

    Returns:
        `(fields, trackers)`.
    """
    out_dir.mkdir()
    fields = pipeline.measure_receptive_fields(model)
    trackers = pipeline.scan(model, open_box_filter_dataset(box_filter_args(out_dir, num_images=10)), 3)
    pipeline.draw(model, fields, trackers, str(out_dir), num_channels=0)
    pipeline.draw_receptive_fields(model, fields, str(out_dir))
    return fields, trackers


def test_a_network_in_numpy_goes_through_the_whole_pipeline_as_tensorflow_does(network, tmp_path, capsys):
    numpy_fields, numpy_trackers = run_whole_pipeline(numpy_model(), tmp_path / 'numpy')
    numpy_lines = capsys.readouterr().out
    tf_fields, tf_trackers = run_whole_pipeline(tf_model(network), tmp_path / 'tensorflow')
    assert capsys.readouterr().out == numpy_lines == '\n'.join(BOX_DESCRIPTIONS) + '\n'
    assert numpy_fields == tf_fields
    assert_same_trackers(numpy_trackers, tf_trackers)
    stems = [file_stem(layer.name) for layer in BOX_LAYERS]
    names = sorted([f'{stem}-{kind}.jpg' for stem in stems for kind in ('full', 'crop')]
                   + [f'recfield-{stem}.png' for stem in stems])
    assert sorted(os.listdir(tmp_path / 'numpy')) == names
    for name in names:
        assert (tmp_path / 'numpy' / name).read_bytes() == (tmp_path / 'tensorflow' / name).read_bytes(), name
    # Two channels, each a column of 3 images of 12 pixels in bordered cells, under a caption strip.
    full = cv2.imread(str(tmp_path / 'numpy' / 'pool-MaxPool0-full.jpg'))
    assert full.shape[1] == 2 * (12 + 2) and full.shape[0] > 3 * (12 + 2)


# -- the TensorFlow boundary ------------------------------------------------------------------------------------

def test_the_pipeline_shards_states_and_merge_import_no_tensorflow():
    code = ('import utils.states, utils.shards, utils.pipeline, utils.pictures, utils.merge_activations, sys; '
            "assert 'tensorflow' not in sys.modules, sorted(name for name in sys.modules if 'tensorflow' in name)")
    result = run_script('-c', code, timeout=120)  # a fresh interpreter, in the repository root
    assert result.returncode == 0, result.stderr
