"""keras_activations.py and keras_recfield.py as users run them, on models saved with model.save()
(`keras_fixtures`): a Sequential CNN (.keras and legacy .h5), a functional model with a residual add and a
concatenation, a model with a Lambda layer, one of free input size, and MobileNetV2 at 96x96.

Quick, in this process (`utils.running.cli.run_main`): `--print_all_names` and bad input (a one-line `error: ...`, exit
status 2, no output folder). Slow, as subprocesses started together (`shard_fixtures.run_scripts_together`): the
printed receptive fields equal the closed form (`utils.benchmarks.closed_form`), pictures for every layer, shards
merged and a Dask run drawing the pictures of a single run byte for byte, integrated gradients (complete: they sum to
the firing less the reference's) and effective receptive fields.
"""

import os
import re

import cv2
import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import keras_activations
import keras_recfield
from conftest import (assert_explained_run, assert_not_explained, assert_one_line_error, assert_recfield_run,
                      drawing_lines, layer_lines, read_batches, read_document, run_script, write_png_claiming,
                      write_sparse_file)
from keras_fixtures import (FREE_SIZE, FREE_SIZE_CHANNELS, IMAGE_SIZE, LAMBDA_CHANNELS, MOBILENET_SIZE,
                            MOBILENET_V2_STRIDES, RESIDUAL_CHANNELS, RESIDUAL_GEOMETRY, SEQUENTIAL_CHANNELS,
                            closed_form_fields, closed_form_lines, free_size_reads, mobilenet_v2_reads,
                            residual_reads, sequential_reads)
from shard_fixtures import merge, run_scripts_together
from utils.benchmarks.closed_form import chain_geometry
from utils.core.states import ShardState
from utils.examples import keras_model
from utils.models import keras_file
from utils.running.cli import run_main

SCRIPTS = {'keras_activations.py': keras_activations, 'keras_recfield.py': keras_recfield}
SEQUENTIAL_DEFAULT_LAYERS = ['conv1', 'pool1', 'drop']
NUM_SAMPLES, NUM_CHANNELS, BATCH_SIZE = 3, 3, 4
IG_STEPS, ERF_IMAGES = 16, 2
GALLERY_FILES = ['activations.json', 'index.html']  # beside the pictures of every activations run


def picture_names(layers):
    """The files an activations run draws for `layers`, sorted."""
    return sorted(f'{layer}-{kind}.jpg' for layer in layers for kind in ('full', 'crop'))


def jpeg_bytes(folder):
    """`{file name: contents}` of the pictures in `folder`."""
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder)) if name.endswith('.jpg')}


def script_flags(path, **flags):
    """The flags `keras_model.open_model` and `open_dataset` read, as keras_activations.py parses them."""
    return keras_activations.parse_args(['--model', path, '--batch_size', str(BATCH_SIZE)]
                                        + [f'--{name}={value}' for name, value in flags.items()])


# -- --print_all_names and bad input, in this process (quick) ------------------------------------------------

@pytest.mark.parametrize('script', list(SCRIPTS))
@pytest.mark.parametrize('model', ['sequential', 'sequential_h5'])
def test_print_all_names_lists_every_4d_layer_with_its_shape(keras_models, capsys, script, model):
    # The activations script needs no --images_dir to list the layers.
    assert run_main(SCRIPTS[script].main, ['--model', keras_models[model], '--print_all_names']) == 0
    assert capsys.readouterr().out.splitlines() == [
        'conv1 (None, 32, 32, 4)', 'pool1 (None, 16, 16, 4)', 'conv2 (None, 14, 14, 6)', 'bn (None, 14, 14, 6)',
        'drop (None, 14, 14, 6)']


def test_print_all_names_of_a_free_size_model_needs_no_image_size(keras_models, capsys):
    assert run_main(keras_recfield.main, ['--model', keras_models['free_size'], '--print_all_names']) == 0
    assert capsys.readouterr().out.splitlines() == ['conv (None, None, None, 3)', 'conv2 (None, None, None, 2)']


@pytest.mark.parametrize('script', list(SCRIPTS))
def test_an_image_size_that_cannot_fit_in_memory_is_refused_before_the_model_runs(keras_models, capsys, tmp_path,
                                                                                   script):
    out_dir = tmp_path / 'out'
    images = ['--images_dir', str(tmp_path)] if script == 'keras_activations.py' else []
    assert run_main(SCRIPTS[script].main, ['--model', keras_models['free_size'], '--image_size', '30000', '30000',
                                           '--out_dir', str(out_dir), *images]) == 2
    error = capsys.readouterr().err.strip()
    # The scan holds its batch and the batches decoded ahead: at this size more than the probes' maps.
    step = 'scan' if script == 'keras_activations.py' else 'receptive-field probes'
    assert error.startswith('error: this run needs at least ') and f'GiB of memory for its {step}, more than' \
        in error and error.endswith('lower --batch_size or --image_size.') and '\n' not in error
    assert not out_dir.exists()


def not_a_model(folder):
    path = os.path.join(folder, 'notes.txt')
    with open(path, 'w') as stream:
        stream.write('not a model')
    return path


def folder_without_images(folder):
    path = os.path.join(folder, 'empty_photos')
    os.makedirs(path)
    with open(os.path.join(path, 'notes.txt'), 'w') as stream:
        stream.write('not an image')
    return path


# (scripts, model or function(folder) making the file, flags or functions(folder) making them, message)
BAD_INPUT = {
    'not-a-keras-file': (SCRIPTS, not_a_model, [], 'is not a Keras model file: --model takes a .keras file'),
    'missing-file': (SCRIPTS, lambda folder: os.path.join(folder, 'missing.keras'), [], 'no model file at '),
    'no-such-layer': (SCRIPTS, 'sequential', ['--layers', 'conv1,conv'],
                      "no layer 'conv' in the model. Did you mean conv2, conv1? Run with --print_all_names"),
    'dense-layer': (SCRIPTS, 'sequential', ['--layers', 'dense'],
                    'layer dense has output shape (None, 3); a layer must have a 4-D output [batch, height, width, '
                    'channels], such as a convolution'),
    'flatten-layer': (SCRIPTS, 'sequential_h5', ['--layers', 'flat'], 'layer flat has output shape (None, 1176)'),
    'free-size': (SCRIPTS, 'free_size', [], 'the model takes images of any size; give the size to use with '
                                            '--image_size H W.'),
    'lambda': (SCRIPTS, 'lambda', [], 'holds Python code (a Lambda layer) that safe mode will not run; if you trust '
                                      'the file, add --unsafe_load.'),
    'image-size-of-a-fixed-model': (SCRIPTS, 'sequential', ['--image_size', '64', '64'],
                                    "--image_size 64 64 differs from the model's input size 32x32"),
    'no-readable-image': (['keras_activations.py'], 'sequential', ['--images_dir', folder_without_images],
                          'no readable image under '),
    'no-images-dir': (['keras_activations.py'], 'sequential', [], '--images_dir is required'),
}
BAD_INPUT_RUNS = [(name, script) for name, (scripts, *_) in BAD_INPUT.items() for script in scripts]


def bad_input_argv(case, script, keras_models, photos_dir, folder):
    """The flags of a `BAD_INPUT` case for `script`, writing to `folder/out`; keras_activations.py also gets an
    `--images_dir` of good photographs unless the case is about the images."""
    _, model, flags, _ = BAD_INPUT[case]
    argv = ['--model', model(folder) if callable(model) else keras_models[model], '--out_dir',
            os.path.join(folder, 'out'), *[flag(folder) if callable(flag) else flag for flag in flags]]
    if script == 'keras_activations.py' and case not in ('no-readable-image', 'no-images-dir'):
        argv += ['--images_dir', photos_dir]
    return argv


@pytest.mark.parametrize('case, script', BAD_INPUT_RUNS, ids=[f'{case}-{script[:-3]}' for case, script in
                                                              BAD_INPUT_RUNS])
def test_bad_input_is_a_one_line_error_and_writes_nothing(keras_models, photos_dir, tmp_path, capsys, case, script):
    argv = bad_input_argv(case, script, keras_models, photos_dir, str(tmp_path))
    assert run_main(SCRIPTS[script].main, argv) == 2
    error = capsys.readouterr().err
    assert error.startswith('error: ') and error.count('\n') == 1, error
    assert BAD_INPUT[case][3] in error
    assert not (tmp_path / 'out').exists()  # the folder is made once model, layers and images are good


def test_a_shard_with_bad_input_saves_no_state(keras_models, photos_dir, tmp_path, capsys):
    argv = ['--model', keras_models['sequential'], '--images_dir', photos_dir, '--layers', 'dense',
            '--out_dir', str(tmp_path / 'states'), '--num_shards', '2', '--shard_index', '0']
    assert run_main(keras_activations.main, argv) == 2
    error = capsys.readouterr().err
    assert error.startswith('error: layer dense has output shape (None, 3)') and error.count('\n') == 1
    assert not (tmp_path / 'states').exists() or os.listdir(tmp_path / 'states') == []


# -- MobileNetV2: the closed form worked out by hand (quick) -------------------------------------------------

# MobileNetV2's default layers at 96x96, size, stride and padding along each axis. Conv1 (3x3, stride 2, SAME on
# an even size: no padding before), then each block's 3x3 depthwise convolution: stride 1 SAME pads 1 line
# before, stride 2 pads only after. block_N_expand_relu sees Conv1 and the depthwise convolutions of blocks 0 to
# N-1: 7 = 3 + 2*2, 19 = 7 + 2*2 + 2*4, 59 = 19 + 2*4 + 2*8 + 2*8. block_13 (267) and out_relu see more than 96.
MOBILENET_V2_GEOMETRY = {'block_1_expand_relu': (7, 2, 2), 'block_3_expand_relu': (19, 4, 6),
                         'block_6_expand_relu': (59, 8, 22), 'block_13_expand_relu': (267, 16, 118)}
MOBILENET_V2_DEFAULT_LAYERS = ['block_1_expand_relu', 'block_3_expand_relu', 'block_6_expand_relu',
                               'block_13_expand_relu', 'out_relu']
MOBILENET_V2_CHANNELS = dict(zip(MOBILENET_V2_DEFAULT_LAYERS, [96, 144, 192, 576, 1280]))


def test_mobilenet_v2_closed_form_has_the_geometry_worked_out_by_hand():
    path = [dict(kernel=3, stride=2, pad_before=0)] + [  # Conv1, then each block's depthwise convolution
        dict(kernel=3, stride=stride, pad_before=1 if stride == 1 else 0) for stride in MOBILENET_V2_STRIDES]
    fields = closed_form_fields(mobilenet_v2_reads, MOBILENET_SIZE, MOBILENET_SIZE)
    for name, geometry in MOBILENET_V2_GEOMETRY.items():
        block = int(name.split('_')[1])
        assert chain_geometry(path[:block + 1]) == geometry, name
        field = fields[name]
        if geometry[0] < MOBILENET_SIZE:  # the boxes tell size, stride and padding
            assert (field.size, field.stride, field.padding) == tuple((value, value) for value in geometry), name
        else:  # every box is the whole image
            assert (field.recfield == [0, 0, MOBILENET_SIZE, MOBILENET_SIZE]).all() and field.size is None, name


# -- keras_activations.py: a single run, two shards and a Dask run of the Sequential model (slow) -------------

@pytest.fixture(scope='module')
def sequential_scans(keras_models, photos_dir, tmp_path_factory):
    """`{run: (out_dir, CompletedProcess)}`: `single`, `shard-0` and `shard-1` (of 2, into one folder), `dask`
    (2 shards on a local cluster of one worker, with --tensorboard_dir), `list` (an --images_list) and `explained`
    (integrated gradients and effective receptive fields), all finished successfully, all with the default layers (a
    Dask run without --layers once failed counting them: args.layers is None)."""
    root = tmp_path_factory.mktemp('keras_activations')
    common = ['--model', keras_models['sequential'], '--batch_size', BATCH_SIZE, '--num_samples', NUM_SAMPLES,
              '--num_channels', NUM_CHANNELS]
    folder = ['--images_dir', photos_dir]
    runs = {'single': ['--out_dir', root / 'single', *folder],
            'shard-0': ['--out_dir', root / 'states', '--num_shards', 2, '--shard_index', 0, *folder],
            'shard-1': ['--out_dir', root / 'states', '--num_shards', 2, '--shard_index', 1, *folder],
            'dask': ['--out_dir', root / 'dask', '--dask_scheduler', 'local', '--dask_workers', 1, '--num_shards', 2,
                     '--tensorboard_dir', root / 'logs', *folder],
            'list': ['--out_dir', root / 'list', '--images_list', write_hostile_images_list(root, photos_dir)],
            'explained': ['--out_dir', root / 'explained', *folder, '--attribution', 'integrated_gradients',
                          '--ig_steps', IG_STEPS, '--erf', '--erf_images', ERF_IMAGES]}
    results = run_scripts_together([('keras_activations.py', *common, *flags) for flags in runs.values()])
    for name, result in zip(runs, results):
        assert result.returncode == 0, f'{name}: {result.stderr[-3000:]}'
    return {name: (flags[1], result) for (name, flags), result in zip(runs.items(), results)}


def write_hostile_images_list(folder, photos_dir):
    """Writes `<folder>/lists/images.txt`: the photographs of `photos_dir` in their folder order (paths relative to
    the list, one absolute), among a PNG whose header says 30000x30000, a 40 GB file that is not an image (sparse),
    and a missing file. Returns its path."""
    write_png_claiming(str(folder / 'bomb.png'), 30000, 30000)
    write_sparse_file(str(folder / 'holiday.mkv'), 40 << 30)
    names = sorted(os.path.relpath(os.path.join(root, name), photos_dir) for root, _, names in os.walk(photos_dir)
                   for name in names if name.endswith('.png'))
    lines = [os.path.relpath(os.path.join(photos_dir, name), folder / 'lists') for name in names]
    lines[4] = os.path.join(photos_dir, names[4])
    lines[2:2] = ['../bomb.png', '../holiday.mkv', '../missing.jpg']
    (folder / 'lists').mkdir()
    (folder / 'lists' / 'images.txt').write_text('\n'.join(lines) + '\n')
    return folder / 'lists' / 'images.txt'


@pytest.fixture(scope='module')
def sequential_fields():
    return closed_form_fields(sequential_reads, IMAGE_SIZE, IMAGE_SIZE)


@pytest.mark.slow
def test_activations_print_the_closed_form_fields_and_draw_every_layer(sequential_scans, sequential_fields):
    out_dir, result = sequential_scans['single']
    assert layer_lines(result.stdout) == closed_form_lines(sequential_fields, SEQUENTIAL_CHANNELS,
                                                           SEQUENTIAL_DEFAULT_LAYERS)
    assert 'skipped 1 of 11 files' in result.stderr  # the text file among the photographs
    assert sorted(os.listdir(out_dir)) == sorted(picture_names(SEQUENTIAL_DEFAULT_LAYERS) + GALLERY_FILES)
    for layer in SEQUENTIAL_DEFAULT_LAYERS:
        for kind, cell in (('full', IMAGE_SIZE), ('crop', sequential_fields[layer].max()[0])):
            height, width = cv2.imread(str(out_dir / f'{layer}-{kind}.jpg')).shape[:2]
            # a column per channel, a row per sample, a caption strip above
            assert width == NUM_CHANNELS * (cell + 2), (layer, kind)
            assert 0 < height - NUM_SAMPLES * (cell + 2) <= 40, (layer, kind)


@pytest.mark.slow
def test_activations_show_the_photographs_each_channel_fires_on_most(sequential_scans, keras_models, photos_dir):
    out_dir, _ = sequential_scans['single']
    model = keras_file.load_model(keras_models['sequential'])
    opened = keras_model.open_model(script_flags(keras_models['sequential']))
    inputs, display, _ = (np.concatenate(parts) for parts in zip(*read_batches(
        keras_model.open_dataset(script_flags(keras_models['sequential'], images_dir=photos_dir), opened))))
    features = keras.Model(model.inputs[0], model.get_layer('pool1').output).predict(inputs, verbose=0)
    firings = features.max(axis=(1, 2))  # [photograph, channel]
    channels = np.flatnonzero(firings.max(axis=0) > 0)[:NUM_CHANNELS]
    picture = cv2.imread(str(out_dir / 'pool1-full.jpg')).astype(np.float32)
    cell = IMAGE_SIZE + 2
    top_row = picture[-NUM_SAMPLES * cell + 1:-(NUM_SAMPLES - 1) * cell - 1]
    for column, channel in enumerate(channels):
        drawn = top_row[:, column * cell + 1:column * cell + 1 + IMAGE_SIZE]
        distances = np.abs(display.astype(np.float32) - drawn).mean(axis=(1, 2, 3))
        assert np.argmin(distances) == np.argmax(firings[:, channel]), channel


@pytest.mark.slow
def test_shards_merge_to_the_pictures_of_a_single_run(sequential_scans, tmp_path, capsys):
    single_dir, single = sequential_scans['single']
    states_dir, shard_0 = sequential_scans['shard-0']
    # Shard 0 measures every layer's receptive field and prints the single run's lines.
    assert layer_lines(shard_0.stdout) == layer_lines(single.stdout)
    assert sorted(os.listdir(states_dir)) == sorted(f'state-{layer}-{index}-of-2.npz' for layer in
                                                    SEQUENTIAL_DEFAULT_LAYERS for index in (0, 1))
    assert merge(sorted(states_dir.glob('state-*.npz')), tmp_path) == 0
    assert capsys.readouterr().out.splitlines() == drawing_lines(single.stdout)
    pictures = jpeg_bytes(tmp_path)
    assert list(pictures) == picture_names(SEQUENTIAL_DEFAULT_LAYERS) and pictures == jpeg_bytes(single_dir)
    state = ShardState.load(str(tmp_path / 'state-pool1.npz'))
    assert state.shards == (0, 1) and state.tracker.num_seen == 10
    assert set(state.image_ids.values()) <= {f'photo_{index:02d}.png' for index in range(10)} | {'more/photo_03.png'}


@pytest.mark.slow
def test_an_images_list_skips_what_is_not_an_image_and_draws_the_folders_pictures(sequential_scans):
    single_dir, single = sequential_scans['single']
    list_dir, listed = sequential_scans['list']
    assert jpeg_bytes(list_dir) == jpeg_bytes(single_dir)  # the same images in the same batches
    assert f'skipped 2 of 13 files listed in {list_dir.parent / "lists" / "images.txt"} that are not readable ' \
           'images (first: ' in listed.stderr  # the 40 GB file and the missing one
    assert 'skipped 1 images listed in' in listed.stderr and 'bomb.png, 30000x30000)' in listed.stderr


@pytest.mark.slow
def test_dask_run_draws_the_pictures_of_a_single_run_and_logs_them(sequential_scans):
    single_dir, single = sequential_scans['single']
    dask_dir, dask = sequential_scans['dask']
    assert layer_lines(dask.stdout) == layer_lines(single.stdout)
    assert jpeg_bytes(dask_dir) == jpeg_bytes(single_dir)
    assert sorted(name for name in os.listdir(dask_dir) if name.endswith('.npz')) == sorted(
        f'state-{layer}.npz' for layer in SEQUENTIAL_DEFAULT_LAYERS)
    accumulator = EventAccumulator(str(dask_dir.parent / 'logs'))
    accumulator.Reload()
    assert sorted(accumulator.Tags()['tensors']) == sorted(f'{layer}/{kind}' for layer in SEQUENTIAL_DEFAULT_LAYERS
                                                           for kind in ('full', 'crop'))


@pytest.mark.slow
def test_integrated_gradients_and_effective_fields_are_written_recorded_and_drawn(sequential_scans):
    out_dir, result = sequential_scans['explained']
    assert_explained_run(out_dir, result.stdout, 'integrated_gradients', {'ig_steps': IG_STEPS}, 'gradients',
                         ERF_IMAGES)
    single_dir, _ = sequential_scans['single']
    pictures = jpeg_bytes(single_dir)
    assert {name: (out_dir / name).read_bytes() for name in pictures} == pictures  # the scan's pictures unchanged


@pytest.mark.slow
def test_integrated_gradients_sum_to_the_firing_less_the_reference_images(sequential_scans, keras_models):
    out_dir, _ = sequential_scans['explained']
    document = read_document(out_dir)
    with np.load(out_dir / 'attributions.npz') as stored:
        attributions = {key: stored[key] for key in stored.files}
    with keras_model.open_model(script_flags(keras_models['sequential'])) as model:
        assert document['attribution']['reference'] == pytest.approx(np.mean(model.value_range))
        reference = np.full((1, *model.imshape[1:]), document['attribution']['reference'], np.float32)
        reference_maps = model.run(reference)
    checked = 0
    for layer, reference_map in zip(document['layers'], reference_maps):
        for channel in layer['drawn_channels']:
            for record in layer['channels'][channel]:
                y, x = record['feature_yx']
                change = record['firing'] - float(reference_map[0, y, x, channel])
                total = float(attributions[record['attribution']].sum(dtype=np.float64))
                # Completeness, up to the sum's steps: 16 on these ReLUs miss by up to 4 %.
                assert total == pytest.approx(change, rel=0.05, abs=1e-3), (record['attribution'], total, change)
                checked += 1
    assert checked == len(attributions) > 0


@pytest.mark.slow
def test_a_run_without_attribution_flags_writes_no_attributions(sequential_scans):
    out_dir, result = sequential_scans['single']
    assert_not_explained(out_dir, result.stdout)


# -- keras_recfield.py on each kind of model, and the refusals, as subprocesses (slow) -------------------------

RECFIELD_RUNS = {
    'residual': ('keras_recfield.py', 'residual', ['--layers', ','.join(RESIDUAL_GEOMETRY)]),
    'sequential_h5': ('keras_recfield.py', 'sequential_h5', []),
    'free_size': ('keras_recfield.py', 'free_size', ['--image_size', *FREE_SIZE, '--layers', 'conv', 'conv2']),
    'lambda_unsafe': ('keras_recfield.py', 'lambda', ['--unsafe_load']),
    'free_size_without_image_size': ('keras_recfield.py', 'free_size', []),
    'lambda_in_safe_mode': ('keras_activations.py', 'lambda', ['--images_dir', 'PHOTOS']),
}


@pytest.fixture(scope='module')
def recfield_runs(keras_models, photos_dir, tmp_path_factory):
    """`{run: (out_dir, CompletedProcess)}` of `RECFIELD_RUNS`, run together."""
    root = tmp_path_factory.mktemp('keras_recfield')
    runs = [(script, '--model', keras_models[model], '--out_dir', root / name,
             *[photos_dir if flag == 'PHOTOS' else flag for flag in flags])
            for name, (script, model, flags) in RECFIELD_RUNS.items()]
    results = run_scripts_together(runs)
    return {name: (root / name, result) for name, result in zip(RECFIELD_RUNS, results)}


@pytest.mark.slow
def test_recfield_of_a_residual_and_concatenating_model_is_the_closed_form(recfield_runs):
    fields = closed_form_fields(residual_reads, IMAGE_SIZE, IMAGE_SIZE)
    assert_recfield_run(recfield_runs['residual'], fields, RESIDUAL_CHANNELS, list(RESIDUAL_GEOMETRY),
                        (IMAGE_SIZE, IMAGE_SIZE))
    printed = {line.split()[0]: line for line in layer_lines(recfield_runs['residual'][1].stdout)}
    for layer, (size, stride, padding) in RESIDUAL_GEOMETRY.items():
        assert printed[layer].endswith(f'receptive field {size}x{size} (stride {stride}x{stride}, padding '
                                       f'{padding}x{padding})'), layer


@pytest.mark.slow
def test_recfield_of_a_legacy_h5_file_is_the_closed_form(recfield_runs, sequential_fields):
    assert_recfield_run(recfield_runs['sequential_h5'], sequential_fields, SEQUENTIAL_CHANNELS,
                        SEQUENTIAL_DEFAULT_LAYERS, (IMAGE_SIZE, IMAGE_SIZE))


@pytest.mark.slow
def test_recfield_of_a_free_size_model_at_image_size_is_the_closed_form(recfield_runs):
    fields = closed_form_fields(free_size_reads, *FREE_SIZE)
    assert_recfield_run(recfield_runs['free_size'], fields, FREE_SIZE_CHANNELS, ['conv', 'conv2'], FREE_SIZE)
    assert layer_lines(recfield_runs['free_size'][1].stdout)[1] == (
        'conv2 feature map is of shape 12x16x2 and has receptive field 7x7 (stride 2x2, padding 3x2)')


@pytest.mark.slow
def test_a_lambda_model_runs_with_unsafe_load_and_a_warning(recfield_runs):
    # Its default layer is the last at 32x32: the Lambda layer, which doubles a 3x3 convolution.
    conv = closed_form_fields(lambda length: {'double': sequential_reads(length)['conv1']}, IMAGE_SIZE, IMAGE_SIZE)
    assert_recfield_run(recfield_runs['lambda_unsafe'], conv, LAMBDA_CHANNELS, ['double'], (IMAGE_SIZE, IMAGE_SIZE))
    assert 'WARNING utils.models.keras_file: --unsafe_load: ' in recfield_runs['lambda_unsafe'][1].stderr
    assert 'may run Python code of its own while it loads; use only files you trust.' in \
        recfield_runs['lambda_unsafe'][1].stderr


@pytest.mark.slow
@pytest.mark.parametrize('run, message', [
    ('free_size_without_image_size', 'error: the model takes images of any size; give the size to use with '
                                     '--image_size H W.'),
    ('lambda_in_safe_mode', 'that safe mode will not run; if you trust the file, add --unsafe_load.'),
])
def test_refusals_are_one_line_errors_in_a_subprocess(recfield_runs, run, message):
    out_dir, result = recfield_runs[run]
    assert_one_line_error(result, message)
    assert not out_dir.exists()


# -- MobileNetV2 at 96x96 (slow) ------------------------------------------------------------------------------

@pytest.mark.slow
def test_mobilenet_v2_fields_are_the_closed_form_and_every_layer_is_drawn(mobilenet_v2_path, photos_dir, tmp_path):
    result = run_script('keras_activations.py', '--model', mobilenet_v2_path, '--images_dir', photos_dir,
                        '--preprocess', 'tf', '--batch_size', 5, '--num_samples', 2, '--num_channels', NUM_CHANNELS,
                        '--out_dir', tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    fields = closed_form_fields(mobilenet_v2_reads, MOBILENET_SIZE, MOBILENET_SIZE)
    assert layer_lines(result.stdout) == closed_form_lines(fields, MOBILENET_V2_CHANNELS, MOBILENET_V2_DEFAULT_LAYERS)
    printed = layer_lines(result.stdout)
    for line, (size, stride, padding) in zip(printed, list(MOBILENET_V2_GEOMETRY.values())[:3]):
        assert line.endswith(f'{size}x{size} (stride {stride}x{stride}, padding {padding}x{padding})'), line
    assert printed[3].endswith('up to 96x96 (boxes clipped by the image; size, stride and padding unknown)')
    # The layers whose boxes cover the image are edge-searched: fewer probe images than one per line (4 runs).
    [num_probe_images] = re.findall(r'^receptive fields: 5 layers, (\d+) probe images', result.stdout, re.M)
    assert int(num_probe_images) < 4 * (MOBILENET_SIZE + MOBILENET_SIZE)
    assert sorted(os.listdir(tmp_path)) == sorted(picture_names(MOBILENET_V2_DEFAULT_LAYERS) + GALLERY_FILES)
    for name in picture_names(MOBILENET_V2_DEFAULT_LAYERS):
        assert cv2.imread(str(tmp_path / name)).shape[1] > NUM_CHANNELS * 3, name


@pytest.mark.slow
def test_mobilenet_v2_print_all_names_lists_its_4d_layers(mobilenet_v2_path, capsys):
    assert run_main(keras_activations.main, ['--model', mobilenet_v2_path, '--print_all_names']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ['Conv1 (None, 48, 48, 32)', 'bn_Conv1 (None, 48, 48, 32)', 'Conv1_relu (None, 48, 48, 32)']
    assert 'block_1_pad (None, 49, 49, 96)' in lines and 'block_16_project_BN (None, 3, 3, 320)' in lines
    assert lines[-1] == 'out_relu (None, 3, 3, 1280)'
    # every layer but the input, the global pooling and the classifier
    model = keras_file.load_model(mobilenet_v2_path)
    assert [line.split()[0] for line in lines] == [layer.name for layer in model.layers[1:-2]]
