"""The FaceNet example end to end, on a small frozen graph with FaceNet's interface and an LFW-style folder.

The graph and the folder come from `facenet_fixtures`: FaceNet's tensor names (`input`, `phase_train`, the
default layers), its stem's kernels, strides and paddings, two Inception-ResNet-A blocks and a Reduction-A
block, BatchNorm switched by `phase_train`, frozen the way FaceNet's models are. The scripts run once each
as subprocesses (slow); the model and dataset the pipeline opens (`facenet.open_model`, `open_dataset`) are
checked here in this process.
"""

import argparse
import hashlib
import logging
import os
import shutil

import cv2
import numpy as np
import pytest
import tensorflow as tf

import facenet_activations
import facenet_recfield
from conftest import assert_shards_read_like_the_whole, layer_lines, run_script, tf1
from facenet_fixtures import CHANNELS, PAIRS_ORDER, build_small_facenet
from utils.base.layer_names import file_stem
from utils.benchmarks.closed_form import boxes_from_dependencies, chain_dependencies
from utils.core import pipeline
from utils.core.model import Example, Layer, Model
from utils.examples import facenet, lfw
from utils.pictures.drawing import describe_layer
from utils.running.cli import run_main

BATCH_SIZE = 4


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

def example_flags(model_path, **flags):
    """The flags of facenet_activations.py that `facenet.open_model` and `open_dataset` read."""
    defaults = dict(model_path=model_path, facenet_dir=None, layers=[','.join(facenet.DEFAULT_LAYERS)],
                    batch_size=BATCH_SIZE, lfw_dir=None, pairs=None, batches=0)
    return argparse.Namespace(**{**defaults, **flags})


@pytest.fixture(scope='module')
def network(small_facenet_path):
    network = facenet.load_network(small_facenet_path)
    yield network
    network.session.close()


@pytest.fixture(scope='module')
def model(small_facenet_path):
    """The default layers as the pipeline opens them, in batches of BATCH_SIZE."""
    with facenet.open_model(example_flags(small_facenet_path)) as model:
        yield model


@pytest.fixture(scope='module')
def receptive_fields(model):
    """The measured receptive field of every default layer (phase_train fed False), by layer name: all from
    one set of probes, as the scripts measure them."""
    fields = pipeline.measure_receptive_fields(model)
    return {layer.name: fields[index] for index, layer in enumerate(model.layers)}


def expected_lines(model, receptive_fields):
    """The lines the scripts print: one `describe_layer` line per layer."""
    return [describe_layer(layer.name, receptive_fields[layer.name], layer.num_channels) for layer in model.layers]


@pytest.fixture(scope='module')
def activations_run(small_facenet_path, lfw_folder, tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp('activations'))
    lfw_dir, pairs_path = lfw_folder
    result = run_script('facenet_activations.py', '--model_path', small_facenet_path, '--lfw_dir', lfw_dir,
                        '--pairs', pairs_path, '--out_dir', out_dir, '--batch_size', BATCH_SIZE, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out_dir, result


# -- the network and its receptive fields ----------------------------------------------------------------

def test_network_interface(network):
    assert network.images_ph.name == 'input:0' and network.image_size == 160
    assert [tensor.name for tensor in network.feed_dict] == ['phase_train:0']
    assert list(network.feed_dict.values()) == [False]


def test_receptive_fields_match_the_closed_form(receptive_fields):
    reads = expected_reads(160)
    for name, field in receptive_fields.items():
        np.testing.assert_array_equal(field.recfield, boxes_from_dependencies(reads[name], reads[name]),
                                      err_msg=name)
        assert not field.whole_image, name
    # The largest boxes: FaceNet's receptive field sizes (the ones before Mixed_6a as in the real network,
    # which has five Inception-ResNet-A blocks where this one has two).
    largest = {name: field.max()[0] for name, field in receptive_fields.items()}
    assert list(largest.values()) == [11, 23, 31, 63, 127]


def test_phase_train_true_is_reported_as_whole_image(network, caplog):
    layer = network.session.graph.get_tensor_by_name(facenet.DEFAULT_LAYERS[0])
    phase_train = next(iter(network.feed_dict))
    training_mode = Model(lambda x: network.session.run([layer], {network.images_ph: x, phase_train: True}),
                                   [layer], [2, 160, 160, 3], facenet.VALUE_RANGE)
    with caplog.at_level(logging.WARNING, logger='recfield'):
        [field] = pipeline.measure_receptive_fields(training_mode).values()
    assert field.whole_image and (field.recfield == [0, 0, 160, 160]).all()
    assert any('mixes images' in record.getMessage() and 'phase_train: False' in record.getMessage()
               for record in caplog.records)


# -- open_model and open_dataset: the example as the pipeline opens it --------------------------------------

def test_model_has_the_layers_the_probe_shape_and_an_id_of_the_graph_file(model, small_facenet_path):
    assert model.layers == [Layer(name, 3 * CHANNELS if name.endswith('concat:0') else CHANNELS)
                            for name in facenet.DEFAULT_LAYERS]  # Mixed_6a concatenates 3 towers
    assert model.imshape == [BATCH_SIZE, 160, 160, 3] and model.value_range == facenet.VALUE_RANGE
    with open(small_facenet_path, 'rb') as stream:
        digest = hashlib.sha256(stream.read()).hexdigest()
    assert model.model_id == f'facenet small_facenet.pb sha256:{digest[:16]}'
    assert facenet.EXAMPLE == Example('facenet', facenet.open_model, facenet.open_dataset)


def test_model_runs_with_batchnorm_in_inference_mode(model, network, rng):
    batch = rng.normal(0, 1, (3, 160, 160, 3)).astype(np.float32)
    maps = model.run(batch)
    phase_train = next(iter(network.feed_dict))
    for layer, feature_map in zip(model.layers, maps):
        inference, training = (network.session.run(layer.name, {network.images_ph: batch, phase_train: mode})
                               for mode in (False, True))
        np.testing.assert_allclose(feature_map, inference, rtol=1e-5, atol=1e-5, err_msg=layer.name)
        assert np.abs(feature_map - training).max() > 1e-3, layer.name
    [alone] = model.forward_func_for([2])(batch)  # only that layer is asked of the session
    np.testing.assert_array_equal(alone, maps[2])


@pytest.fixture(scope='module')
def checkpoint_folder(tmp_path_factory):
    """The small FaceNet (same weights as the frozen one) saved as a checkpoint folder: a `.meta` and step 7."""
    folder = tmp_path_factory.mktemp('facenet_checkpoint')
    graph = build_small_facenet()
    with graph.as_default(), tf1.Session(graph=graph) as session:
        session.run(tf1.global_variables_initializer())
        tf1.train.Saver().save(session, str(folder / 'model.ckpt'), global_step=7)
    return folder


def test_model_from_a_checkpoint_folder_is_named_by_its_files(model, checkpoint_folder, rng):
    layer = facenet.DEFAULT_LAYERS[1]
    with facenet.open_model(example_flags(str(checkpoint_folder), layers=[layer])) as restored:
        files = ['model.ckpt-7.meta', 'model.ckpt-7.index'] + sorted(
            name for name in os.listdir(checkpoint_folder) if name.startswith('model.ckpt-7.data-'))
        digest = hashlib.sha256()
        for name in files:
            digest.update((checkpoint_folder / name).read_bytes())
        assert restored.model_id == f'facenet {"+".join(files)} sha256:{digest.hexdigest()[:16]}'
        batch = rng.normal(0, 1, (2, 160, 160, 3)).astype(np.float32)
        np.testing.assert_allclose(restored.run(batch)[0], model.run(batch)[1], rtol=1e-5, atol=1e-5)


def test_model_that_cannot_open_is_a_clear_error(small_facenet_path, tmp_path):
    with pytest.raises(FileNotFoundError, match='no model at'):
        facenet.open_model(example_flags(str(tmp_path / 'missing.pb')))
    with pytest.raises(ValueError, match='Did you mean'):
        facenet.open_model(example_flags(small_facenet_path, layers=['InceptionResnetV1/Conv2d_4a_3x3/Conv2D:0']))


def test_dataset_names_the_faces_of_the_pairs(model, small_facenet_path, lfw_folder):
    lfw_dir, pairs_path = lfw_folder
    dataset = facenet.open_dataset(example_flags(small_facenet_path, lfw_dir=lfw_dir, pairs=pairs_path), model)
    assert dataset.ids == [f'{name}/{name}_{number:04d}.jpg' for name, number in PAIRS_ORDER]
    assert dataset.batch_size == BATCH_SIZE
    first_batches = facenet.open_dataset(example_flags(small_facenet_path, lfw_dir=lfw_dir, pairs=pairs_path,
                                                       batches=2), model)
    assert first_batches.ids == dataset.ids[:2 * BATCH_SIZE]


@pytest.mark.parametrize('num_shards', [2, 3])
def test_dataset_shards_read_the_batches_of_a_whole_read(model, small_facenet_path, lfw_folder, num_shards):
    lfw_dir, pairs_path = lfw_folder
    dataset = facenet.open_dataset(example_flags(small_facenet_path, lfw_dir=lfw_dir, pairs=pairs_path), model)
    whole = assert_shards_read_like_the_whole(dataset, num_shards)
    assert [list(indices) for _, _, indices in whole] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    inputs, display, _ = whole[0]
    assert inputs.shape == display.shape == (BATCH_SIZE, 160, 160, 3)
    image = cv2.imread(os.path.join(lfw_dir, dataset.ids[0]))
    np.testing.assert_array_equal(display[0], image[45:205, 45:205])  # the centred square, BGR


def test_batches_with_an_unreadable_face_scan_the_same_faces_whole_or_sharded(model, small_facenet_path,
                                                                                lfw_folder, tmp_path):
    """Issue 10: with --batches and an unreadable image, a single run and a sharded run scan the same faces:
    the first --batches batches of the list, the unreadable face leaving its batch one short."""
    lfw_dir = str(tmp_path / 'lfw')
    shutil.copytree(lfw_folder[0], lfw_dir)
    name, number = PAIRS_ORDER[1]
    with open(lfw.image_path(lfw_dir, name, number), 'wb') as stream:
        stream.write(b'\xff\xd8 not really a JPEG')
    dataset = facenet.open_dataset(example_flags(small_facenet_path, lfw_dir=lfw_dir, pairs=lfw_folder[1],
                                                 batches=2), model)
    assert len(dataset) == 2 * BATCH_SIZE
    whole = assert_shards_read_like_the_whole(dataset, 2)
    assert [list(indices) for _, _, indices in whole] == [[0, 2, 3], [4, 5, 6, 7]]

    single = pipeline.scan(model, dataset, 2)
    sharded = [pipeline.scan(model, dataset, 2, shard_index, 2) for shard_index in (0, 1)]
    for tracker, first, second in zip(single, *sharded):
        assert (first.num_seen, second.num_seen) == (3, 4) and tracker.num_seen == 7
        merged = first.merge(second)
        for name in ('firings', 'coords', 'indices'):
            np.testing.assert_array_equal(getattr(merged, name), getattr(tracker, name), err_msg=name)
        assert set(tracker.indices.ravel()) <= {0, 2, 3, 4, 5, 6, 7}


# -- the scripts ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_activations_script(activations_run, model, receptive_fields, network, lfw_folder):
    out_dir, result = activations_run
    # The same receptive fields as measured here, one line per layer.
    assert layer_lines(result.stdout) == expected_lines(model, receptive_fields)
    for name, field in receptive_fields.items():
        for kind, cell_width in (('full', 160), ('crop', field.max()[1])):
            picture = cv2.imread(os.path.join(out_dir, f'{file_stem(name)}-{kind}.jpg'))
            assert picture is not None, (name, kind)
            assert picture.shape[1] == 10 * (cell_width + 2), (name, kind)

    # The strongest face of each drawn channel is the one found here with phase_train False, from the images
    # of the pairs, cropped and prewhitened.
    paths = lfw.image_paths(*lfw_folder)
    inputs, display, _ = (np.concatenate(parts) for parts in zip(*lfw.load_batches(paths, 160, 100)))
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


@pytest.mark.slow
def test_recfield_script(small_facenet_path, model, receptive_fields, tmp_path):
    result = run_script('facenet_recfield.py', '--model_path', small_facenet_path, '--out_dir', tmp_path,
                        '--batch_size', BATCH_SIZE, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert layer_lines(result.stdout) == expected_lines(model, receptive_fields)
    for name, field in receptive_fields.items():
        drawn = cv2.imread(str(tmp_path / f'recfield-{file_stem(name)}.png'), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(drawn, field.draw_example())


# -- flags and bad input ----------------------------------------------------------------------------------

def test_model_and_lfw_found_under_facenet_dir(small_facenet_path, lfw_folder, tmp_path, capsys, caplog):
    """--facenet_dir: data/pairs.txt picks the images; relative paths are looked for inside it."""
    facenet_dir = tmp_path / 'facenet'
    (facenet_dir / 'data').mkdir(parents=True)
    os.symlink(small_facenet_path, facenet_dir / 'model.pb')
    os.symlink(lfw_folder[0], facenet_dir / 'lfw')
    with open(lfw_folder[1]) as source, open(facenet_dir / 'data' / 'pairs.txt', 'w') as target:
        target.write(''.join(source.readlines()[:2]))  # header and one pair: two images
    common = ['--facenet_dir', str(facenet_dir), '--model_path', 'model.pb', '--out_dir', str(tmp_path / 'out')]
    assert run_main(facenet_recfield.main, common + ['--print_all_names']) == 0
    names = capsys.readouterr().out
    assert all(name in names for name in facenet.DEFAULT_LAYERS)

    layer = facenet.DEFAULT_LAYERS[0]
    with caplog.at_level(logging.INFO, logger='utils.examples.lfw'):
        assert run_main(facenet_activations.main,
                        common + ['--lfw_dir', 'lfw', '--layers', layer, '--num_samples', '2']) == 0
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
def test_bad_flags_are_one_line_errors(small_facenet_path, tmp_path, capsys, argv, words):
    argv = ['--model_path', small_facenet_path, '--out_dir', str(tmp_path)] + argv
    assert run_main(facenet_recfield.main, argv) == 2
    assert words in capsys.readouterr().err


def test_activations_need_lfw_dir_except_to_print_names(small_facenet_path, tmp_path, capsys):
    argv = ['--model_path', small_facenet_path, '--out_dir', str(tmp_path)]
    assert run_main(facenet_activations.main, argv) == 2
    assert '--lfw_dir is required' in capsys.readouterr().err
    assert run_main(facenet_activations.main, argv + ['--print_all_names']) == 0
    assert 'InceptionResnetV1/Conv2d_2b_3x3/convolution:0' in capsys.readouterr().out
