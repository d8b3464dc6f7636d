"""Sharded scans (`utils/shards.py`, `utils/examples.py`) and their merge (`utils/merge_activations.py`).

The merge of all shards must draw the pictures of a single run byte for byte (JPEG encoding is deterministic
for equal pixels) and hold the state of a single run, array for array: for the VGG16 example from the command
line (`shard_fixtures.vgg16_scans`), and for the CIFAR-10 and FaceNet examples in this process, FaceNet with an
unreadable image that leaves a gap in the dataset indices.
"""

import argparse
import os
import subprocess
import sys

import numpy as np
import pytest

import vgg16_activations
from activations import TopActivations
from cifar10_fixtures import cifar10_data  # noqa: F401 (a fixture)
from conftest import tf1
from shard_fixtures import FLAGS, LAYERS, REPO, assert_same_state, shard_state_paths
from test_facenet import build_small_facenet, freeze
from test_lfw import make_lfw
from utils import cifar10_model, merge_activations, shards
from utils.cli import run_main
from utils.layers import file_stem
from utils.shards import ShardState, shard_bounds

PICTURES = sorted(f'{file_stem(layer)}-{kind}.jpg' for layer in LAYERS for kind in ('full', 'crop'))


def pictures(folder):
    """{file name: bytes} of the `.jpg` pictures in a folder."""
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder)) if name.endswith('.jpg')}


def merge(states, out_dir, *flags):
    """Runs utils/merge_activations.py in this process; returns its exit status."""
    return run_main(merge_activations.main, ['--states', *map(str, states), '--out_dir', str(out_dir), *flags])


# -- the split ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('num_images, batch_size, num_shards', [(12, 4, 2), (13, 4, 3), (100, 7, 4), (5, 4, 3)])
def test_shards_are_contiguous_whole_batches_covering_the_dataset(num_images, batch_size, num_shards):
    bounds = [shard_bounds(num_images, batch_size, num_shards, index) for index in range(num_shards)]
    assert bounds[0][0] == 0 and bounds[-1][1] == num_images
    assert all(stop == next_start for (_, stop), (next_start, _) in zip(bounds, bounds[1:]))
    assert all(start % batch_size == 0 for start, _ in bounds)
    lengths = [-(-(stop - start) // batch_size) for start, stop in bounds]
    assert max(lengths) - min(lengths) <= 1  # in batches


# -- VGG16 from the command line --------------------------------------------------------------------------------

def test_shard_runs_save_one_state_per_layer_and_measure_every_other_field(vgg16_scans):
    for index in (0, 1):
        out_dir, result = vgg16_scans[f'shard-{index}-of-2']
        assert sorted(os.listdir(out_dir)) == [f'state-{file_stem(layer)}-{index}-of-2.npz' for layer in LAYERS]
        # Shard 0 measures the receptive field of the first layer, shard 1 that of the second.
        assert [line.split()[0] for line in result.stdout.splitlines() if 'feature map' in line] == [LAYERS[index]]
        states = [ShardState.load(path) for path in shard_state_paths(vgg16_scans, f'shard-{index}-of-2')]
        assert [state.field is not None for state in states] == [index == 0, index == 1]


def test_merged_shards_draw_the_pictures_of_a_single_run(vgg16_scans, tmp_path, capsys):
    single_dir, single = vgg16_scans['single']
    assert merge(shard_state_paths(vgg16_scans, 'shard-0-of-2', 'shard-1-of-2'), tmp_path) == 0
    assert capsys.readouterr().out.splitlines() == single.stdout.splitlines()  # the receptive field lines
    assert list(pictures(tmp_path)) == PICTURES
    assert pictures(tmp_path) == pictures(single_dir)


def test_merged_shards_hold_the_state_of_a_single_run(vgg16_scans, tmp_path):
    assert merge(shard_state_paths(vgg16_scans, 'shard-1-of-2', 'shard-0-of-2'), tmp_path) == 0
    for layer in LAYERS:
        merged = ShardState.load(str(shards.state_path(tmp_path, layer)))
        single = ShardState.load(shard_state_paths(vgg16_scans, 'shard-0-of-1')[LAYERS.index(layer)])
        assert merged.shards == (0, 1) and merged.complete and single.shards == (0,)
        assert_same_state(merged, single)
        assert merged.tracker.num_seen == 12 and merged.run['num_shards'] == 2


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


def test_merging_some_shards_warns_and_merges_with_the_rest_later(vgg16_scans, tmp_path, caplog):
    first = tmp_path / 'first'
    assert merge(shard_state_paths(vgg16_scans, 'shard-0-of-2'), first) == 0
    assert 'lack shard 1 of 2' in caplog.text
    assert f'no receptive field of {LAYERS[1]}: shard 1 of 2, which measures it, is missing' in caplog.text
    assert list(pictures(first)) == PICTURES[:2]  # the first layer only
    assert merge(sorted(map(str, first.glob('state-*.npz'))) + shard_state_paths(vgg16_scans, 'shard-1-of-2'),
                 tmp_path / 'all') == 0
    assert pictures(tmp_path / 'all') == pictures(vgg16_scans['single'][0])


def test_states_of_another_num_samples_are_refused(vgg16_scans, tmp_path, capsys):
    states = shard_state_paths(vgg16_scans, 'shard-0-of-2', 'other_num_samples')
    assert merge(states, tmp_path) == 2
    error = capsys.readouterr().err
    assert error.startswith('error: cannot merge') and 'different --num_samples (3 and 2)' in error
    assert error.count('\n') == 1 and not os.listdir(tmp_path)


@pytest.mark.parametrize('key, value, message', [
    ('model', 'vgg16 other.weights.h5 sha256:0123456789abcdef', 'different models'),
    ('layers', (LAYERS[0],), 'different --layers'),
    ('dataset', '13 images, names sha256:0123456789abcdef', 'different datasets'),
])
def test_states_of_another_run_are_refused(vgg16_scans, tmp_path, capsys, key, value, message):
    first = shard_state_paths(vgg16_scans, 'shard-0-of-2')[0]  # conv1_2: the names sort by layer
    second = ShardState.load(shard_state_paths(vgg16_scans, 'shard-1-of-2')[0])
    second.run[key] = value
    second.save(str(tmp_path / 'other.npz'))
    assert merge([first, tmp_path / 'other.npz'], tmp_path / 'out') == 2
    assert message in capsys.readouterr().err


def test_the_same_shard_twice_is_refused(vgg16_scans, tmp_path, capsys):
    state = shard_state_paths(vgg16_scans, 'shard-0-of-2')[0]
    assert merge([state, state], tmp_path) == 2
    assert 'both hold shard 0 of 2' in capsys.readouterr().err


def test_layers_with_states_of_different_shards_are_refused(vgg16_scans, tmp_path, capsys):
    conv1_of_shard_0 = shard_state_paths(vgg16_scans, 'shard-0-of-2')[0]
    conv3_of_shard_1 = shard_state_paths(vgg16_scans, 'shard-1-of-2')[1]
    assert merge([conv1_of_shard_0, conv3_of_shard_1], tmp_path) == 2
    assert 'give every layer\'s states of the same shards' in capsys.readouterr().err


def test_a_file_that_is_not_a_state_is_refused(tmp_path, capsys):
    TopActivations(2).update(None, np.ones((1, 2, 2, 3))).save(str(tmp_path / 'tracker.npz'))
    assert merge([tmp_path / 'tracker.npz'], tmp_path / 'out') == 2
    assert 'is not a state of a sharded scan' in capsys.readouterr().err


@pytest.mark.parametrize('flags, message', [
    (['--shard_index', '0'], 'give both --num_shards N and --shard_index I'),
    (['--num_shards', '2'], 'give both --num_shards N and --shard_index I'),
    (['--num_shards', '2', '--shard_index', '2'], '--shard_index 2 is not a shard of 2: give 0 to 1'),
    (['--dask_scheduler', 'local', '--shard_index', '0'], 'Give one or the other'),
    (['--dask_scheduler', 'tcp://127.0.0.1:8786', '--dask_workers', '2'], '--dask_workers sets the size'),
    (['--num_shards', '2', '--shard_index', '0', '--tensorboard_dir', 'logs'], 'give it to utils/merge_activations'),
])
def test_shard_flags_that_do_not_go_together_are_one_line_errors(tmp_path, capsys, flags, message):
    assert run_main(vgg16_activations.main, flags + ['--out_dir', str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith('error: ') and message in error and error.count('\n') == 1


# -- CIFAR-10 and FaceNet in this process ----------------------------------------------------------------------

def scan_whole_and_in_shards(script, flags, tmp_path, capsys, num_shards=2):
    """Runs an example script on the whole dataset and on every shard at once, merges; returns both folders.

    The scripts run as subprocesses: progress bars drawn under `capsys` break later progress bars of this
    process (progressbar2 keeps the stream of its first bar).
    """
    single, states, merged = tmp_path / 'single', tmp_path / 'states', tmp_path / 'merged'
    runs = [['--out_dir', single]] + [['--out_dir', states, '--num_shards', num_shards, '--shard_index', index]
                                      for index in range(num_shards)]
    processes = [subprocess.Popen([sys.executable, script, *map(str, flags + run)], cwd=REPO, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for run in runs]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
    assert merge(sorted(states.glob('state-*.npz')), merged) == 0
    assert capsys.readouterr().out.splitlines() == outputs[0][0].splitlines()
    return single, merged


@pytest.fixture(scope='module')
def cifar10_train_dir(tmp_path_factory):
    """A checkpoint of the CIFAR-10 network with fresh weights (the scan needs one, not a trained one)."""
    train_dir = str(tmp_path_factory.mktemp('cifar10_train'))
    session, _ = cifar10_model.build_session(16)
    with session, session.graph.as_default():
        session.run(tf1.global_variables_initializer())
        tf1.train.Saver().save(session, os.path.join(train_dir, 'model.ckpt'), global_step=0)
    return train_dir


def test_cifar10_shards_merge_to_the_pictures_of_a_single_run(cifar10_data, cifar10_train_dir, tmp_path,  # noqa: F811
                                                             capsys):
    flags = ['--data_dir', cifar10_data[0], '--train_dir', cifar10_train_dir, '--batches', '5', '--batch_size', '16',
             '--num_samples', '3', '--num_channels', '5']
    single, merged = scan_whole_and_in_shards('cifar10_activations.py', flags, tmp_path, capsys, num_shards=3)
    assert len(pictures(single)) == 4 and pictures(merged) == pictures(single)
    state = ShardState.load(str(shards.state_path(merged, 'conv1/conv1:0')))
    assert state.tracker.num_seen == 80 and state.shards == (0, 1, 2)
    names = {index: f'data_batch_1.bin:{index}' if index < 60 else f'data_batch_2.bin:{index - 60}'
             for index in state.tracker.kept_image_indices.tolist()}
    assert state.image_ids == names  # 60 records per file


def test_facenet_shards_merge_to_the_pictures_of_a_single_run(tmp_path, capsys):
    model_path = str(tmp_path / 'small-facenet.pb')
    freeze(build_small_facenet(), model_path)
    lfw_dir, _ = make_lfw(str(tmp_path / 'data'))
    (tmp_path / 'data' / 'lfw' / 'Alan_Turing' / 'Alan_Turing_0004.jpg').write_bytes(b'not a JPEG')
    flags = ['--model_path', model_path, '--lfw_dir', lfw_dir, '--batch_size', '4', '--num_samples', '2',
             '--num_channels', '3', '--layers', 'InceptionResnetV1/Conv2d_2b_3x3/convolution:0']
    single, merged = scan_whole_and_in_shards('facenet_activations.py', flags, tmp_path, capsys)
    assert len(pictures(single)) == 2 and pictures(merged) == pictures(single)
    state = ShardState.load(str(shards.state_path(merged, 'InceptionResnetV1/Conv2d_2b_3x3/convolution:0')))
    assert state.tracker.num_seen == 12  # 13 files, one unreadable
    assert 6 not in state.tracker.indices  # Alan_Turing_0004.jpg is dataset index 6 (sorted paths)
    assert all(name.count('/') == 1 and name.endswith('.jpg') for name in state.image_ids.values())


def test_scanner_reads_a_shard_with_dataset_indices(vgg16_scans):
    args = vgg16_activations.parse_args(FLAGS)
    with shards.Scanner('vgg16', args) as scanner:
        batches = list(scanner.dataset.read(4, 12))
        assert [batch[2].tolist() for batch in batches] == [[4, 5, 6, 7], [8, 9, 10, 11]]
        assert batches[0][1].dtype == np.uint8 and batches[0][0].dtype == np.float32
        states = scanner.scan(1, 2)
    assert [state.shards for state in states] == [(1,), (1,)]
    saved = ShardState.load(shard_state_paths(vgg16_scans, 'shard-1-of-2')[0])
    assert_same_state(states[0], saved)


def test_examples_reject_an_unknown_name():
    from utils import examples

    with pytest.raises(ValueError, match='unknown example'):
        examples.open_network('mnist', argparse.Namespace())


def test_stored_field_draws_like_the_measured_one():
    recfield = np.zeros((2, 2, 4), np.int64)
    recfield[..., 2:] = [[[3, 3], [3, 5]], [[5, 3], [5, 5]]]
    field = shards.StoredField(recfield, (3, 3), (2, 2), (0, 0))
    assert field.max() == (5, 5) and field.feature_shape == (2, 2)
    assert field == shards.StoredField(recfield.copy(), (3, 3), (2, 2), (0, 0))
    assert field != shards.StoredField(recfield, None, None, None)
