"""Tests of `utils/core/states.py` and `utils/merge_activations.py` without TensorFlow: saving, loading, merging
and drawing the states of the box-filter example (`shard_fixtures`), on whole images and on tiles of photographs
with their places, scanned in shards in this process."""

import logging
import os
import re

import numpy as np
import pytest

from conftest import arrays_read, folder_locked_by_another_process, write_npz_with_a_lying_header
from activations import TopActivations
from shard_fixtures import (BOX_DESCRIPTIONS, BOX_FILTER_EXAMPLE, BOX_LAYERS, TILED_EXAMPLE, assert_same_state,
                            box_filter_args, merge)
from utils.base import files
from utils.core.states import RUN_FIELDS, ShardState, merge_states, state_path
from utils.running.scanner import Scanner

CONV, POOL = (layer.name for layer in BOX_LAYERS)


@pytest.fixture(scope='module')
def scanner(tmp_path_factory):
    """A `Scanner` of 10 images in batches of 4 (3 batches), 3 images per channel; each call of its `scan`
    gives new states."""
    with Scanner(BOX_FILTER_EXAMPLE, box_filter_args(tmp_path_factory.mktemp('unused'))) as box_scanner:
        yield box_scanner


@pytest.fixture(scope='module')
def tiled_scanner(tmp_path_factory):
    """A `Scanner` of the 72 tiles of `shard_fixtures.TILED_EXAMPLE` in batches of 8, 3 images per channel chosen
    among 2 x 3 candidates."""
    args = box_filter_args(tmp_path_factory.mktemp('unused'), batch_size=8, candidates_per_sample=2)
    with Scanner(TILED_EXAMPLE, args) as tiles_scanner:
        yield tiles_scanner


def saved(states, folder):
    """Saves shard states under their `state_path` names in `folder`; returns the paths, in order."""
    paths = []
    for state in states:
        paths.append(state_path(str(folder), state.layer, state.shards[0], state.run['num_shards']))
        state.save(paths[-1])
    return paths


def rewritten(path, **arrays):
    """Writes the arrays of the `.npz` file at `path` again, with `arrays` replacing or adding some."""
    with np.load(path, allow_pickle=False) as data:
        kept = {name: data[name] for name in data.files}
    np.savez(path, **{**kept, **arrays})
    return path


# -- files -------------------------------------------------------------------------------------------------------

def test_state_paths():
    assert state_path('out', 'net/pool/MaxPool:0', 1, 3) == os.path.join('out', 'state-net-pool-MaxPool0-1-of-3.npz')
    assert state_path('out', 'net/pool/MaxPool:0') == os.path.join('out', 'state-net-pool-MaxPool0.npz')


def test_save_load_round_trip_with_and_without_a_field(scanner, tmp_path):
    # Shard 0 of 2 measures every layer's field, shard 1 none.
    states = scanner.scan(0, 2) + scanner.scan(1, 2)
    assert [state.field is not None for state in states] == [True, True, False, False]
    paths = saved(states, tmp_path)
    for state, path in zip(states, paths):
        loaded = ShardState.load(path)
        assert_same_state(loaded, state)  # the fields too: equal, or both None
        assert loaded.run == state.run and loaded.run['layers'] == (CONV, POOL)
        assert (loaded.shards, loaded.num_channels, loaded.draw_channels, loaded.source) == (
            state.shards, 2, 0, path)
        assert not loaded.complete
    assert [ShardState.load(path).describe() for path in paths[:2]] == BOX_DESCRIPTIONS
    assert ShardState.load(paths[2]).field is None and ShardState.load(paths[3]).field is None


def test_a_state_file_is_a_top_activations_file_of_plain_arrays(scanner, tmp_path):
    state = scanner.scan(0, 2)[1]  # shard 0: with the field
    path, = saved([state], tmp_path)
    np.testing.assert_array_equal(TopActivations.load(path).firings, state.tracker.firings)
    with np.load(path, allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)
        np.testing.assert_array_equal(data['state_field_recfield'], state.field.recfield)
        assert data['state_field_image_size'].tolist() == [12, 12]
    assert sorted(state.image_ids) == state.tracker.kept_image_indices.tolist()
    assert set(state.image_ids.values()) <= {f'grey-{index}.png' for index in range(4)}  # shard 0: 0 to 3


@pytest.mark.parametrize('arrays, words', [
    ({'state_field_recfield': np.full((6, 6, 4), 13, np.int64)}, 'outside the 12x12 image'),
    ({'state_field_recfield': np.zeros((6, 6, 4), np.float32)}, 'int array'),
    ({'state_field_image_size': np.array([12], np.int64)}, 'image_size'),
])
def test_a_state_with_damaged_field_arrays_is_refused_by_name(scanner, tmp_path, arrays, words):
    path, = saved(scanner.scan(0, 2)[:1], tmp_path)
    with pytest.raises(ValueError, match=words) as error:
        ShardState.load(rewritten(path, **arrays))
    assert str(error.value).startswith(f'{path}: its receptive field is damaged')


def test_a_state_of_another_version_is_refused(scanner, tmp_path):
    path, = saved(scanner.scan(0, 1)[:1], tmp_path)
    with pytest.raises(ValueError, match='is a state of version 1; this code reads version 3'):
        ShardState.load(rewritten(path, state_version=np.int64(1)))


def test_a_state_of_version_2_is_refused(scanner, tmp_path):
    # Version 3 added every channel's statistics, which a version 2 state cannot give: it is scanned again.
    path, = saved(scanner.scan(0, 2)[:1], tmp_path)
    with pytest.raises(ValueError, match='is a state of version 2; this code reads version 3. Scan again'):
        ShardState.load(rewritten(path, state_version=np.int64(2)))


# -- places ------------------------------------------------------------------------------------------------------

def test_states_of_tiles_keep_the_places_of_their_kept_images_through_saving_and_merging(tiled_scanner, tmp_path):
    places = tiled_scanner.dataset.places
    states = tiled_scanner.scan(0, 2) + tiled_scanner.scan(1, 2)
    for state in states:
        assert state.run['candidates'] == 6 and state.tracker.num_samples == 6
        assert state.places == {index: tuple(places[index]) for index in state.tracker.kept_image_indices.tolist()}
    paths = saved(states, tmp_path)
    with np.load(paths[0], allow_pickle=False) as data:
        assert data['state_places'].dtype == np.int64
        np.testing.assert_array_equal(data['state_places'], places[data['image_indices']])
    loaded = [ShardState.load(path) for path in paths]
    assert [state.places for state in loaded] == [state.places for state in states]
    for merged, single in zip(merge_states(loaded), tiled_scanner.scan(0, 1)):
        assert_same_state(merged, single)
        assert merged.places == single.places


def test_states_with_and_without_places_are_refused(tiled_scanner, tmp_path):
    with_places = tiled_scanner.scan(0, 2)[0]
    # --allow_repeats with as many candidates: only the places tell the states apart
    args = box_filter_args(tmp_path, batch_size=8, allow_repeats=True, num_samples=6)
    with Scanner(TILED_EXAMPLE, args) as repeating:
        without = changed(repeating.scan(1, 2)[0], num_samples=3)
    assert without.places is None and without.run == with_places.run
    with pytest.raises(ValueError, match='one holds the places of its images and the other not'):
        merge_states([with_places, without])


@pytest.mark.parametrize('name, change, words', [
    ('state_places', lambda places: places[:1], 'its places are int64 of shape (1, 6)'),
    ('state_places', lambda places: places.astype(np.float64), 'its places are float64'),
    ('state_places', lambda places: places - 100, 'not places in a photograph'),
    ('state_places', lambda places: places * [1, 1, 1, 1, 1, 2], 'not places in a photograph'),
    ('num_samples', lambda num_samples: num_samples + 1, 'its tracker keeps 7 images per channel, its run 6'),
])
def test_a_state_with_damaged_places_or_candidates_is_refused_by_name(tiled_scanner, tmp_path, name, change, words):
    path, = saved(tiled_scanner.scan(0, 2)[:1], tmp_path)
    with np.load(path, allow_pickle=False) as data:
        array = data[name].copy()
    rewritten(path, **{name: change(array)})
    with pytest.raises(ValueError, match=re.escape(words)) as error:
        ShardState.load(path)
    assert str(error.value).startswith(f'{path}: ')


# -- merging -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('order', [(0, 1), (1, 0)])
def test_merged_shards_hold_the_state_of_one_scan(scanner, order):
    states = [state for index in order for state in scanner.scan(index, 2)]
    merged = merge_states(states)
    single = scanner.scan(0, 1)
    assert [state.layer for state in merged] == [CONV, POOL]  # the run's --layers order
    for state, expected in zip(merged, single):
        assert state.shards == (0, 1) and state.complete and state.run['num_shards'] == 2
        assert_same_state(state, expected)
        assert state.tracker.num_seen == 10


def changed(state, **run):
    """The state with some `run` values changed."""
    state.run.update(run)
    return state


@pytest.mark.parametrize('key, value, words', [
    ('example', 'vgg16', 'different examples (box_filter and vgg16)'),
    ('model', 'box filter 5x5', 'different models'),
    ('dataset', '11 images, names sha256:0123456789abcdef', 'different datasets'),
    ('batch_size', 8, 'different batch sizes (4 and 8)'),
    ('num_samples', 2, 'different --num_samples (3 and 2)'),
    ('bottom_k', 2, 'different --bottom_k (0 and 2)'),
    ('candidates', 24, 'different candidates per channel (--candidates_per_sample, --allow_repeats) (3 and 24)'),
    ('layers', (CONV,), f'different --layers ({CONV},{POOL} and {CONV})'),
    ('num_shards', 3, 'different numbers of shards (2 and 3)'),
])
def test_states_of_another_run_are_refused(scanner, key, value, words):
    assert key in RUN_FIELDS
    first, second = scanner.scan(0, 2)[0], changed(scanner.scan(1, 2)[0], **{key: value})
    message = f'cannot merge shard 0 of 2 and shard 1 of 2: they come from {words}'
    with pytest.raises(ValueError, match=re.escape(message)):
        merge_states([first, second])


def test_states_that_do_not_belong_together_are_refused(scanner):
    conv_0, _ = scanner.scan(0, 2)
    conv_1, pool_1 = scanner.scan(1, 2)
    with pytest.raises(ValueError, match=f'they hold different layers \\({CONV} and {POOL}\\)'):
        conv_0.merge(pool_1)
    with pytest.raises(ValueError, match='both hold shard 0 of 2 of'):
        merge_states([conv_0, scanner.scan(0, 2)[0]])
    with pytest.raises(ValueError, match="give every layer's states of the same shards"):
        merge_states([conv_0, pool_1])
    with pytest.raises(ValueError, match='no states to merge'):
        merge_states([])
    other_channels = scanner.scan(1, 2)[0]
    other_channels.num_channels = 3
    with pytest.raises(ValueError, match='different receptive fields or channel counts'):
        conv_0.merge(other_channels)
    conv_1.field = scanner.fields()[1]  # the other layer's: both states have a field, and they differ
    with pytest.raises(ValueError, match='different receptive fields or channel counts'):
        conv_0.merge(conv_1)


# -- merge_activations.py ----------------------------------------------------------------------------------------

def merge_one_shard_of_two(scanner, shard_index, tmp_path, capsys, caplog):
    """Scans one shard of 2, saves its states and merges them alone into `tmp_path / 'out'`; returns what
    the merge printed (warnings go to `caplog`)."""
    (tmp_path / 'states').mkdir()
    paths = saved(scanner.scan(shard_index, 2), tmp_path / 'states')
    capsys.readouterr()  # what the scan printed
    with caplog.at_level(logging.WARNING):
        assert merge(paths, tmp_path / 'out') == 0
    return capsys.readouterr().out


def test_merging_some_shards_warns_and_draws_the_layers_it_can(scanner, tmp_path, capsys, caplog):
    printed = merge_one_shard_of_two(scanner, 0, tmp_path, capsys, caplog)
    # Shard 0 holds every field: every layer is drawn, from part of the dataset.
    assert printed.splitlines() == BOX_DESCRIPTIONS
    assert 'lack shard 1 of 2' in caplog.text and 'no receptive field' not in caplog.text
    assert sorted(os.listdir(tmp_path / 'out')) == ['activations.json', 'conv-Relu0-crop.jpg', 'conv-Relu0-full.jpg',
                                                   'index.html', 'pool-MaxPool0-crop.jpg', 'pool-MaxPool0-full.jpg',
                                                   'state-conv-Relu0.npz', 'state-pool-MaxPool0.npz']
    assert ShardState.load(str(tmp_path / 'out' / 'state-pool-MaxPool0.npz')).shards == (0,)


def test_merging_without_shard_0_warns_and_draws_nothing(scanner, tmp_path, capsys, caplog):
    assert merge_one_shard_of_two(scanner, 1, tmp_path, capsys, caplog) == ''
    assert 'lack shard 0 of 2' in caplog.text
    for layer in (CONV, POOL):
        assert (f'no receptive field of {layer}: shard 0 of 2, which measures the receptive fields, is missing; '
                'it is not drawn.') in caplog.text
    assert sorted(os.listdir(tmp_path / 'out')) == ['state-conv-Relu0.npz', 'state-pool-MaxPool0.npz']
    assert ShardState.load(str(tmp_path / 'out' / 'state-conv-Relu0.npz')).shards == (1,)


@pytest.fixture
def shard_files(scanner, tmp_path):
    """`{(shard_index, layer): path}` of both shards of a 2-shard scan, saved."""
    folder = tmp_path / 'states'
    folder.mkdir()
    states = scanner.scan(0, 2) + scanner.scan(1, 2)
    return {(state.shards[0], state.layer): path for state, path in zip(states, saved(states, folder))}


def assert_one_line_error(capsys, words, out_dir=None):
    error = capsys.readouterr().err
    assert error.startswith('error: ') and words in error and error.count('\n') == 1, error
    assert out_dir is None or not os.path.exists(out_dir) or not os.listdir(out_dir)


@pytest.mark.parametrize('key, value, words', [
    ('model', 'box filter 5x5', 'different models'),
    ('layers', (CONV,), 'different --layers'),
    ('dataset', '13 images, names sha256:0123456789abcdef', 'different datasets'),
])
def test_merge_refuses_states_of_another_run_in_one_line(shard_files, tmp_path, capsys, key, value, words):
    other = changed(ShardState.load(shard_files[1, CONV]), **{key: value})
    other.save(str(tmp_path / 'other.npz'))
    assert merge([shard_files[0, CONV], tmp_path / 'other.npz'], tmp_path / 'out') == 2
    assert_one_line_error(capsys, words, tmp_path / 'out')


def test_merge_refuses_the_same_shard_twice(shard_files, tmp_path, capsys):
    assert merge([shard_files[0, CONV]] * 2, tmp_path / 'out') == 2
    assert_one_line_error(capsys, 'both hold shard 0 of 2', tmp_path / 'out')


def test_merge_refuses_layers_with_states_of_different_shards(shard_files, tmp_path, capsys):
    assert merge([shard_files[0, CONV], shard_files[1, POOL]], tmp_path / 'out') == 2
    assert_one_line_error(capsys, 'give every layer\'s states of the same shards', tmp_path / 'out')


def test_merge_refuses_a_file_that_is_not_a_state(tmp_path, capsys):
    TopActivations(2).update(None, np.ones((1, 2, 2, 3))).save(str(tmp_path / 'tracker.npz'))
    assert merge([tmp_path / 'tracker.npz'], tmp_path / 'out') == 2
    assert_one_line_error(capsys, 'is not a state of a sharded scan', tmp_path / 'out')


def damage(path, name, change):
    """Rewrites one array of the state file at `path` through `change(array)`; returns the path."""
    with np.load(path, allow_pickle=False) as data:
        array = data[name].copy()
    return rewritten(path, **{name: change(array)})


def with_nan(firings):
    firings[0, 0] = np.nan
    return firings


@pytest.mark.parametrize('name, change, words', [
    ('coords', lambda coords: coords + 1000, 'feature coordinates lie outside'),
    ('coords', lambda coords: coords[:, :1], 'arrays do not fit together'),
    ('firings', with_nan, 'NaN or infinite'),
    ('state_image_ids', lambda ids: ids[:1], 'names 1 images but keeps'),
    ('image_indices', lambda indices: indices + 10 ** 6, 'but not stored'),
    ('state_num_channels', lambda channels: channels + 1, 'arrays do not fit together'),
    ('images', lambda images: images.astype(np.float32), 'float32, not uint8 grey or colour images'),
    ('images', lambda images: images[:, :-2], 'but its receptive field is of'),
    ('state_layer', lambda layer: np.str_('other/Relu:0'), 'its layer other/Relu:0 is not among its run\'s layers'),
    ('run_num_shards', lambda num_shards: np.array(0), 'holds shards 0 of 0'),
    ('state_shards', lambda shards: shards - 3, 'holds shards -3 of 2'),
    ('state_draw_channels', lambda channels: np.array(-1), 'draw -1 channels'),
    ('num_seen', lambda num_seen: np.array(-3), 'counts -3 images seen'),
])
def test_merge_refuses_a_damaged_state_naming_it_and_writes_nothing(shard_files, tmp_path, capsys, name, change,
                                                                   words):
    damaged = damage(shard_files[0, CONV], name, change)
    assert merge([damaged, shard_files[1, CONV]], tmp_path / 'out') == 2
    assert_one_line_error(capsys, words, tmp_path / 'out')
    assert merge([damaged], tmp_path / 'out') == 2  # alone, so that the line must name it
    error = capsys.readouterr().err
    assert error.startswith(f'error: {damaged}') and words in error, error


@pytest.mark.parametrize('liar', ['firings', 'state_field_recfield', 'state_image_ids'])
def test_merge_refuses_a_state_whose_header_declares_a_huge_array_in_one_line(shard_files, tmp_path, capsys,
                                                                             monkeypatch, liar):
    path = str(shard_files[0, CONV])
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    write_npz_with_a_lying_header(path, arrays, liar)  # 40 TB declared in a file of a few KB
    assert os.path.getsize(path) < 10 ** 5
    read = arrays_read(monkeypatch)
    with pytest.raises(ValueError, match=f"^{re.escape(path)} .*array '{liar}' declares float32 of shape"):
        ShardState.load(path)
    assert merge([path, shard_files[1, CONV]], tmp_path / 'out') == 2
    assert_one_line_error(capsys, f"array '{liar}' declares float32 of shape (1000000000, 10000)", tmp_path / 'out')
    assert read == []  # refused from the headers, before any array was read or allocated


def test_a_pickled_array_is_refused_naming_the_file(shard_files, tmp_path, capsys):
    path = shard_files[0, CONV]
    with np.load(path, allow_pickle=False) as data:
        kept = {name: data[name] for name in data.files}
    np.savez(path, **{**kept, 'state_layer': np.array([{'a': 1}], dtype=object)})
    assert merge([path], tmp_path / 'out') == 2
    error = capsys.readouterr().err
    assert error.startswith(f'error: {path}') and 'allow_pickle' in error and error.count('\n') == 1, error


def test_merge_refuses_shards_whose_images_differ_in_size_before_writing(shard_files, tmp_path, capsys):
    smaller = damage(shard_files[1, CONV], 'images', lambda images: images[:, 1:, 1:])  # shard 1 has no field
    assert ShardState.load(smaller).field is None
    assert merge([shard_files[0, CONV], smaller], tmp_path / 'out') == 2
    assert_one_line_error(capsys, 'differ in size or type', tmp_path / 'out')
    assert merge([smaller, shard_files[0, CONV]], tmp_path / 'out') == 2
    assert_one_line_error(capsys, 'differ in size or type', tmp_path / 'out')


def test_merge_refuses_negative_image_indices(shard_files, tmp_path, capsys):
    with np.load(shard_files[0, CONV], allow_pickle=False) as data:
        indices, image_indices = data['indices'] - 1000, data['image_indices'] - 1000
    damaged = rewritten(shard_files[0, CONV], indices=indices, image_indices=image_indices)
    assert merge([damaged], tmp_path / 'out') == 2
    assert_one_line_error(capsys, 'keeps negative image indices', tmp_path / 'out')


@pytest.mark.skipif(files.fcntl is None, reason='folder locks need fcntl (POSIX)')
def test_merge_into_a_folder_another_run_writes_into_is_refused_in_one_line(shard_files, tmp_path, capsys):
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    with folder_locked_by_another_process(out_dir):
        assert merge([shard_files[0, CONV], shard_files[1, CONV]], out_dir) == 2
        assert_one_line_error(capsys, f'another run is writing into {out_dir}', out_dir)
    assert merge([shard_files[0, CONV], shard_files[1, CONV]], out_dir) == 0  # once it has ended
    assert 'index.html' in os.listdir(out_dir)
