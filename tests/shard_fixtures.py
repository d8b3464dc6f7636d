"""Examples for the pipeline, shard and state tests: VGG16 from the command line, and a network in numpy.

`vgg16_scans` runs the VGG16 example whole and in shards, once per session, as subprocesses started
together (slow): 12 tiles of 64 pixels in batches of 4, two layers, 3 images per channel, 4 channels drawn.
The runs: a single run that draws the pictures, the two shards of a 2-shard scan, the single shard of a
1-shard scan (the state of a single run), shard 1 of 2 with another --num_samples (a state that must not
merge with the others), and a single run with `EXPLAIN_FLAGS` (attributions by gradient x input and effective
receptive fields). `vgg16_states_runs` then draws the two shards' states with `--states` and `EXPLAIN_FLAGS`.

`BOX_FILTER_EXAMPLE` is a whole example without TensorFlow (quick): a 3x3 box filter and its negative with
ReLU (`conv/Relu:0`), then a 2x2 max-pool of stride 2 (`pool/MaxPool:0`), on 12x12 grey images, written in
numpy. Its inputs are multiples of 1/128, so TensorFlow computes the same maps exactly. `TILED_EXAMPLE` runs the
same network on tiles of three small photographs with bright and dark spots, cut as the VGG16 example cuts its
photographs (half a tile apart, each also mirrored), so that one spot shows in several tiles: their places;
`run_tiled` runs it as a script's single run does.
"""

import argparse
import concurrent.futures
import os

import numpy as np
import pytest

from activations import CANDIDATES_PER_SAMPLE
from conftest import run_script
from utils import merge_activations
from utils.core import pipeline
from utils.core.attributing import AttributionOptions
from utils.core.model import Example, Layer, Model
from utils.core.recfield_cache import default_dir as default_cache_dir
from utils.data import images
from utils.examples import vgg16
from utils.running.cli import run_main

LAYERS = [vgg16.relu_tensor_name(1, 2), vgg16.relu_tensor_name(3, 3)]
FLAGS = ['--max_images', '12', '--image_size', '64', '--layers', ','.join(LAYERS), '--num_samples', '3',
         '--num_channels', '4', '--batch_size', '4']
EXPLAIN_FLAGS = ['--attribution', 'gradients', '--erf', '--erf_images', '3']
RUNS = {
    'single': [],
    'shard-0-of-2': ['--num_shards', '2', '--shard_index', '0'],
    'shard-1-of-2': ['--num_shards', '2', '--shard_index', '1'],
    'shard-0-of-1': ['--num_shards', '1', '--shard_index', '0'],
    'other_num_samples': ['--num_shards', '2', '--shard_index', '1', '--num_samples', '2'],
    'explained': EXPLAIN_FLAGS,
}


def run_scripts_together(runs, timeout=300):
    """Runs scripts at the same time (`conftest.run_script` each); `runs` are `(script, *args)` tuples.

    Returns:
        their `subprocess.CompletedProcess`es, in the order of `runs`.
    """
    with concurrent.futures.ThreadPoolExecutor(len(runs)) as executor:
        return list(executor.map(lambda run: run_script(*run, timeout=timeout), runs))


@pytest.fixture(scope='session')
def vgg16_scans(tmp_path_factory):
    """`{run: (out_dir, CompletedProcess)}` for the runs of `RUNS`, all finished successfully."""
    root = tmp_path_factory.mktemp('vgg16_scans')
    out_dirs = {name: root / name for name in RUNS}
    results = run_scripts_together([('vgg16_activations.py', *FLAGS, *flags, '--out_dir', out_dirs[name])
                                    for name, flags in RUNS.items()])
    for name, result in zip(RUNS, results):
        assert result.returncode == 0, f'{name}: {result.stderr}'
    return {name: (out_dirs[name], result) for name, result in zip(RUNS, results)}


def flags_with(**values):
    """`FLAGS` with the values of some flags changed (`layers='a,b'`)."""
    flags = list(FLAGS)
    for name, value in values.items():
        flags[flags.index(f'--{name}') + 1] = str(value)
    return flags


# run: flags beside --states (the states of shards 0 and 1 of 2) and --out_dir
STATES_RUNS = {
    'explained': [*FLAGS, *EXPLAIN_FLAGS],
    'other_layers': [*flags_with(layers=LAYERS[0]), *EXPLAIN_FLAGS],
    'other_num_samples': [*flags_with(num_samples=2), *EXPLAIN_FLAGS],
}


@pytest.fixture(scope='session')
def vgg16_states_runs(vgg16_scans, tmp_path_factory):
    """`{run: (out_dir, CompletedProcess)}` of vgg16_activations.py drawing the states of `vgg16_scans`' 2-shard scan
    with `--states` (`STATES_RUNS`), run together: `explained` with the scan's flags, and two runs whose --layers or
    --num_samples differ from the scan's (refused). Not checked here: some must fail."""
    root = tmp_path_factory.mktemp('vgg16_states')
    states = shard_state_paths(vgg16_scans, 'shard-0-of-2', 'shard-1-of-2')
    out_dirs = {name: root / name for name in STATES_RUNS}
    results = run_scripts_together([('vgg16_activations.py', *flags, '--states', *states, '--out_dir', out_dirs[name])
                                    for name, flags in STATES_RUNS.items()])
    return {name: (out_dirs[name], result) for name, result in zip(STATES_RUNS, results)}


def merge(paths, out_dir, *flags):
    """Runs utils/merge_activations.py on state files in this process; returns its exit status."""
    return run_main(merge_activations.main, ['--states', *map(str, paths), '--out_dir', str(out_dir), *flags])


def shard_state_paths(scans, *runs):
    """The state files written by the given runs of `vgg16_scans`, run by run, each run's sorted by layer."""
    return [str(scans[run][0] / name) for run in runs for name in sorted(os.listdir(scans[run][0]))
            if name.startswith('state-')]


def assert_same_state(state, expected):
    """Two `ShardState`s hold the same scan: layer, tracker, its statistics, kept images and their names, receptive
    field, run (but for the number of shards)."""
    assert state.layer == expected.layer
    for name in ('firings', 'coords', 'indices', 'kept_image_indices', 'num_seen', 'next_index', 'num_samples'):
        np.testing.assert_array_equal(getattr(state.tracker, name), getattr(expected.tracker, name), err_msg=name)
    for channel in range(expected.tracker.num_channels):
        for image, expected_image in zip(state.tracker.channel(channel)[3], expected.tracker.channel(channel)[3]):
            np.testing.assert_array_equal(image, expected_image)
    assert state.image_ids == expected.image_ids
    statistics, expected_statistics = state.tracker.statistics.to_arrays(), expected.tracker.statistics.to_arrays()
    for name, array in expected_statistics.items():
        np.testing.assert_array_equal(statistics[name], array, err_msg=name)
    assert state.field == expected.field and state.num_channels == expected.num_channels
    assert {**state.run, 'num_shards': 0} == {**expected.run, 'num_shards': 0}


# -- the box-filter example, in numpy ---------------------------------------------------------------------------

BOX_LAYERS = [Layer('conv/Relu:0', 2), Layer('pool/MaxPool:0', 2)]
BOX_IMAGE_SIZE = 12
BOX_IMSHAPE = [4, BOX_IMAGE_SIZE, BOX_IMAGE_SIZE, 1]
BOX_VALUE_RANGE = (-1.0, 1.0)
# What pipeline.measure_receptive_fields prints for it: the fields follow from the two layers' arithmetic.
BOX_DESCRIPTIONS = [
    'conv/Relu:0 feature map is of shape 12x12x2 and has receptive field 3x3 (stride 1x1, padding 1x1)',
    'pool/MaxPool:0 feature map is of shape 6x6x2 and has receptive field 4x4 (stride 2x2, padding 1x1)',
]


def box_filter_maps(batch, layers=BOX_LAYERS):
    """The feature maps of `layers` (some of `BOX_LAYERS`) for a float32 batch `[n, 12, 12, 1]`."""
    images = np.asarray(batch, np.float32)[..., 0]
    num_images, height, width = images.shape
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))  # SAME padding with zeros
    total = sum(padded[:, dy:dy + height, dx:dx + width] for dy in range(3) for dx in range(3))
    conv = np.maximum(np.stack([total, -total], axis=-1), 0)
    pool = conv.reshape(num_images, height // 2, 2, width // 2, 2, 2).max(axis=(2, 4))
    maps = {'conv/Relu:0': conv, 'pool/MaxPool:0': pool}
    return [maps[layer.name] for layer in layers]


def box_filter_images(num_images, seed=0, classes=None):
    """`(inputs, display_images)`: float32 `[n, 12, 12, 1]` in multiples of 1/128, and the same as uint8 BGR. With
    `classes` (`'bright'` or `'dark'` per image), bright images are above the middle grey and dark ones below it: the
    box filter fires on bright images only, its negative on dark ones only."""
    grey = np.random.default_rng(seed).integers(0, 256, (num_images, BOX_IMAGE_SIZE, BOX_IMAGE_SIZE, 1))
    if classes is not None:
        grey = np.where(np.array([name == 'bright' for name in classes])[:, None, None, None], 128 + grey // 2,
                        grey // 2)
    return ((grey - 128) / 128).astype(np.float32), np.repeat(grey, 3, axis=-1).astype(np.uint8)


def open_box_filter_model(args, fingerprint=None):
    """The box-filter network as a `Model` (it ignores `args`); its receptive fields are cached only
    when given a `fingerprint` (numpy layers have no graph to take one from)."""
    return Model(box_filter_maps, BOX_LAYERS, BOX_IMSHAPE, BOX_VALUE_RANGE, model_id='box filter 3x3',
                 fingerprint=fingerprint)


def open_box_filter_dataset(args, model=None):
    """`args.num_images` images of `box_filter_images` in batches of `args.batch_size`, named `grey-<i>.png`, of
    the classes `args.classes` if given."""
    classes = getattr(args, 'classes', None)
    inputs, display_images = box_filter_images(args.num_images, classes=classes)

    def read(start, stop):
        for first in range(start, stop, args.batch_size):
            last = min(first + args.batch_size, stop)
            yield inputs[first:last], display_images[first:last], np.arange(first, last)
    return pipeline.Dataset([f'grey-{index}.png' for index in range(args.num_images)], args.batch_size, read, classes)


BOX_FILTER_EXAMPLE = Example('box_filter', open_box_filter_model, open_box_filter_dataset)


def box_filter_args(out_dir, **flags):
    """The flags an `*_activations.py` script would parse for the box-filter example (`utils.running.shards.run`)."""
    values = dict(num_images=10, batch_size=4, num_samples=3, num_channels=0, layers=[layer.name for layer in
                  BOX_LAYERS], out_dir=str(out_dir), tensorboard_dir=None, print_all_names=False, num_shards=None,
                  shard_index=None, dask_scheduler=None, dask_workers=None, recfield_cache=default_cache_dir(),
                  no_recfield_cache=False, allow_repeats=False, candidates_per_sample=CANDIDATES_PER_SAMPLE,
                  bottom_k=0)
    return argparse.Namespace(**{**values, **flags})


# -- the box-filter example on tiles of photographs ---------------------------------------------------------------

PHOTO_SIZES = ((24, 32), (30, 24), (24, 24))
TILE_STEP = BOX_IMAGE_SIZE // 2  # as the VGG16 example: one place of a photograph lies in several tiles


def tiled_photos():
    """`(names, photos)`: grey photographs of `PHOTO_SIZES` as uint8 BGR, a noisy background with three bright or
    dark 3x3 spots each, for the box filter and its negative to fire on."""
    rng = np.random.default_rng(5)
    photos = []
    for height, width in PHOTO_SIZES:
        grey = rng.integers(60, 200, (height, width))
        for _ in range(3):
            y, x = rng.integers(0, height - 2), rng.integers(0, width - 2)
            grey[y:y + 3, x:x + 3] = rng.choice([0, 255])
        photos.append(np.repeat(grey[..., None], 3, axis=-1).astype(np.uint8))
    return [f'photo-{number}.png' for number in range(len(photos))], photos


def open_tiled_dataset(args, model=None):
    """The 72 tiles of `tiled_photos` (12 pixels, `TILE_STEP` apart, each also mirrored), named as the VGG16 example
    names them, with their places unless `args.allow_repeats`, in batches of `args.batch_size`; inputs as
    `box_filter_images` makes them."""
    names, photos = tiled_photos()
    positions = images.tile_positions([photo.shape[:2] for photo in photos], BOX_IMAGE_SIZE, TILE_STEP)

    def read(start, stop):
        for tiles, indices in images.tile_batches(photos.__getitem__, positions[start:stop], BOX_IMAGE_SIZE,
                                                  args.batch_size, start):
            yield (tiles[..., :1].astype(np.float32) - 128) / 128, tiles, indices
    places = None if args.allow_repeats else images.tile_places(positions, BOX_IMAGE_SIZE)
    return pipeline.Dataset([images.tile_id(names, position) for position in positions], args.batch_size, read,
                            places=places)


TILED_EXAMPLE = Example('tiled', open_box_filter_model, open_tiled_dataset)


def tiled_args(out_dir, **flags):
    """`box_filter_args` of the tiled example in batches of 8, with the attribution flags."""
    defaults = dict(batch_size=8, attribution=None, ig_steps=8, occlusion_window=None, occlusion_stride=None,
                    erf=False, erf_images=0, heatmap=False)
    return box_filter_args(out_dir, **{**defaults, **flags})


def run_tiled(out_dir, **flags):
    """A single run of the tiled example into `out_dir` (created), as an example script runs it."""
    out_dir.mkdir()
    args = tiled_args(out_dir, **flags)
    with open_box_filter_model(args) as model:
        dataset = open_tiled_dataset(args, model)
        fields = pipeline.measure_receptive_fields(model, print_lines=False)
        trackers = pipeline.scan(model, dataset, args.num_samples, print_line=False,
                                 candidates_per_sample=args.candidates_per_sample, bottom_k=args.bottom_k)
        pipeline.draw(model, fields, trackers, str(out_dir), 0, dataset=dataset, heatmap=args.heatmap,
                      attribution=AttributionOptions(args.attribution), num_samples=args.num_samples)
    return model, dataset, trackers


def outputs(folder):
    """{file name: bytes} of what a run drew and wrote for the gallery (no states)."""
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder)) if not name.startswith('state-')}
