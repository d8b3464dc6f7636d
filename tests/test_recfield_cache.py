"""Tests of `utils/core/recfield_cache.py`: entries saved and loaded again, and every entry that cannot be trusted
(missing, damaged, stored under another key) ignored with a warning rather than reused or fatal.

The pipeline's use of the cache (a second run measures nothing) is tested in `test_pipeline.py`."""

import json
import logging
import os

import numpy as np
import pytest

from conftest import arrays_read, grid_field, set_zip_directory_field, write_npz_with_a_lying_header
from utils.core import recfield_cache
from utils.core.recfield_cache import RecfieldCache

KEY_ARGS = dict(fingerprint='graph sha256:0123', layer_name='conv/Relu:0', image_shape=(12, 12, 1),
                value_range=(-1.0, 1.0))


@pytest.fixture
def cache(tmp_path):
    """An empty cache in a folder not made yet (`save` makes it)."""
    return RecfieldCache(str(tmp_path / 'cache'))


@pytest.fixture
def key():
    return RecfieldCache.key(**KEY_ARGS)


@pytest.fixture
def field():
    """A 6x6 field on 12x12 images, no network needed."""
    return grid_field(6, 6, 12)


def warned_about(caplog, path):
    """The warnings logged by the cache that name the file at `path`."""
    return [record.getMessage() for record in caplog.records if record.name == 'utils.core.recfield_cache'
            and record.levelno == logging.WARNING and path in record.getMessage()]


# -- keys ---------------------------------------------------------------------------------------------------------

def test_a_key_says_what_the_field_was_measured_on_and_how():
    assert json.loads(RecfieldCache.key(**KEY_ARGS)) == {
        'method': recfield_cache.METHOD_VERSION, 'model': 'graph sha256:0123', 'layer': 'conv/Relu:0',
        'image_shape': [12, 12, 1], 'value_range': [-1.0, 1.0]}
    # numpy numbers and Python ints give the same key as the values written by hand
    assert RecfieldCache.key('graph sha256:0123', 'conv/Relu:0', np.array([12, 12, 1]), (-1, 1)) == \
        RecfieldCache.key(**KEY_ARGS)


@pytest.mark.parametrize('changed', [
    {'fingerprint': 'graph sha256:4567'},
    {'layer_name': 'pool/MaxPool:0'},
    {'image_shape': (24, 24, 1)},
    {'image_shape': (12, 12, 3)},
    {'value_range': (0.0, 255.0)},
])
def test_keys_differ_by_model_layer_image_shape_and_value_range(cache, changed):
    other = RecfieldCache.key(**{**KEY_ARGS, **changed})
    assert other != RecfieldCache.key(**KEY_ARGS)
    assert cache.path(other) != cache.path(RecfieldCache.key(**KEY_ARGS))


def test_keys_differ_by_method_version(cache, key, field, monkeypatch):
    cache.save(key, field)
    monkeypatch.setattr(recfield_cache, 'METHOD_VERSION', recfield_cache.METHOD_VERSION + 1)
    newer = RecfieldCache.key(**KEY_ARGS)
    assert newer != key and cache.load(newer) is None  # entries of the older method no longer match


def test_entries_are_named_by_a_hash_of_their_key(cache, key):
    path = cache.path(key)
    assert os.path.dirname(path) == cache.folder
    name = os.path.basename(path)
    assert name.endswith('.npz') and len(name) == 64 + 4 and cache.path(key) == path


def test_the_default_folder_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    assert recfield_cache.default_dir() == str(tmp_path / 'strongest_conv_activations')
    monkeypatch.delenv('XDG_CACHE_HOME')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert recfield_cache.default_dir() == str(tmp_path / 'home' / '.cache' / 'strongest_conv_activations')


# -- save and load ------------------------------------------------------------------------------------------------

def test_save_load_round_trip(cache, key, field):
    assert cache.load(key) is None  # absent: no entry, no folder, no warning needed
    cache.save(key, field)
    loaded = cache.load(key)
    assert loaded == field and loaded is not field
    assert (loaded.size, loaded.stride, loaded.padding, loaded.feature_shape) == (
        field.size, field.stride, field.padding, field.feature_shape)
    assert os.listdir(cache.folder) == [os.path.basename(cache.path(key))]  # no temporary file left
    with np.load(cache.path(key), allow_pickle=False) as data:  # plain arrays, no pickle
        assert str(data['key']) == key and all(data[name].dtype != object for name in data.files)


def test_saving_again_replaces_the_entry(cache, key, field):
    cache.save(key, field)
    other = grid_field(6, 6, 12, before=(1, 1))
    cache.save(key, other)
    assert cache.load(key) == other and cache.load(key) != field


def test_an_absent_entry_is_none_without_a_warning(cache, key, field, caplog):
    cache.save(RecfieldCache.key(**{**KEY_ARGS, 'layer_name': 'pool/MaxPool:0'}), field)
    with caplog.at_level(logging.WARNING):
        assert cache.load(key) is None
    assert not caplog.records


def damaged_entries(cache, key, field):
    """`{what is wrong: function writing such a file at the key's path}`."""
    path = cache.path(key)

    def random_bytes():
        with open(path, 'wb') as stream:
            stream.write(np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes())

    def truncated():
        cache.save(key, field)
        with open(path, 'rb') as stream:
            whole = stream.read()
        with open(path, 'wb') as stream:
            stream.write(whole[:len(whole) // 2])

    def empty():
        open(path, 'wb').close()

    def without_the_key():
        np.savez(path, **field.to_arrays())

    def damaged_boxes():
        np.savez(path, key=np.str_(key), recfield=np.full((6, 6, 4), 13, np.int64), image_size=np.array([12, 12]))

    def pickled():
        np.savez(path, key=np.str_(key), recfield=np.array([object()]), image_size=np.array([12, 12]))

    def boxes_of_another_shape():
        np.savez(path, key=np.str_(key), recfield=np.zeros((6, 6), np.int64), image_size=np.array([12, 12]))

    def boxes_not_integers():
        np.savez(path, key=np.str_(key), recfield=field.recfield.astype(np.float64), image_size=np.array([12, 12]))

    def other_images():  # the key's probe images are 12x12
        np.savez(path, key=np.str_(key), **grid_field(6, 6, 20).to_arrays())

    def huge_header():  # a 1 KB file that declares 40 TB
        write_npz_with_a_lying_header(path, {'key': np.str_(key), **field.to_arrays()}, liar='recfield')

    def zip_header_field(offset, value):
        """Writes the entry with a field of its first zip central-directory record changed."""
        cache.save(key, field)
        set_zip_directory_field(path, offset, value)

    def unknown_zip_version():  # zipfile raises NotImplementedError
        zip_header_field(6, 78)

    def unknown_compression():  # NotImplementedError too
        zip_header_field(10, 99)

    def encrypted():  # RuntimeError: a password is needed
        zip_header_field(8, 1)

    return {function.__name__: function for function in (random_bytes, truncated, empty, without_the_key,
                                                          damaged_boxes, pickled, boxes_of_another_shape,
                                                          boxes_not_integers, other_images, huge_header,
                                                          unknown_zip_version, unknown_compression, encrypted)}


@pytest.mark.parametrize('damage', ['random_bytes', 'truncated', 'empty', 'without_the_key', 'damaged_boxes',
                                    'pickled', 'boxes_of_another_shape', 'boxes_not_integers', 'other_images',
                                    'huge_header', 'unknown_zip_version', 'unknown_compression', 'encrypted'])
def test_a_damaged_entry_is_none_and_a_warning_naming_the_file(cache, key, field, caplog, damage):
    os.makedirs(cache.folder)
    damaged_entries(cache, key, field)[damage]()
    with caplog.at_level(logging.WARNING):
        assert cache.load(key) is None
    assert len(warned_about(caplog, cache.path(key))) == 1
    cache.save(key, field)  # measured again and stored over it
    assert cache.load(key) == field


@pytest.mark.parametrize('liar, dtype, words', [
    ('recfield', np.float32, "array 'recfield' declares float32 of shape (1000000000, 10000)"),
    ('recfield', object, "array 'recfield' declares dtype object"),
    ('key', '<U100000000', "array 'key' declares <U100000000"),
])
def test_an_entry_whose_header_lies_is_warned_about_before_any_array_is_read(cache, key, field, caplog, monkeypatch,
                                                                            liar, dtype, words):
    os.makedirs(cache.folder)
    path = write_npz_with_a_lying_header(cache.path(key), {'key': np.str_(key), **field.to_arrays()}, liar,
                                         dtype=dtype)
    assert os.path.getsize(path) < 2000
    read = arrays_read(monkeypatch)
    with caplog.at_level(logging.WARNING):
        assert cache.load(key) is None
    [warning] = warned_about(caplog, path)
    assert words in warning and warning.endswith('measuring again.'), warning
    assert read == []  # refused from the headers: no array's data read, nothing allocated


def test_an_entry_for_images_of_another_size_is_warned_about(tmp_path, caplog):
    # The user's case: the key is for 20x20 probe images, the entry under it holds a field of 12x12 ones, which
    # used to fail only when drawing (could not broadcast ... (0,0,3) into (20,20,3)).
    cache = RecfieldCache(str(tmp_path / 'cache'))
    key = RecfieldCache.key(**{**KEY_ARGS, 'image_shape': (20, 20, 3)})
    cache.save(key, grid_field(6, 6, 12))
    with caplog.at_level(logging.WARNING):
        assert cache.load(key) is None
    [warning] = warned_about(caplog, cache.path(key))
    assert "its field is of 12x12 images, the key's probe images are 20x20" in warning
    cache.save(key, grid_field(6, 6, 20))  # measured again
    assert cache.load(key) == grid_field(6, 6, 20)


def test_an_entry_stored_under_another_key_is_none_and_a_warning(cache, key, field, caplog):
    other_key = RecfieldCache.key(**{**KEY_ARGS, 'layer_name': 'pool/MaxPool:0'})
    cache.save(other_key, field)
    os.replace(cache.path(other_key), cache.path(key))  # as if two keys had the same hash
    with caplog.at_level(logging.WARNING):
        assert cache.load(key) is None
    [warning] = warned_about(caplog, cache.path(key))
    assert 'pool/MaxPool:0' in warning  # it says what the file was stored for


@pytest.mark.parametrize('folder', ['a-file', 'a-file/cache'])
def test_a_folder_that_cannot_be_written_is_a_warning_not_an_error(tmp_path, key, field, caplog, folder):
    # A plain file where the folder, or one above it, should be: unwritable even for root.
    (tmp_path / 'a-file').write_bytes(b'not a folder')
    cache = RecfieldCache(str(tmp_path / folder))
    with caplog.at_level(logging.WARNING):
        cache.save(key, field)
        cache.save(RecfieldCache.key(**{**KEY_ARGS, 'layer_name': 'other:0'}), field)  # warned once, not per layer
        assert cache.load(key) is None
    assert [record.name for record in caplog.records] == ['utils.core.recfield_cache']
    assert 'cannot write the receptive-field cache' in caplog.text and str(tmp_path / folder) in caplog.text
    assert (tmp_path / 'a-file').read_bytes() == b'not a folder'
