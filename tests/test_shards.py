"""Sharded scans (`utils/running/shards.py`): the flags, the `Scanner` (`utils/running/scanner.py`), and shards
merged by `utils/merge_activations.py`.

The merge of all shards must draw the pictures of a single run byte for byte (JPEG encoding is deterministic
for equal pixels) and hold the state of a single run, array for array: quickly for the box-filter example
in this process, on whole images and on tiles of photographs whose top lists show distinct places, and (slow) for
the VGG16 example from the command line (`shard_fixtures.vgg16_scans`) and the CIFAR-10 and FaceNet examples,
FaceNet with an unreadable image that leaves a gap in the dataset indices.
The states alone are tested in `test_states.py`.
"""

import os

import numpy as np
import pytest

import vgg16_activations
from conftest import (EXPLANATION_FILES, assert_one_line_error, drawing_lines, erf_lines, layer_lines,
                      probe_image_counts, read_document)
from facenet_fixtures import make_lfw
from activations import TopActivations
from shard_fixtures import (BOX_DESCRIPTIONS, BOX_FILTER_EXAMPLE, FLAGS, LAYERS, TILED_EXAMPLE, assert_same_state,
                            box_filter_args, merge, open_box_filter_dataset, open_box_filter_model, outputs,
                            run_scripts_together, run_tiled, shard_state_paths, tiled_args)
from utils.base.layer_names import file_stem
from utils.core import pipeline
from utils.core.model import Example
from utils.core.states import ShardState, state_path
from utils.examples import vgg16
from utils.running import shards
from utils.running.cli import run_main

PICTURES = sorted(f'{file_stem(layer)}-{kind}.jpg' for layer in LAYERS for kind in ('full', 'crop'))


def pictures(folder):
    """{file name: bytes} of the `.jpg` pictures in a folder."""
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder)) if name.endswith('.jpg')}


# -- flags -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('flags, message', [
    (['--shard_index', '0'], 'give both --num_shards N and --shard_index I'),
    (['--num_shards', '2'], 'give both --num_shards N and --shard_index I'),
    (['--num_shards', '2', '--shard_index', '2'], '--shard_index 2 is not a shard of 2: give 0 to 1'),
    (['--dask_scheduler', 'local', '--shard_index', '0'], 'Give one or the other'),
    (['--dask_scheduler', 'tcp://127.0.0.1:8786', '--dask_workers', '2'], '--dask_workers sets the size'),
    (['--num_shards', '2', '--shard_index', '0', '--tensorboard_dir', 'logs'], 'give it to utils/merge_activations'),
    (['--num_shards', '2', '--shard_index', '0', '--attribution', 'gradients'],
     '--attribution and --erf need the merged states of every shard: merge them (utils/merge_activations.py), then '
     'run this script with --states <merged states> and these flags; or scan with --dask_scheduler.'),
    (['--num_shards', '2', '--shard_index', '1', '--erf'], 'need the merged states of every shard'),
    (['--states', 'state.npz', '--num_shards', '2', '--shard_index', '0'], '--states draws the states of an earlier '
     'scan instead of scanning; leave out --num_shards, --shard_index and --dask_scheduler.'),
])
def test_shard_flags_that_do_not_go_together_are_one_line_errors(tmp_path, capsys, flags, message):
    assert run_main(vgg16_activations.main, flags + ['--out_dir', str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith('error: ') and message in error and error.count('\n') == 1


def test_shard_flags_ask_for_a_sharded_run():
    assert not shards.requested(vgg16_activations.parse_args([]))
    assert shards.requested(vgg16_activations.parse_args(['--num_shards', '2', '--shard_index', '1']))
    assert shards.requested(vgg16_activations.parse_args(['--dask_scheduler', 'local']))
    assert not shards.requested(vgg16_activations.parse_args(['--num_shards', '2', '--print_all_names']))


# -- the box-filter example, in this process ---------------------------------------------------------------------

def test_scanner_reads_a_shard_and_shard_0_measures_every_field(tmp_path):
    with shards.Scanner(BOX_FILTER_EXAMPLE, box_filter_args(tmp_path)) as scanner:
        batches = list(scanner.dataset.read(4, 10))
        assert [batch[2].tolist() for batch in batches] == [[4, 5, 6, 7], [8, 9]]
        states = scanner.scan(1, 2)
        first_states = scanner.scan(0, 2)
        run = scanner.run_values(2)
        assert scanner.fields() is scanner.fields()  # measured once per scanner
    # Shard 0 measures every layer's field (one set of probes), the other shards none.
    assert [state.field for state in states] == [None, None]
    assert [state.describe() for state in first_states] == BOX_DESCRIPTIONS
    assert [state.shards for state in states] == [(1,), (1,)] and states[0].source == 'shard 1 of 2'
    assert all(index >= 4 for state in states for index in state.image_ids)  # shard 1: batches 1 and 2
    assert run['example'] == 'box_filter' and run['model'] == 'box filter 3x3' and run['num_shards'] == 2
    assert run['dataset'].startswith('10 images, names sha256:') and run['batch_size'] == 4
    assert run['layers'] == ('conv/Relu:0', 'pool/MaxPool:0') and run['num_samples'] == 3


def test_scanner_takes_the_fields_from_the_scripts_recfield_cache(tmp_path, capsys):
    example = Example('box_filter', lambda args: open_box_filter_model(args, fingerprint='box filter'),
                               open_box_filter_dataset)
    cache_dir = tmp_path / 'cache'
    counts = []
    for _ in range(2):  # the second scanner, a later run, finds the fields the first one stored
        with shards.Scanner(example, box_filter_args(tmp_path, recfield_cache=str(cache_dir))) as scanner:
            assert [state.describe() for state in scanner.scan(0, 1)] == BOX_DESCRIPTIONS
        counts += probe_image_counts(capsys.readouterr().out)
    assert counts[0][0] == 2 and counts[0][1] > 0 and counts[1] == (2, 0)
    assert len(list(cache_dir.glob('*.npz'))) == 2
    with shards.Scanner(example, box_filter_args(tmp_path, recfield_cache=str(cache_dir),
                                                 no_recfield_cache=True)) as scanner:
        scanner.fields()
    assert probe_image_counts(capsys.readouterr().out)[0][1] > 0  # --no_recfield_cache measures again


def test_a_scanner_closes_its_model_when_the_dataset_does_not_open(tmp_path):
    closed = []

    def open_model(args):
        model = open_box_filter_model(args)
        model._close = lambda: closed.append(True)
        return model

    def open_missing_dataset(args, model):
        raise FileNotFoundError('no images')

    with pytest.raises(FileNotFoundError, match='no images'):
        shards.Scanner(Example('broken', open_model, open_missing_dataset), box_filter_args(tmp_path))
    assert closed == [True]


def test_box_filter_shards_merge_to_the_pictures_of_a_single_run(tmp_path, capsys):
    single = tmp_path / 'single'
    single.mkdir()
    with open_box_filter_model(None) as model:
        fields = pipeline.measure_receptive_fields(model)
        trackers = pipeline.scan(model, open_box_filter_dataset(box_filter_args(single)), 3)
        pipeline.draw(model, fields, trackers, str(single), num_channels=0)
    assert layer_lines(capsys.readouterr().out) == BOX_DESCRIPTIONS
    for index in range(3):  # 3 batches, 3 shards
        args = box_filter_args(tmp_path / 'states', num_shards=3, shard_index=index)
        assert shards.run(BOX_FILTER_EXAMPLE, args) == 0
        printed = capsys.readouterr().out
        saved = [f'saved {state_path(args.out_dir, layer, index, 3)}' for layer in ('conv/Relu:0', 'pool/MaxPool:0')]
        # Shard 0 measures every field and prints their lines, the others only scan.
        assert layer_lines(printed) == (BOX_DESCRIPTIONS if index == 0 else [])
        assert [num_layers for num_layers, _ in probe_image_counts(printed)] == ([2] if index == 0 else [])
        assert printed.splitlines()[-2:] == saved
    assert merge(sorted((tmp_path / 'states').glob('state-*.npz')), tmp_path / 'merged') == 0
    assert capsys.readouterr().out.splitlines() == BOX_DESCRIPTIONS
    assert len(pictures(single)) == 4 and pictures(tmp_path / 'merged') == pictures(single)
    merged = ShardState.load(state_path(str(tmp_path / 'merged'), 'pool/MaxPool:0'))
    np.testing.assert_array_equal(merged.tracker.firings, trackers[1].firings)
    assert merged.shards == (0, 1, 2) and merged.tracker.num_seen == 10


@pytest.mark.parametrize('candidates_per_sample', [1, 8])  # 1: some lists come out short, shorter than others
def test_tiles_merged_from_shards_or_drawn_from_states_give_the_distinct_lists_of_a_single_run(
        tmp_path, capsys, caplog, candidates_per_sample):
    flags = dict(candidates_per_sample=candidates_per_sample)
    run_tiled(tmp_path / 'single', **flags)
    run_tiled(tmp_path / 'explained', heatmap=True, attribution='occlusion', **flags)
    document = read_document(tmp_path / 'single')
    assert document['distinct_places']['candidates'] == 3 * candidates_per_sample
    assert bool(document['distinct_places']['short_channels']) == (candidates_per_sample == 1)
    for index in range(3):
        assert shards.run(TILED_EXAMPLE, tiled_args(tmp_path / 'states', num_shards=3, shard_index=index, **flags)) == 0
    paths = sorted((tmp_path / 'states').glob('state-*.npz'))
    assert merge(paths, tmp_path / 'merged') == 0
    assert outputs(tmp_path / 'merged') == outputs(tmp_path / 'single')
    # --states: the merge drawn with what needs the model, only the kept images read again
    assert shards.run(TILED_EXAMPLE, tiled_args(tmp_path / 'drawn', states=[str(path) for path in paths],
                                                heatmap=True, attribution='occlusion', **flags)) == 0
    assert outputs(tmp_path / 'drawn') == outputs(tmp_path / 'explained')
    assert 'attributions.npz' in outputs(tmp_path / 'drawn')
    capsys.readouterr()


def test_tiles_with_allow_repeats_give_each_channels_strongest_tiles_whatever_their_place(tmp_path):
    model, dataset, trackers = run_tiled(tmp_path / 'repeats', allow_repeats=True)
    assert dataset.places is None and trackers[0].num_samples == 3
    document = read_document(tmp_path / 'repeats')
    assert 'distinct_places' not in document
    maps = [np.concatenate(layer_maps) for layer_maps in
            zip(*(model.run(inputs) for inputs, _, _ in dataset.read(0, len(dataset))))]
    for layer, feature_maps in zip(document['layers'], maps):
        firings = feature_maps.max(axis=(1, 2)).T  # [channel, tile]
        strongest = [sorted(range(len(dataset)), key=lambda index: (-firings[channel, index], index))[:3]
                     for channel in range(len(firings))]
        assert [[entry['index'] for entry in ranked] for ranked in layer['channels']] == strongest
    run_tiled(tmp_path / 'distinct')
    distinct = read_document(tmp_path / 'distinct')
    assert [layer['channels'] for layer in distinct['layers']] != [layer['channels'] for layer in document['layers']]


# -- VGG16 from the command line (slow) ----------------------------------------------------------------------

@pytest.mark.slow
def test_shard_runs_save_one_state_per_layer_and_shard_0_measures_every_field(vgg16_scans):
    for index in (0, 1):
        out_dir, result = vgg16_scans[f'shard-{index}-of-2']
        assert sorted(os.listdir(out_dir)) == [f'state-{file_stem(layer)}-{index}-of-2.npz' for layer in LAYERS]
        # Shard 0 measures the receptive fields of every layer (or finds them cached), shard 1 none.
        assert [line.split()[0] for line in layer_lines(result.stdout)] == (LAYERS if index == 0 else [])
        assert [num_layers for num_layers, _ in probe_image_counts(result.stdout)] == ([2] if index == 0 else [])
        states = [ShardState.load(path) for path in shard_state_paths(vgg16_scans, f'shard-{index}-of-2')]
        assert [state.field is not None for state in states] == [index == 0] * 2
    assert layer_lines(vgg16_scans['shard-0-of-2'][1].stdout) == layer_lines(vgg16_scans['single'][1].stdout)


@pytest.mark.slow
def test_merged_shards_draw_the_pictures_of_a_single_run(vgg16_scans, tmp_path, capsys):
    single_dir, single = vgg16_scans['single']
    assert merge(shard_state_paths(vgg16_scans, 'shard-0-of-2', 'shard-1-of-2'), tmp_path) == 0
    assert capsys.readouterr().out.splitlines() == drawing_lines(single.stdout)
    assert list(pictures(tmp_path)) == PICTURES
    assert pictures(tmp_path) == pictures(single_dir)


@pytest.mark.slow
def test_merged_shards_hold_the_state_of_a_single_run(vgg16_scans, tmp_path):
    assert merge(shard_state_paths(vgg16_scans, 'shard-1-of-2', 'shard-0-of-2'), tmp_path) == 0
    for layer in LAYERS:
        merged = ShardState.load(state_path(str(tmp_path), layer))
        single = ShardState.load(shard_state_paths(vgg16_scans, 'shard-0-of-1')[LAYERS.index(layer)])
        assert merged.shards == (0, 1) and merged.complete and single.shards == (0,)
        assert_same_state(merged, single)
        assert merged.tracker.num_seen == 12 and merged.run['num_shards'] == 2


@pytest.mark.slow
def test_state_files_are_top_activations_files_of_plain_arrays(vgg16_scans):
    path = shard_state_paths(vgg16_scans, 'shard-0-of-1')[1]
    tracker = TopActivations.load(path)
    state = ShardState.load(path)
    np.testing.assert_array_equal(tracker.firings, state.tracker.firings)
    with np.load(path, allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)
    # Names say which photograph and where: the same on every machine.
    assert sorted(state.image_ids) == tracker.kept_image_indices.tolist()
    assert all(name.split(':')[0] in ('astronaut', 'chelsea', 'coffee', 'rocket', 'hubble_deep_field', 'retina',
                                      'immunohistochemistry', 'stereo_motorcycle') for name in state.image_ids.values())
    assert state.field.size == (40, 40) and state.field.stride == (4, 4) and state.field.padding == (18, 18)


@pytest.mark.slow
def test_merging_some_shards_warns_and_merges_with_the_rest_later(vgg16_scans, tmp_path, caplog):
    first = tmp_path / 'first'
    assert merge(shard_state_paths(vgg16_scans, 'shard-1-of-2'), first) == 0
    assert 'lack shard 0 of 2' in caplog.text
    for layer in LAYERS:
        assert f'no receptive field of {layer}: shard 0 of 2, which measures the receptive fields' in caplog.text
    assert list(pictures(first)) == []  # no layer has its field yet
    assert merge(sorted(map(str, first.glob('state-*.npz'))) + shard_state_paths(vgg16_scans, 'shard-0-of-2'),
                 tmp_path / 'all') == 0
    assert pictures(tmp_path / 'all') == pictures(vgg16_scans['single'][0])


@pytest.mark.slow
def test_states_of_another_num_samples_are_refused(vgg16_scans, tmp_path, capsys):
    states = shard_state_paths(vgg16_scans, 'shard-0-of-2', 'other_num_samples')
    assert merge(states, tmp_path) == 2
    error = capsys.readouterr().err
    assert error.startswith('error: cannot merge') and 'different --num_samples (3 and 2)' in error
    assert error.count('\n') == 1 and not os.listdir(tmp_path)


@pytest.mark.slow
def test_scanner_reads_a_shard_with_dataset_indices(vgg16_scans):
    args = vgg16_activations.parse_args(FLAGS)
    with shards.Scanner(vgg16.EXAMPLE, args) as scanner:
        batches = list(scanner.dataset.read(4, 12))
        assert [batch[2].tolist() for batch in batches] == [[4, 5, 6, 7], [8, 9, 10, 11]]
        assert batches[0][1].dtype == np.uint8 and batches[0][0].dtype == np.float32
        states = scanner.scan(1, 2)
    assert [state.shards for state in states] == [(1,), (1,)]
    saved = ShardState.load(shard_state_paths(vgg16_scans, 'shard-1-of-2')[0])
    assert_same_state(states[0], saved)


def npz_arrays(path):
    """`{key: array}` of an `.npz` file."""
    with np.load(path) as stored:
        return {key: stored[key] for key in stored.files}


@pytest.mark.slow
def test_states_drawn_with_attributions_give_the_files_of_a_single_run(vgg16_scans, vgg16_states_runs):
    single_dir, single = vgg16_scans['explained']
    states_dir, drawn = vgg16_states_runs['explained']
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    for name in EXPLANATION_FILES:
        expected, got = npz_arrays(single_dir / name), npz_arrays(states_dir / name)
        assert list(got) == list(expected), name
        for key, array in expected.items():
            assert got[key].dtype == array.dtype and np.array_equal(got[key], array), key  # bit for bit
    assert erf_lines(drawn.stdout) == erf_lines(single.stdout) and len(erf_lines(drawn.stdout)) == len(LAYERS)
    assert layer_lines(drawn.stdout) == layer_lines(single.stdout)
    # The same activations.json, page and pictures (attributions too), and the merged states beside them.
    names = sorted(os.listdir(single_dir))
    assert sorted(os.listdir(states_dir)) == sorted(names + [f'state-{file_stem(layer)}.npz' for layer in LAYERS])
    assert [(states_dir / name).read_bytes() for name in names] == [(single_dir / name).read_bytes() for name in names]


@pytest.mark.slow
@pytest.mark.parametrize('run, message', [
    ('other_layers', "the states are of another scan: their layers is ('vgg_16/conv1/conv1_2/Relu:0', "
                     "'vgg_16/conv3/conv3_3/Relu:0'), this script's flags give ('vgg_16/conv1/conv1_2/Relu:0',)"),
    ('other_num_samples', "the states are of another scan: their num_samples is 3, this script's flags give 2"),
])
def test_states_of_a_scan_with_other_flags_are_refused_before_anything_is_written(vgg16_states_runs, run, message):
    out_dir, result = vgg16_states_runs[run]
    assert_one_line_error(result, message)
    assert not out_dir.exists()


# -- CIFAR-10 and FaceNet from the command line (slow) -------------------------------------------------------

def scan_whole_and_in_shards(script, flags, tmp_path, capsys, num_shards=2):
    """Runs an example script on the whole dataset and on every shard at once, merges; returns both folders.

    The scripts run as subprocesses, all at the same time (`run_scripts_together`).
    """
    single, states, merged = tmp_path / 'single', tmp_path / 'states', tmp_path / 'merged'
    runs = [['--out_dir', single]] + [['--out_dir', states, '--num_shards', num_shards, '--shard_index', index]
                                      for index in range(num_shards)]
    results = run_scripts_together([(script, *flags, *run) for run in runs])
    for result in results:
        assert result.returncode == 0, result.stderr
    assert merge(sorted(states.glob('state-*.npz')), merged) == 0
    assert capsys.readouterr().out.splitlines() == drawing_lines(results[0].stdout)
    assert layer_lines(results[1].stdout) == layer_lines(results[0].stdout)  # shard 0 measured them all
    return single, merged


@pytest.mark.slow
def test_cifar10_shards_merge_to_the_pictures_of_a_single_run(cifar10_data, cifar10_train_dir, tmp_path, capsys):
    flags = ['--data_dir', cifar10_data[0], '--train_dir', cifar10_train_dir, '--batches', '5', '--batch_size', '16',
             '--num_samples', '3', '--num_channels', '5']
    single, merged = scan_whole_and_in_shards('cifar10_activations.py', flags, tmp_path, capsys, num_shards=3)
    assert len(pictures(single)) == 4 and pictures(merged) == pictures(single)
    state = ShardState.load(state_path(str(merged), 'conv1/conv1:0'))
    assert state.tracker.num_seen == 80 and state.shards == (0, 1, 2)
    names = {index: f'data_batch_1.bin:{index}' if index < 60 else f'data_batch_2.bin:{index - 60}'
             for index in state.tracker.kept_image_indices.tolist()}
    assert state.image_ids == names  # 60 records per file


@pytest.mark.slow
def test_facenet_shards_merge_to_the_pictures_of_a_single_run(small_facenet_path, tmp_path, capsys):
    # An LFW folder of this test's own: the shared one must not get the unreadable image.
    lfw_dir, _ = make_lfw(str(tmp_path / 'data'))
    (tmp_path / 'data' / 'lfw' / 'Alan_Turing' / 'Alan_Turing_0004.jpg').write_bytes(b'not a JPEG')
    flags = ['--model_path', small_facenet_path, '--lfw_dir', lfw_dir, '--batch_size', '4', '--num_samples', '2',
             '--num_channels', '3', '--layers', 'InceptionResnetV1/Conv2d_2b_3x3/convolution:0']
    single, merged = scan_whole_and_in_shards('facenet_activations.py', flags, tmp_path, capsys)
    assert len(pictures(single)) == 2 and pictures(merged) == pictures(single)
    state = ShardState.load(state_path(str(merged), 'InceptionResnetV1/Conv2d_2b_3x3/convolution:0'))
    assert state.tracker.num_seen == 12  # 13 files, one unreadable
    assert 6 not in state.tracker.indices  # Alan_Turing_0004.jpg is dataset index 6 (sorted paths)
    assert all(name.count('/') == 1 and name.endswith('.jpg') for name in state.image_ids.values())
