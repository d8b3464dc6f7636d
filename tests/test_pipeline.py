"""Tests of `utils/core/pipeline.py`: models from TensorFlow tensors or from anything else, scans, fields and their
cache, pictures.

The pipeline only calls `forward_func`: the box-filter network written in numpy (`shard_fixtures`) must go
through it as a TensorFlow graph of the same layers does, with the same results.
"""

import logging
import os
import re

import cv2
import numpy as np
import pytest
import tensorflow as tf

from conftest import build_session, layer_lines, probe_image_counts, run_script, tf1
from activations import TopActivations
from recfield import ReceptiveField
from shard_fixtures import (BOX_DESCRIPTIONS, BOX_IMSHAPE, BOX_LAYERS, BOX_VALUE_RANGE, box_filter_args,
                            box_filter_images, box_filter_maps, open_box_filter_dataset, open_box_filter_model)
from utils.base.layer_names import file_stem
from utils.core import pipeline
from utils.core.model import Layer, Model, PROBE_BATCH_SIZE, model_id, probe_shape
from utils.core.pipeline import shard_bounds
from utils.core.recfield_cache import RecfieldCache
from utils.models.tf_session import session_forward_funcs


def build_box_filter_graph(kernel_size=3):
    """The box-filter network's TF graph on 12x12 grey images (in the default graph), with a flag that flips
    the filter's sign; returns `(images, flip, conv, pool)`."""
    images = tf1.placeholder(tf.float32, [None, 12, 12, 1], name='images')
    flip = tf1.placeholder_with_default(1.0, [], name='flip')
    box = np.ones((kernel_size, kernel_size))
    kernel = np.stack([box, -box], axis=-1)[:, :, None].astype(np.float32)
    conv = tf.nn.relu(flip * tf.nn.conv2d(images, kernel, 1, 'SAME'), name='conv/Relu')
    pool = tf.nn.max_pool2d(conv, 2, 2, 'VALID', name='pool/MaxPool')
    return images, flip, conv, pool


@pytest.fixture(scope='module')
def network():
    """`(session, images, flip, [conv, pool])` of the box-filter network's TF graph."""
    session, (images, flip, conv, pool) = build_session(build_box_filter_graph)
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
    (lambda x: [box_filter_maps(x)[0][:1], box_filter_maps(x)[1]], r'returned 1 feature maps of conv/Relu:0 for a '
                                                                    r'batch of 3 images; it must return one per image'),
    (lambda x: [box_filter_maps(x)[0], box_filter_maps(x)[1][..., :1]], r'for pool/MaxPool:0; expected \[3, '),
    (lambda x: [box_filter_maps(x)[0][..., 0], box_filter_maps(x)[1]], r'shape \(3, 12, 12\) for conv/Relu:0'),
])
def test_run_refuses_what_is_not_one_map_per_layer(forward_func, words):
    model = Model(forward_func, BOX_LAYERS, BOX_IMSHAPE, BOX_VALUE_RANGE)
    with pytest.raises(ValueError, match=words):
        model.run(box_filter_images(3)[0])


def test_forward_func_for_passes_the_layers_when_forward_func_takes_layers(network):
    session, images_ph, _, layers = network
    asked = []

    def forward(batch, layers=layers):
        asked.append(list(layers))
        return session.run(layers, {images_ph: batch})

    model = Model(forward, layers, BOX_IMSHAPE, BOX_VALUE_RANGE)
    inputs, _ = box_filter_images(4)
    pool_map, = model.forward_func_for([1])(inputs)
    assert asked == [[layers[1]]]  # the tensor itself: only the part of the graph it needs runs
    np.testing.assert_array_equal(pool_map, session.run(layers[1], {images_ph: inputs}))
    maps = model.forward_func_for([1, 0])(inputs)
    assert asked[1:] == [[layers[1], layers[0]]]  # in the order asked
    for feature_map, expected in zip(maps, session.run([layers[1], layers[0]], {images_ph: inputs}), strict=True):
        np.testing.assert_array_equal(feature_map, expected)


def test_forward_func_for_picks_the_maps_otherwise():
    counting = CountingForward(box_filter_maps)  # no `layers` keyword
    model = Model(counting, BOX_LAYERS, BOX_IMSHAPE, BOX_VALUE_RANGE)
    inputs, _ = box_filter_images(4)
    pool_map, = model.forward_func_for([1])(inputs)
    assert counting.batch_sizes == [4]
    np.testing.assert_array_equal(pool_map, box_filter_maps(inputs)[1])
    maps = model.forward_func_for([1, 0])(inputs)
    assert counting.batch_sizes == [4, 4]  # one pass for both layers
    for feature_map, expected in zip(maps, box_filter_maps(inputs)[::-1], strict=True):
        np.testing.assert_array_equal(feature_map, expected)


def test_model_closes_what_it_holds():
    closed = []
    with Model(box_filter_maps, BOX_LAYERS, BOX_IMSHAPE, BOX_VALUE_RANGE, close=lambda: closed.append(1)):
        assert not closed
    assert closed == [1]


def test_model_id_names_the_files_and_hashes_their_contents(tmp_path):
    first, second = tmp_path / 'model.index', tmp_path / 'model.data'
    first.write_bytes(b'index')
    second.write_bytes(b'data')
    found = model_id('cifar10', [str(first), str(second)])
    assert found.startswith('cifar10 model.index+model.data sha256:') and len(found.split(':')[-1]) == 16
    assert model_id('cifar10', [str(first), str(second)]) == found
    second.write_bytes(b'other data')
    assert model_id('cifar10', [str(first), str(second)]) != found


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
    with caplog.at_level(logging.WARNING, logger='utils.core.pipeline'):
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


def test_a_scan_with_maxima_from_the_graph_keeps_what_a_scan_of_the_maps_keeps():
    session, (images_ph, _, conv, pool) = build_session(build_box_filter_graph)  # a graph of its own: it grows
    with session:
        forward_func, maxima_forward_func = session_forward_funcs(session, images_ph, [conv, pool])
        inputs, display = box_filter_images(40, seed=3)
        inputs[[5, 30]], inputs[[6, 31]] = 0.9, -0.9  # plateaus: the strongest firings, at many pixels of a map
        batch_sizes = []

        def counting(batch):
            batch_sizes.append(len(batch))
            return maxima_forward_func(batch)
        models = [Model(forward_func, [conv, pool], BOX_IMSHAPE, BOX_VALUE_RANGE),
                  Model(forward_func, [conv, pool], BOX_IMSHAPE, BOX_VALUE_RANGE, maxima_forward_func=counting)]
        from_maps, with_maxima = [
            pipeline.track_top_activations(model, [(inputs[start:start + 8], display[start:start + 8])
                                                   for start in range(0, 40, 8)], num_samples=3)
            for model in models]
    assert batch_sizes == [8] * 5
    assert_same_trackers(with_maxima, from_maps)
    for tracker, expected in zip(with_maxima, from_maps):
        for channel in range(2):
            for image, expected_image in zip(tracker.channel(channel)[3], expected.channel(channel)[3], strict=True):
                np.testing.assert_array_equal(image, expected_image)
    assert from_maps[0].indices[:, 0].tolist() == [5, 6] and from_maps[0].coords[:, 0].tolist() == [[1, 1]] * 2


def test_run_with_maxima_refuses_what_is_not_a_map_and_its_maxima_per_layer():
    batch = np.zeros((3, 12, 12, 1), np.float32)
    maps = np.zeros((3, 6, 6, 2))

    def model(pairs):
        return Model(lambda x: [x, x], BOX_LAYERS, BOX_IMSHAPE, BOX_VALUE_RANGE, maxima_forward_func=lambda _: pairs)
    assert len(model([(maps, np.zeros((3, 2)))] * 2).run_with_maxima(batch)) == 2
    with pytest.raises(ValueError, match=r'must return a list of 2 \(feature map, maxima\) pairs'):
        model([(maps, np.zeros((3, 2)))]).run_with_maxima(batch)
    with pytest.raises(ValueError, match=r'maxima of shape \(2, 3\) for conv/Relu:0; expected \[3, 2\]'):
        model([(maps, np.zeros((2, 3)))] * 2).run_with_maxima(batch)
    with pytest.raises(ValueError, match=r'maxima_forward_func returned a map of shape \(3, 6, 6, 1\) for conv/Relu:0'):
        model([(maps[..., :1], np.zeros((3, 2)))] * 2).run_with_maxima(batch)


# -- receptive fields and pictures ------------------------------------------------------------------------------

def test_measure_receptive_fields_prints_each_layers_line_then_a_summary(capsys):
    fields = pipeline.measure_receptive_fields(numpy_model())
    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == BOX_DESCRIPTIONS and len(printed) == 3
    [(num_layers, both_layers_probes)] = probe_image_counts(printed[2])
    assert num_layers == 2 and both_layers_probes > 0
    assert sorted(fields) == [0, 1]
    assert (fields[1].size, fields[1].stride, fields[1].padding) == ((4, 4), (2, 2), (1, 1))
    only_pool = pipeline.measure_receptive_fields(numpy_model(), [1])
    assert list(only_pool) == [1] and only_pool[1] == fields[1]
    printed = capsys.readouterr().out.splitlines()
    assert printed[:1] == BOX_DESCRIPTIONS[1:] and [count[0] for count in probe_image_counts(printed[1])] == [1]
    in_given_order = pipeline.measure_receptive_fields(numpy_model(), [1, 0])
    assert list(in_given_order) == [1, 0] and in_given_order == fields
    assert layer_lines(capsys.readouterr().out) == BOX_DESCRIPTIONS[::-1]


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
    tf_lines = capsys.readouterr().out
    assert layer_lines(tf_lines) == layer_lines(numpy_lines) == BOX_DESCRIPTIONS
    assert probe_image_counts(tf_lines) == probe_image_counts(numpy_lines)  # the same probes, one set for both
    assert all(lines.splitlines()[-1].startswith('scan: 10 images, ') for lines in (numpy_lines, tf_lines))
    assert numpy_fields == tf_fields
    assert_same_trackers(numpy_trackers, tf_trackers)
    stems = [file_stem(layer.name) for layer in BOX_LAYERS]
    names = sorted([f'{stem}-{kind}.jpg' for stem in stems for kind in ('full', 'crop')]
                   + [f'recfield-{stem}.png' for stem in stems] + ['activations.json', 'index.html'])
    assert sorted(os.listdir(tmp_path / 'numpy')) == names
    for name in names:
        assert (tmp_path / 'numpy' / name).read_bytes() == (tmp_path / 'tensorflow' / name).read_bytes(), name
    # Two channels, each a column of 3 images of 12 pixels in bordered cells, under a caption strip.
    full = cv2.imread(str(tmp_path / 'numpy' / 'pool-MaxPool0-full.jpg'))
    assert full.shape[1] == 2 * (12 + 2) and full.shape[0] > 3 * (12 + 2)


# -- the receptive-field cache ----------------------------------------------------------------------------------

def fingerprinted_model():
    """The box-filter network in numpy, counting its forward calls (`CountingForward`), with a fingerprint:
    its fields can be cached."""
    return Model(CountingForward(box_filter_maps), BOX_LAYERS, BOX_IMSHAPE, BOX_VALUE_RANGE, fingerprint='box filter')


def test_fields_in_the_cache_are_not_measured_again(tmp_path, capsys):
    cache = RecfieldCache(str(tmp_path / 'cache'))
    first = fingerprinted_model()
    measured = pipeline.measure_receptive_fields(first, cache=cache)
    [(_, num_probe_images)] = probe_image_counts(capsys.readouterr().out)
    assert num_probe_images > 0 and sum(first.forward_func.batch_sizes) > num_probe_images  # and references
    assert len(os.listdir(tmp_path / 'cache')) == 2  # an entry per layer
    later = fingerprinted_model()
    cached = pipeline.measure_receptive_fields(later, cache=cache)
    printed = capsys.readouterr().out
    assert layer_lines(printed) == BOX_DESCRIPTIONS and cached == measured
    assert re.search(r'^receptive fields: 2 layers, 0 probe images, [\d.]+ s$', printed, re.MULTILINE)
    # The check of the cached fields (recfield.disagreements), no measuring: its 3 references, then the middle row
    # and column lit on each of the 4 trials, 8 images in batches of 4.
    assert later.forward_func.batch_sizes == [4] * 5
    only_pool = pipeline.measure_receptive_fields(fingerprinted_model(), [1], cache=cache)
    assert only_pool == {1: measured[1]} and probe_image_counts(capsys.readouterr().out) == [(1, 0)]


def test_a_model_that_takes_any_batch_size_gets_short_probe_batches_and_the_same_fields(capsys):
    imshape = [64] + BOX_IMSHAPE[1:]  # a run of 8 probe images (2 probes, 4 trials) and its 3 references: 32 < 64
    fixed, any_size = (Model(CountingForward(box_filter_maps), BOX_LAYERS, imshape, BOX_VALUE_RANGE,
                             any_batch_size=any_batch_size) for any_batch_size in (False, True))
    assert pipeline.measure_receptive_fields(any_size) == pipeline.measure_receptive_fields(fixed)
    assert set(fixed.forward_func.batch_sizes) == {64}
    assert max(any_size.forward_func.batch_sizes) == 64 and min(any_size.forward_func.batch_sizes) < 64
    assert sum(any_size.forward_func.batch_sizes) < sum(fixed.forward_func.batch_sizes)
    [(_, any_size_count), (_, fixed_count)] = probe_image_counts(capsys.readouterr().out)
    assert any_size_count == fixed_count  # short batches leave out reference images, which are not counted


def test_probes_that_serve_the_shallow_layer_do_not_run_the_deep_one(capsys):
    # A 3x3 box filter (multiplexed probes) and a global sum (an edge search), as a network in numpy.
    layers = [Layer('box', 2), Layer('sum', 1)]
    maps = {'box': lambda batch: box_filter_maps(batch)[0],
            'sum': lambda batch: batch.sum(axis=(1, 2, 3))[:, None, None, None]}
    asked = []

    def forward(batch, layers=layers):
        asked.append(tuple(layer.name for layer in layers))
        return [maps[layer.name](batch) for layer in layers]
    model = Model(forward, layers, [4, 64, 64, 1], BOX_VALUE_RANGE)
    fields = pipeline.measure_receptive_fields(model)
    assert fields[0].size == (3, 3) and (fields[1].recfield == [0, 0, 64, 64]).all()
    assert {('box',), ('sum',)} <= set(asked)  # each layer's own probes ran that layer alone
    assert 'receptive fields: 2 layers' in capsys.readouterr().out


def test_a_cached_field_of_another_feature_map_size_is_measured_again(tmp_path, capsys, caplog, monkeypatch):
    cache = RecfieldCache(str(tmp_path / 'cache'))
    measured = pipeline.measure_receptive_fields(fingerprinted_model(), cache=cache)
    # As if the network had changed under the same fingerprint: the conv layer's entry holds a 6x6 field.
    conv_key = RecfieldCache.key('box filter', 'conv/Relu:0', BOX_IMSHAPE[1:], BOX_VALUE_RANGE)
    cache.save(conv_key, measured[1])
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger='utils.core.pipeline'):
        again = pipeline.measure_receptive_fields(fingerprinted_model(), cache=cache)
    assert ('the cached receptive field of conv/Relu:0 does not fit the network: it is for a (6, 6) feature map, the '
            f'network gives (12, 12); measuring it again (cache entry {cache.path(conv_key)}).') in caplog.text
    assert again == measured and probe_image_counts(capsys.readouterr().out)[0][1] > 0
    assert cache.load(conv_key) == measured[0]  # stored again, right
    # Only that layer was measured again: the pool layer's field came from the cache.
    pool_key = RecfieldCache.key('box filter', 'pool/MaxPool:0', BOX_IMSHAPE[1:], BOX_VALUE_RANGE)
    cache.save(conv_key, measured[1])
    layers_probed, real_probe = [], pipeline._probe
    monkeypatch.setattr(pipeline, '_probe', lambda model, indices: layers_probed.append(
        [model.layers[index].name for index in indices]) or real_probe(model, indices))
    pipeline.measure_receptive_fields(fingerprinted_model(), cache=cache)
    assert layers_probed == [['conv/Relu:0']] and cache.load(pool_key) == measured[1]


@pytest.mark.parametrize('planted, reason', [
    ('whole image', 'lighting image row 6 changes 36 of the 144 feature pixels whose boxes hold it'),
    ('one pixel', 'lighting image row 6 changes 24 feature pixels outside it'),  # rows 5 and 7
])
def test_a_cached_field_that_probes_contradict_is_measured_again(tmp_path, capsys, caplog, planted, reason):
    # Entries are found by their key; a planted one (whole-image boxes, or 1-pixel ones) was used as it was.
    cache = RecfieldCache(str(tmp_path / 'cache'))
    measured = pipeline.measure_receptive_fields(fingerprinted_model(), cache=cache)
    conv_key = RecfieldCache.key('box filter', 'conv/Relu:0', BOX_IMSHAPE[1:], BOX_VALUE_RANGE)
    rows, columns = np.mgrid[:12, :12]
    whole = np.broadcast_to(np.array([0, 0, 12, 12]), (12, 12, 4))
    boxes = whole if planted == 'whole image' else np.stack([rows, columns, rows + 1, columns + 1], -1)
    cache.save(conv_key, ReceptiveField.from_arrays(boxes, (12, 12)))
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger='utils.core.pipeline'):
        again = pipeline.measure_receptive_fields(fingerprinted_model(), cache=cache)
    assert (f'the cached receptive field of conv/Relu:0 does not fit the network: {reason}; measuring it again'
            in caplog.text)
    assert again == measured and cache.load(conv_key) == measured[0]


def test_a_model_without_a_fingerprint_caches_nothing(tmp_path, capsys):
    cache_dir = tmp_path / 'cache'
    model = numpy_model()
    assert model.fingerprint() is None
    for _ in range(2):
        pipeline.measure_receptive_fields(model, cache=RecfieldCache(str(cache_dir)))
        assert probe_image_counts(capsys.readouterr().out)[0][1] > 0
    assert not cache_dir.exists() or not os.listdir(cache_dir)


def test_the_fingerprint_of_a_graph_is_its_structure_and_weights(network):
    fingerprint = tf_model(network).fingerprint()
    assert fingerprint.startswith('graph sha256:') and tf_model(network).fingerprint() == fingerprint

    def fingerprint_of(kernel_size):
        """The fingerprint of the box-filter graph built again in a graph of its own."""
        session, (_, _, conv, pool) = build_session(lambda: build_box_filter_graph(kernel_size))
        session.close()
        return Model(lambda x: [x, x], [conv, pool], BOX_IMSHAPE, BOX_VALUE_RANGE).fingerprint()
    assert fingerprint_of(3) == fingerprint  # the same graph in a later run
    assert fingerprint_of(5) != fingerprint  # other weights
    assert Model(lambda x: [x, x], network[3], BOX_IMSHAPE, BOX_VALUE_RANGE, fingerprint='mine').fingerprint() == 'mine'


# -- the TensorFlow boundary ------------------------------------------------------------------------------------

def test_the_pipeline_shards_states_and_merge_import_no_tensorflow():
    code = ('import utils.core.states, utils.running.shards, utils.core.pipeline, utils.pictures.drawing, '
            'utils.merge_activations, sys; '
            "assert 'tensorflow' not in sys.modules, sorted(name for name in sys.modules if 'tensorflow' in name)")
    result = run_script('-c', code, timeout=120)  # a fresh interpreter, in the repository root
    assert result.returncode == 0, result.stderr


def test_probe_batches_stay_small_whatever_the_scan_batch():
    assert probe_shape(256, 64, 48) == [PROBE_BATCH_SIZE, 64, 48, 3]
    assert probe_shape(4, 64, 48, 1) == [4, 64, 48, 1]
