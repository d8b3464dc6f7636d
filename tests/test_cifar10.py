"""The CIFAR-10 example: the network's names, training and resuming, the model as the pipeline opens it, and
both scripts end to end.

The scripts run as subprocesses from the repository root on a generated dataset of 120 images with a
checkpoint trained for 2 steps (`cifar10_fixtures`). Their pictures are checked against a brute-force
computation: every feature map of every scanned image, the strongest images of each channel found by sorting,
and the receptive-field boxes in closed form. Bad input runs `main` in this process, which is faster.
"""

import argparse
import glob
import json
import os
import re
import shutil
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

import cifar10_activations
import cifar10_recfield
from conftest import layer_lines, probe_image_counts, run_script
from utils import cifar10_train
from utils.base.layer_names import file_stem
from utils.core.model import Example, Layer, model_id
from utils.examples import cifar10, cifar10_input
from utils.examples.cifar10_input import BATCHES_DIR, CLASS_NAMES, TRAIN_FILES
from utils.models.tf_load import checkpoint_files
from utils.running.cli import run_main

tf1 = tf.compat.v1
LINE = re.compile(r'^(\S+) feature map is of shape (\d+x\d+x\d+) and has receptive field (.+)$')
TRAIN_STEPS = 2  # the steps of the cifar10_train_dir fixture, which saves every step
BATCH_SIZE = 32
NUM_BATCHES = 2
CROP = 24

# The tutorial network's layers: output shapes for a batch of 2, and receptive-field boxes of feature pixel m
# along one axis, [start(m), stop(m)) before clipping to the image.
SHAPES = {'conv1/conv1:0': (2, 24, 24, 64), 'pool1:0': (2, 12, 12, 64), 'norm1:0': (2, 12, 12, 64),
          'conv2/conv2:0': (2, 12, 12, 64), 'norm2:0': (2, 12, 12, 64), 'pool2:0': (2, 6, 6, 64),
          'local3/local3:0': (2, 384), 'local4/local4:0': (2, 192),
          'softmax_linear/softmax_linear:0': (2, 10)}
BOXES = {'conv1/conv1:0': lambda m: (m - 2, m + 3), 'conv2/conv2:0': lambda m: (2 * m - 6, 2 * m + 9)}
FIELDS = {'conv1/conv1:0': '5x5 (stride 1x1, padding 2x2)', 'conv2/conv2:0': '15x15 (stride 2x2, padding 6x6)'}


def strings(*items):
    """Command-line arguments as strings (numbers and paths allowed)."""
    return [str(item) for item in items]


def printed_fields(stdout):
    """{layer: (feature shape, receptive field)} from the script's result lines."""
    return {match[1]: (match[2], match[3]) for match in map(LINE.match, stdout.splitlines()) if match}


@pytest.fixture
def trained(cifar10_train_dir, cifar10_data):
    """`(train_dir, data_dir, labels, images)`: the shared training folder (`cifar10_fixtures`) and its data."""
    return (cifar10_train_dir, *cifar10_data)


# -- the network ----------------------------------------------------------------------------------------------

def test_network_has_the_tutorial_names_shapes_and_variables():
    graph = tf.Graph()
    with graph.as_default():
        logits = cifar10.inference(tf1.placeholder(tf.float32, [2, 24, 24, 3]))
        total_loss = cifar10.loss(logits, tf.constant([1, 2]))
        variables = {variable.op.name: tuple(variable.shape) for variable in tf1.global_variables()}
        weight_decay = [term.op.name for term in tf1.get_collection(cifar10.LOSSES)]
    assert logits.name == 'softmax_linear/softmax_linear:0' and total_loss.name == 'total_loss:0'
    assert {name: tuple(graph.get_tensor_by_name(name).shape) for name in SHAPES} == SHAPES
    assert variables == {
        'conv1/weights': (5, 5, 3, 64), 'conv1/biases': (64,), 'conv2/weights': (5, 5, 64, 64),
        'conv2/biases': (64,), 'local3/weights': (2304, 384), 'local3/biases': (384,),
        'local4/weights': (384, 192), 'local4/biases': (192,), 'softmax_linear/weights': (192, 10),
        'softmax_linear/biases': (10,)}
    assert weight_decay == ['local3/weight_loss', 'local4/weight_loss', 'cross_entropy']


# -- training -------------------------------------------------------------------------------------------------

def test_training_writes_checkpoints(trained):
    train_dir = trained[0]
    assert tf1.train.latest_checkpoint(train_dir).endswith(f'model.ckpt-{TRAIN_STEPS}')
    assert os.path.isfile(os.path.join(train_dir, f'model.ckpt-{TRAIN_STEPS - 1}.index'))
    reader = tf1.train.load_checkpoint(train_dir)
    assert reader.get_tensor('global_step') == TRAIN_STEPS
    assert reader.get_variable_to_shape_map()['conv2/weights'] == [5, 5, 64, 64]


def test_training_resumes_from_the_latest_checkpoint(trained, tmp_path, caplog):
    train_dir, data_dir = str(tmp_path / 'train'), trained[1]
    shutil.copytree(trained[0], train_dir)
    before = tf1.train.load_checkpoint(train_dir).get_tensor('conv1/weights')
    caplog.set_level('INFO')
    argv = strings('--data_dir', data_dir, '--train_dir', train_dir, '--batch_size', BATCH_SIZE, '--log_steps', 1)
    assert cifar10_train.main(argv + strings('--max_steps', TRAIN_STEPS + 1)) == 0
    assert f'resuming from {train_dir}/model.ckpt-{TRAIN_STEPS}' in caplog.text
    assert len(re.findall(r'step \d+: loss', caplog.text)) == 1  # one step, not six from scratch
    after = tf1.train.load_checkpoint(train_dir)
    assert after.get_tensor('global_step') == TRAIN_STEPS + 1
    assert 0 < np.abs(after.get_tensor('conv1/weights') - before).max() < 0.05
    caplog.clear()
    assert cifar10_train.main(argv + strings('--max_steps', TRAIN_STEPS)) == 0  # already there
    assert 'nothing to do' in caplog.text


# -- cifar10_activations.py -----------------------------------------------------------------------------------

def brute_force_features(train_dir, crops):
    """conv1 and conv2 of every centre crop, computed in batches of BATCH_SIZE as the script does."""
    graph = tf.Graph()
    with graph.as_default():
        images_ph = tf1.placeholder(tf.float32, [BATCH_SIZE, CROP, CROP, 3])
        cifar10.inference(images_ph)
        layers = [graph.get_tensor_by_name(name) for name in BOXES]
        session = tf1.Session(graph=graph)
        tf1.train.Saver().restore(session, tf1.train.latest_checkpoint(train_dir))
    values = crops.astype(np.float64)
    mean, std = values.mean(axis=(1, 2, 3), keepdims=True), values.std(axis=(1, 2, 3), keepdims=True)
    standardised = ((values - mean) / np.maximum(std, 1 / np.sqrt(CROP * CROP * 3))).astype(np.float32)
    batches = [session.run(layers, {images_ph: standardised[start:start + BATCH_SIZE]})
               for start in range(0, len(crops), BATCH_SIZE)]
    session.close()
    return dict(zip(BOXES, (np.concatenate(parts) for parts in zip(*batches))))


def box_of(layer, y, x):
    (y1, y2), (x1, x2) = BOXES[layer](y), BOXES[layer](x)
    return [int(v) for v in np.clip([y1, x1, y2, x2], 0, CROP)]


def crop_cell(image, box, cell_size):
    """The box's content on black, shifted down (right) when the top (left) image edge clips the box."""
    cell = np.zeros((cell_size, cell_size, 3), np.uint8)
    y1, x1, y2, x2 = box
    dy = cell_size - (y2 - y1) if y1 == 0 and y2 < CROP else 0
    dx = cell_size - (x2 - x1) if x1 == 0 and x2 < CROP else 0
    cell[dy:dy + y2 - y1, dx:dx + x2 - x1] = image[y1:y2, x1:x2]
    return cell


def full_cell(image, box):
    cell = np.ascontiguousarray(image).copy()
    cv2.rectangle(cell, (box[1], box[0]), (box[3] - 1, box[2] - 1), (0, 255, 0), 1)
    return cell


def picture_cells(path, num_columns, num_rows, cell_size):
    """The cells of a picture (borders and caption strip cut off), int `[rows, columns, size, size, 3]`."""
    picture = cv2.imread(str(path))
    step = cell_size + 2
    assert picture.shape[1] == num_columns * step, path
    caption = picture.shape[0] - num_rows * step
    assert 0 < caption <= 2 * (round(14 * 0.8) + 3) + 2, path  # at most two lines of text
    grid = picture[caption:].reshape(num_rows, step, num_columns, step, 3)[:, 1:-1, :, 1:-1]
    return grid.transpose(0, 2, 1, 3, 4).astype(int)


def luma(images):
    """Brightness of BGR images: JPEG keeps it well (unlike colour, which it subsamples)."""
    return np.asarray(images, float) @ [0.114, 0.587, 0.299]


def assert_nearest(cell, candidates, expected, what):
    """`cell` (from a JPEG, so only roughly equal) is clearly closest to candidate number `expected`."""
    distances = np.abs(luma(candidates) - luma(cell)).mean(axis=(1, 2))
    others = np.delete(distances, expected)
    assert distances[expected] < 0.5 * others.min(), (what, distances[expected], np.sort(others)[:3])


@pytest.mark.slow
def test_activations_pictures_match_brute_force(trained, tmp_path):
    train_dir, data_dir, _, images = trained
    num_channels, num_samples = 4, 3
    result = run_script('cifar10_activations.py', '--train_dir', train_dir, '--data_dir', data_dir,
                        '--out_dir', tmp_path, '--batches', NUM_BATCHES, '--batch_size', BATCH_SIZE,
                        '--num_channels', num_channels, '--num_samples', num_samples)
    assert result.returncode == 0, result.stderr
    assert printed_fields(result.stdout) == {'conv1/conv1:0': ('24x24x64', FIELDS['conv1/conv1:0']),
                                             'conv2/conv2:0': ('12x12x64', FIELDS['conv2/conv2:0'])}
    assert sorted(os.listdir(tmp_path)) == ['activations.json', 'conv1-conv10-crop.jpg', 'conv1-conv10-full.jpg',
                                            'conv2-conv20-crop.jpg', 'conv2-conv20-full.jpg', 'index.html']

    scanned = images[:NUM_BATCHES * BATCH_SIZE, 4:28, 4:28]  # centre crops, in file order
    display = scanned[..., ::-1]  # the pictures are BGR
    for layer, features in brute_force_features(train_dir, scanned).items():
        firings = features.max(axis=(1, 2))  # [image, channel]
        channels = np.flatnonzero(firings.max(axis=0) > 0)[:num_channels]
        assert len(channels) == num_channels
        crop_size = max(stop - start for start, stop in map(BOXES[layer], range(features.shape[1]))
                        if start >= 0 and stop <= CROP)
        positions = [(y, x) for y in range(features.shape[1]) for x in range(features.shape[2])]
        stem = file_stem(layer)
        crops = picture_cells(tmp_path / f'{stem}-crop.jpg', num_channels, num_samples, crop_size)
        fulls = picture_cells(tmp_path / f'{stem}-full.jpg', num_channels, num_samples, CROP)
        for column, channel in enumerate(channels):
            top = np.argsort(-firings[:, channel], kind='stable')[:num_samples]  # ties: the earlier image
            for row, index in enumerate(top):
                y, x = np.unravel_index(features[index, :, :, channel].argmax(), features.shape[1:3])
                box = box_of(layer, y, x)
                what = f'{layer} channel {channel} row {row}'
                # The crop: this image (not another one) at this place (not another one).
                assert_nearest(crops[row, column], [crop_cell(image, box, crop_size) for image in display],
                               index, what + ' crop image')
                assert_nearest(crops[row, column], [crop_cell(display[index], box_of(layer, *p), crop_size)
                                                    for p in positions], positions.index((y, x)), what + ' crop box')
                assert_nearest(fulls[row, column], [full_cell(image, box) for image in display], index,
                               what + ' full image')
        red_minus_blue = fulls[..., 2].mean() - fulls[..., 0].mean()
        assert red_minus_blue > 100, 'the pictures are not in BGR order'  # red is 128 brighter than blue


# -- open_model: the example's model as the pipeline opens it ---------------------------------------------

def example_flags(train_dir, data_dir, **flags):
    """The flags of cifar10_activations.py that `cifar10.open_model` and `cifar10_input.open_dataset` read."""
    defaults = dict(train_dir=train_dir, data_dir=data_dir, cifar10_dir=None, batch_size=BATCH_SIZE, batches=1,
                    layers=[','.join(BOXES)])
    return argparse.Namespace(**{**defaults, **flags})


def test_model_runs_the_latest_checkpoint(trained):
    train_dir, data_dir, _, images = trained
    flags = example_flags(train_dir, data_dir)
    with cifar10.open_model(flags) as model:
        assert model.layers == [Layer('conv1/conv1:0', 64), Layer('conv2/conv2:0', 64)]
        assert model.imshape == [BATCH_SIZE, CROP, CROP, 3] and model.value_range == cifar10.VALUE_RANGE
        latest = tf1.train.latest_checkpoint(train_dir)
        assert latest.endswith(f'model.ckpt-{TRAIN_STEPS}')
        assert model.model_id == model_id('cifar10', checkpoint_files(latest))
        assert model.model_id.startswith(f'cifar10 model.ckpt-{TRAIN_STEPS}.index+model.ckpt-{TRAIN_STEPS}.data-')
        [(inputs, _, indices)] = cifar10_input.open_dataset(flags).read(0, BATCH_SIZE)
        np.testing.assert_array_equal(indices, np.arange(BATCH_SIZE))
        expected = brute_force_features(train_dir, images[:BATCH_SIZE, 4:28, 4:28])
        for layer, feature_map in zip(model.layers, model.run(inputs)):
            np.testing.assert_allclose(feature_map, expected[layer.name], rtol=1e-4, atol=1e-4, err_msg=layer.name)
        [conv2] = model.forward_func_for([1])(inputs)
        np.testing.assert_allclose(conv2, expected['conv2/conv2:0'], rtol=1e-4, atol=1e-4)
    with pytest.raises(RuntimeError):  # closed with the with-block
        model.run(inputs)
    assert cifar10.EXAMPLE == Example('cifar10', cifar10.open_model, cifar10_input.open_dataset)


def test_model_without_a_checkpoint_names_the_training_command(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match='no checkpoint in .*utils/cifar10_train.py'):
        cifar10.open_model(example_flags(str(tmp_path), trained[1]))


# -- cifar10_recfield.py --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_recfield_needs_no_checkpoint(tmp_path):
    result = run_script('cifar10_recfield.py', '--train_dir', tmp_path / 'no-checkpoints', '--out_dir',
                        tmp_path / 'out', '--batch_size', 16)
    assert result.returncode == 0, result.stderr
    assert printed_fields(result.stdout) == {'conv1/conv1:0': ('24x24x64', FIELDS['conv1/conv1:0']),
                                             'conv2/conv2:0': ('12x12x64', FIELDS['conv2/conv2:0'])}
    for stem, (start, stop) in [('conv1-conv10', (10, 15)), ('conv2-conv20', (6, 21))]:
        drawing = cv2.imread(str(tmp_path / 'out' / f'recfield-{stem}.png'), cv2.IMREAD_UNCHANGED)
        assert drawing.shape == (CROP, CROP)
        # The centre pixel's box, end-exclusive, is outlined in white.
        assert (drawing[start, start:stop] == 255).all() and (drawing[start:stop, stop - 1] == 255).all()
        assert (drawing[:start] != 255).all() and (drawing[stop:] != 255).all()


@pytest.mark.slow
def test_a_second_run_takes_the_receptive_fields_from_the_cache(tmp_path):
    cache = tmp_path / 'cache'

    def recfield_run(name, *flags):
        """Runs cifar10_recfield.py (no checkpoint needed) into `tmp_path / name`; returns its stdout."""
        result = run_script('cifar10_recfield.py', '--train_dir', tmp_path / 'no-checkpoints', '--batch_size', 16,
                            '--out_dir', tmp_path / name, *flags)
        assert result.returncode == 0, result.stderr
        return result.stdout

    first, second = (recfield_run(name, '--recfield_cache', cache) for name in ('first', 'second'))
    assert len(os.listdir(cache)) == 2  # an entry per layer
    [(layers, probe_images)] = probe_image_counts(first)
    assert layers == 2 and probe_images > 0
    assert probe_image_counts(second) == [(2, 0)]  # 0 probe images: both fields from the cache
    assert layer_lines(second) == layer_lines(first) and len(layer_lines(first)) == 2
    drawings = sorted(name for name in os.listdir(tmp_path / 'first'))
    assert [(tmp_path / 'second' / name).read_bytes() for name in drawings] == [
        (tmp_path / 'first' / name).read_bytes() for name in drawings]

    uncached = recfield_run('uncached', '--recfield_cache', tmp_path / 'unused', '--no_recfield_cache')
    assert probe_image_counts(uncached) == [(2, probe_images)] and layer_lines(uncached) == layer_lines(first)
    assert not (tmp_path / 'unused').exists()  # nothing written


def test_recfield_uses_a_checkpoint_and_takes_any_layer(trained, tmp_path, capsys):
    status = run_main(cifar10_recfield.main, strings('--train_dir', trained[0], '--out_dir', tmp_path,
                                                     '--batch_size', 8, '--layers', 'pool2', 'norm1:0'))
    assert status == 0
    assert printed_fields(capsys.readouterr().out) == {
        'pool2:0': ('6x6x64', '19x19 (stride 4x4, padding 6x6)'),
        'norm1:0': ('12x12x64', '7x7 (stride 2x2, padding 2x2)')}


# -- --cifar10_dir ----------------------------------------------------------------------------------------------

# A tutorial module that builds under tensorflow.compat.v1 (tf.variable_scope and tf.get_variable exist only
# there), with 3x3 convolutions so that the test can tell its network from the port's.
COMPAT_TUTORIAL = '''
import tensorflow as tf

def _conv(inputs, name):
    with tf.variable_scope(name) as scope:
        kernel = tf.get_variable('weights', [3, 3, int(inputs.shape[-1]), 8],
                                 initializer=tf.truncated_normal_initializer(stddev=0.1))
        return tf.nn.relu(tf.nn.conv2d(inputs, kernel, [1, 1, 1, 1], padding='SAME'), name=scope.name)

def inference(images):
    conv1 = _conv(images, 'conv1')
    pool1 = tf.nn.max_pool(conv1, ksize=[1, 3, 3, 1], strides=[1, 2, 2, 1], padding='SAME', name='pool1')
    return _conv(pool1, 'conv2')
'''
# Tutorials that need TensorFlow 1.x: one fails on import, one when building the network.
TF1_TUTORIALS = {
    'import': 'import tensorflow as tf\nslim = tf.contrib.slim\n\ndef inference(images):\n    pass\n',
    'inference': ('import tensorflow as tf\n\ndef inference(images):\n'
                  '    return images.get_shape()[1].value\n'),
}


def test_tutorial_module_that_builds_under_compat_v1_is_used(tmp_path, capsys):
    (tmp_path / 'cifar10.py').write_text(COMPAT_TUTORIAL)
    status = run_main(cifar10_recfield.main, strings('--cifar10_dir', tmp_path, '--train_dir', tmp_path / 'none',
                                                     '--out_dir', tmp_path / 'out', '--batch_size', 8))
    assert status == 0
    assert printed_fields(capsys.readouterr().out) == {
        'conv1/conv1:0': ('24x24x8', '3x3 (stride 1x1, padding 1x1)'),
        'conv2/conv2:0': ('12x12x8', '9x9 (stride 2x2, padding 3x3)')}
    assert sys.modules['tensorflow'] is tf  # the import is undone


@pytest.mark.parametrize('stage', sorted(TF1_TUTORIALS))
def test_tutorial_module_for_tf1_fails_clearly(tmp_path, capsys, stage):
    (tmp_path / 'cifar10.py').write_text(TF1_TUTORIALS[stage])
    status = run_main(cifar10_recfield.main, strings('--cifar10_dir', tmp_path, '--out_dir', tmp_path / 'out'))
    error = capsys.readouterr().err
    assert status == 2 and error.startswith('error: ')
    assert 'under tensorflow.compat.v1' in error and 'Drop --cifar10_dir' in error
    assert sys.modules['tensorflow'] is tf


# -- bad input ------------------------------------------------------------------------------------------------

def run_activations(trained, out_dir, *args, **replaced):
    """Runs cifar10_activations.main in this process; returns `(status, stdout, stderr)` via capsys."""
    flags = {'--train_dir': trained[0], '--data_dir': trained[1], '--out_dir': out_dir, '--batches': 1,
             '--batch_size': BATCH_SIZE, **replaced}
    return run_main(cifar10_activations.main, strings(*[item for pair in flags.items() for item in pair], *args))


def test_unknown_layer_lists_the_closest_names(trained, tmp_path, capsys):
    assert run_activations(trained, tmp_path, '--layers', 'conv1/conv1:0,conv2/conv:0') == 2
    error = capsys.readouterr().err
    assert "no layer 'conv2/conv:0'" in error and 'conv2/conv2:0' in error and '--print_all_names' in error


def test_print_all_names_needs_no_checkpoint(tmp_path, capsys):
    assert run_main(cifar10_activations.main, strings('--print_all_names', '--train_dir', tmp_path)) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert set(SHAPES) <= set(names)


def test_missing_checkpoint_names_the_training_command(trained, tmp_path, capsys):
    assert run_activations(trained, tmp_path, **{'--train_dir': tmp_path / 'empty'}) == 2
    error = capsys.readouterr().err
    assert 'no checkpoint in' in error and f'python utils/cifar10_train.py --train_dir {tmp_path}/empty' in error


def test_missing_data_says_how_to_get_it(trained, tmp_path, capsys):
    assert run_activations(trained, tmp_path / 'out', **{'--data_dir': tmp_path}) == 2
    error = capsys.readouterr().err
    assert 'no CIFAR-10 data' in error and 'utils/cifar10_train.py --data_dir' in error


def test_truncated_batch_file_is_named(trained, tmp_path, capsys):
    data_dir = tmp_path / 'data'
    shutil.copytree(os.path.join(trained[1], BATCHES_DIR), data_dir)
    damaged = data_dir / TRAIN_FILES[1]
    damaged.write_bytes(damaged.read_bytes()[:5000])
    assert run_activations(trained, tmp_path / 'out', **{'--data_dir': data_dir}) == 2
    error = capsys.readouterr().err
    assert str(damaged) in error and 'truncated or corrupt' in error


def test_output_folder_that_cannot_be_written(trained, tmp_path, capsys):
    blocker = tmp_path / 'a-file'
    blocker.write_text('')
    assert run_activations(trained, blocker / 'out') == 2
    assert 'cannot write to output folder' in capsys.readouterr().err


def test_more_channels_than_the_layer_has_draws_them_all(trained, tmp_path, caplog):
    assert run_activations(trained, tmp_path / 'many', '--layers', 'conv1/conv1:0', '--num_channels', 100,
                           '--num_samples', 2) == 0
    firing = int(re.search(r'--num_channels 100 is more than the (\d+) channels of conv1/conv1:0 that fire; '
                           r'drawing all of them', caplog.text)[1])
    assert 0 < firing <= 64
    assert cv2.imread(str(tmp_path / 'many' / 'conv1-conv10-full.jpg')).shape[1] == firing * (CROP + 2)
    assert run_activations(trained, tmp_path / 'all', '--layers', 'conv1/conv1:0', '--num_channels', 'all',
                           '--num_samples', 2) == 0
    assert cv2.imread(str(tmp_path / 'all' / 'conv1-conv10-full.jpg')).shape[1] == firing * (CROP + 2)


def test_json_gives_every_image_its_cifar10_class_and_every_channel_its_weakest_images(trained, tmp_path):
    train_dir, _, labels, images = trained
    assert run_activations(trained, tmp_path, '--layers', 'conv1/conv1:0', '--num_channels', 2, '--num_samples', 2,
                           '--bottom_k', 3, **{'--batches': NUM_BATCHES}) == 0
    with open(tmp_path / 'activations.json') as stream:
        [layer] = json.load(stream)['layers']
    count = NUM_BATCHES * BATCH_SIZE
    names = [CLASS_NAMES[label] for label in labels[:count]]
    assert layer['classes'] == sorted(set(names))
    maxima = brute_force_features(train_dir, images[:count, 4:28, 4:28])['conv1/conv1:0'].max(axis=(1, 2))
    for channel, (ranked, weakest) in enumerate(zip(layer['channels'], layer['weakest'])):
        assert [record['class'] for record in ranked + weakest] == [names[record['index']]
                                                                    for record in ranked + weakest]
        lowest = np.lexsort((np.arange(count), maxima[:, channel]))[:3]  # ties: the earlier image
        assert [record['index'] for record in weakest] == lowest.tolist()
        np.testing.assert_allclose([record['firing'] for record in weakest], maxima[lowest, channel], rtol=1e-5)
    selectivities = [record['selectivity'] for record in layer['channel_statistics']]
    assert any(value is not None for value in selectivities)
    assert all(0 <= value <= 1 for value in selectivities if value is not None)
    assert layer['pictures']['bottom'] == 'conv1-conv10-bottom.jpg'
    assert cv2.imread(str(tmp_path / 'conv1-conv10-bottom.jpg')).shape[1] == 2 * (5 + 2)  # 2 channels of 5x5 boxes


# -- damaged checkpoints ----------------------------------------------------------------------------------------

def damage(path, how):
    """Truncates the file at `path` to half its size, or overwrites it with as many random bytes."""
    data = open(path, 'rb').read()
    if how == 'truncated':
        data = data[:len(data) // 2]
    else:
        data = np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes()
    with open(path, 'wb') as stream:
        stream.write(data)


def damaged_train_dir(trained, folder, file_name, how):
    """A copy of the trained folder whose file `file_name` (`{latest}` stands for the latest checkpoint's
    prefix) is damaged; returns `(train_dir, damaged path)`."""
    train_dir = str(folder / 'train')
    shutil.copytree(trained[0], train_dir)
    path = os.path.join(train_dir, file_name.format(latest=f'model.ckpt-{TRAIN_STEPS}'))
    if '*' in path:
        [path] = glob.glob(path)
    damage(path, how)
    return train_dir, path


DAMAGED_CHECKPOINTS = {  # file, damage, what the error says
    'truncated-data': ('{latest}.data-*', 'truncated', 'Read less bytes than requested'),
    'random-data': ('{latest}.data-*', 'random', 'Checksum does not match'),
    'truncated-index': ('{latest}.index', 'truncated', 'not an sstable'),
    'random-state': ('checkpoint', 'random', "codec can't decode"),
}


def assert_damaged_checkpoint_error(error, train_dir, path, reason):
    """`error` (stderr) is one line that names the damaged file, quotes `reason` and says what to do."""
    assert error.startswith('error: ') and error.count('\n') == 1 and reason in error, error
    named = path if path.endswith('checkpoint') else os.path.join(train_dir, f'model.ckpt-{TRAIN_STEPS}')
    assert named in error
    assert f'delete the checkpoint files in {train_dir} and train again' in error and '--train_dir' in error


@pytest.mark.parametrize('case', sorted(DAMAGED_CHECKPOINTS))
def test_damaged_checkpoint_is_a_one_line_error(trained, tmp_path, capsys, case):
    file_name, how, reason = DAMAGED_CHECKPOINTS[case]
    train_dir, path = damaged_train_dir(trained, tmp_path, file_name, how)
    assert run_activations(trained, tmp_path / 'out', **{'--train_dir': train_dir}) == 2
    assert_damaged_checkpoint_error(capsys.readouterr().err, train_dir, path, reason)
    assert not os.path.exists(tmp_path / 'out') or not os.listdir(tmp_path / 'out')


@pytest.mark.parametrize('case', ['truncated-data', 'random-state'])
def test_training_does_not_resume_from_a_damaged_checkpoint(trained, tmp_path, capsys, case):
    file_name, how, reason = DAMAGED_CHECKPOINTS[case]
    train_dir, path = damaged_train_dir(trained, tmp_path, file_name, how)
    before = sorted(os.listdir(train_dir))
    argv = strings('--data_dir', trained[1], '--train_dir', train_dir, '--batch_size', BATCH_SIZE,
                   '--max_steps', TRAIN_STEPS + 1)
    assert run_main(cifar10_train.main, argv) == 2
    assert_damaged_checkpoint_error(capsys.readouterr().err, train_dir, path, reason)
    assert sorted(os.listdir(train_dir)) == before  # nothing trained from scratch over it


def test_checkpoint_without_its_data_file_is_named(trained, tmp_path, capsys):
    train_dir, path = damaged_train_dir(trained, tmp_path, '{latest}.data-*', 'random')
    os.remove(path)
    assert run_activations(trained, tmp_path / 'out', **{'--train_dir': train_dir}) == 2
    error = capsys.readouterr().err
    assert f'checkpoint {train_dir}/model.ckpt-{TRAIN_STEPS} has an index but no .data-* file' in error


@pytest.mark.slow
def test_damaged_checkpoint_as_a_user_sees_it(trained, tmp_path):
    train_dir, path = damaged_train_dir(trained, tmp_path, '{latest}.data-*', 'truncated')
    result = run_script('cifar10_activations.py', '--train_dir', train_dir, '--data_dir', trained[1], '--out_dir',
                        tmp_path / 'out', '--batches', 1, '--batch_size', BATCH_SIZE)
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert_damaged_checkpoint_error(result.stderr.splitlines()[-1] + '\n', train_dir, path,
                                    'Read less bytes than requested')
