"""utils.base.files: atomic_write all or nothing, ensure_writable_dir, and open_npz refusing files whose headers lie
before numpy allocates what they declare."""

import errno
import logging
import os
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from conftest import (REPO, arrays_read, folder_locked_by_another_process, set_zip_directory_field,
                      write_npz_with_a_lying_header)
from utils.base import files
from utils.base.files import atomic_write, ensure_writable_dir, open_npz


def test_writes_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / 'out.txt'
    with atomic_write(str(path), 'w') as stream:
        stream.write('hello')
    assert path.read_text() == 'hello'
    assert os.listdir(tmp_path) == ['out.txt']


def test_failure_keeps_the_previous_file(tmp_path):
    path = tmp_path / 'out.bin'
    path.write_bytes(b'old')
    with pytest.raises(RuntimeError):
        with atomic_write(str(path)) as stream:
            stream.write(b'half of the new')
            raise RuntimeError('disk full')
    assert path.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['out.bin']


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        with atomic_write(str(tmp_path / 'missing' / 'out.bin')):
            pass


def test_writable_dir_is_created(tmp_path):
    folder = tmp_path / 'a' / 'b'
    assert ensure_writable_dir(str(folder)) == str(folder)
    assert folder.is_dir() and not os.listdir(folder)


@pytest.mark.parametrize('relative', ['file', 'file/sub'])
def test_unwritable_dir_is_a_clear_error(tmp_path, relative):
    (tmp_path / 'file').write_text('')
    with pytest.raises(ValueError, match='--out_dir'):
        ensure_writable_dir(str(tmp_path / relative))


# -- open_npz -----------------------------------------------------------------------------------------------------

PLAIN_ARRAYS = {'floats': np.linspace(0, 1, 12).reshape(3, 4), 'fortran': np.asfortranarray(np.ones((3, 4))),
                'number': np.int64(7), 'text': np.str_('conv/Relu:0'), 'no_names': np.zeros(0, np.str_),
                'flags': np.array([True, False]), 'pixels': np.zeros((2, 5, 5, 3), np.uint8)}


@pytest.mark.parametrize('savez', [np.savez, np.savez_compressed])
def test_open_npz_reads_what_savez_writes(tmp_path, savez):
    path = tmp_path / 'arrays.npz'
    savez(path, **PLAIN_ARRAYS)
    with open_npz(str(path)) as data:
        assert sorted(data.files) == sorted(PLAIN_ARRAYS)
        for name, array in PLAIN_ARRAYS.items():
            assert data[name].dtype == array.dtype
            np.testing.assert_array_equal(data[name], array)


def write_lying(path, **header):
    """An `.npz` file of a small array and one whose header says `header` over 16 bytes."""
    return write_npz_with_a_lying_header(path, {'small': np.arange(3), 'liar': None}, 'liar', **header)


def write_member(path, name, data, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, 'w', compression) as archive:
        archive.writestr(name, data)
    return path


def write_then_set(path, savez, *fields):
    """Writes an `.npz` of a small array with `savez`, then sets `(offset, value)` fields of its zip directory."""
    savez(path, small=np.arange(100))
    for offset, value in fields:
        set_zip_directory_field(path, offset, value, width=4)
    return path


LIES = {
    'a huge shape': (lambda path: write_lying(path), "array 'liar' declares float32 of shape (1000000000, 10000) "
                     '(40,000,000,000,000 bytes) but holds 16 bytes'),
    'a huge string': (lambda path: write_lying(path, shape=(), dtype='<U100000000'), 'declares <U100000000'),
    'zero-width items': (lambda path: write_lying(path, shape=(10 ** 12,), dtype='V0'), 'declares dtype |V0'),
    'a negative length': (lambda path: write_lying(path, shape=(2, -3)), 'declares shape (2, -3)'),
    'objects': (lambda path: write_lying(path, shape=(1,), dtype=object), 'declares dtype object'),
    'records': (lambda path: write_lying(path, shape=(1,), dtype=[('a', '<f8')]), "declares dtype [('a', '<f8')]"),
    'not an array': (lambda path: write_member(path, 'notes.txt', b'hello'), "member 'notes.txt' is not a numpy"),
    'lzma': (lambda path: write_member(path, 'a.npy', b'\x93NUMPY', zipfile.ZIP_LZMA), 'zip method 14'),
    # Zip directories that lie about sizes, so that a header could declare as much
    'a stored size': (lambda path: write_then_set(path, np.savez, (24, 2 ** 30)), 'declares 1073741824 bytes'),
    'a size beyond the file': (lambda path: write_then_set(path, np.savez, (20, 2 ** 30), (24, 2 ** 30)),
                               '(1073741824 stored) in a file of'),
    'a deflated size': (lambda path: write_then_set(path, np.savez_compressed, (24, 2 ** 31)),
                        'declares 2147483648 bytes'),
}


@pytest.mark.parametrize('lie', LIES)
def test_open_npz_refuses_a_file_that_lies_before_reading_any_array(tmp_path, monkeypatch, lie):
    write, words = LIES[lie]
    path = write(str(tmp_path / 'lies.npz'))
    assert os.path.getsize(path) < 5000
    read = arrays_read(monkeypatch)
    with pytest.raises(ValueError) as error:
        open_npz(path)
    assert words in str(error.value) and 'the file is damaged' in str(error.value), error.value
    assert read == []  # nothing read, nothing allocated


def test_open_npz_lets_zip_errors_through(tmp_path):
    path = tmp_path / 'plain.npy'
    np.save(path, np.arange(3))  # an array, not an archive
    with pytest.raises(zipfile.BadZipFile):
        open_npz(str(path))


def test_a_full_disk_names_the_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, stream):
            self.stream = stream

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.stream.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, 'fdopen', lambda handle, mode: FullDisk(real_fdopen(handle, mode)))
    path = str(tmp_path / 'picture.jpg')
    with pytest.raises(OSError, match=r"No space left on device: '.*picture\.jpg'") as raised:
        with atomic_write(path) as stream:
            stream.write(b'pixels')
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == path
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(files.fcntl is None, reason='folder locks need fcntl (POSIX)')
def test_a_folder_another_process_writes_into_is_refused_until_it_ends(tmp_path):
    with folder_locked_by_another_process(tmp_path):
        with pytest.raises(ValueError, match=f'another run is writing into {tmp_path} .*give another folder with '
                                             '--out_dir'):
            files.lock_folder(str(tmp_path))
    files.lock_folder(str(tmp_path))
    files.lock_folder(str(tmp_path))  # this process holds it already: nothing to do
    assert os.listdir(tmp_path) == []  # the lock adds no file
    holder = subprocess.Popen([sys.executable, '-c', 'import sys; sys.path.insert(0, sys.argv[2]); '
                               'from utils.base import files; files.lock_folder(sys.argv[1])', str(tmp_path), REPO],
                              stderr=subprocess.PIPE, text=True)
    assert holder.wait() == 1 and 'another run is writing into' in holder.stderr.read()
    files.release_folders()
    with folder_locked_by_another_process(tmp_path):  # takes it now
        pass


def test_temporary_files_of_killed_runs_are_removed_with_a_warning(tmp_path, caplog):
    for name in ('.tmp-old.jpg', '.tmp-young.npz', 'photo.jpg'):
        (tmp_path / name).write_bytes(b'x')
    (tmp_path / '.tmp-extract-old').mkdir()
    (tmp_path / '.tmp-extract-old' / 'member.bin').write_bytes(b'x')
    hour_ago = time.time() - 3600
    for name in ('.tmp-old.jpg', '.tmp-extract-old'):
        os.utime(tmp_path / name, (hour_ago, hour_ago))
    with caplog.at_level(logging.WARNING, logger='utils.base.files'):
        assert files.remove_stale_temporaries(str(tmp_path)) == ['.tmp-extract-old', '.tmp-old.jpg']
    assert sorted(os.listdir(tmp_path)) == ['.tmp-young.npz', 'photo.jpg']  # a run may be writing this one now
    assert f'removed 2 temporary files that interrupted runs left in {tmp_path} (first: .tmp-extract-old)' \
        in caplog.text


def test_a_dangling_symbolic_link_as_output_folder_says_so(tmp_path):
    # Before: 'cannot write to output folder ... (File exists)'.
    (tmp_path / 'out').symlink_to(tmp_path / 'gone')
    with pytest.raises(ValueError, match=f'output folder {tmp_path}/out is a symbolic link to {tmp_path}/gone, which '
                                         'does not exist; create that folder, or give another with --out_dir'):
        ensure_writable_dir(str(tmp_path / 'out'))


def test_saved_arrays_come_back_as_written_and_anything_else_is_refused_naming_the_file(tmp_path):
    path = str(tmp_path / 'state.npz')
    arrays = {'boxes': np.arange(12).reshape(3, 4), 'name': np.str_('conv1'), 'count': np.int64(7)}
    files.save_arrays(path, arrays)
    loaded = files.load_arrays(path, 'a saved thing')
    assert sorted(loaded) == sorted(arrays) and all(np.array_equal(loaded[key], arrays[key]) for key in arrays)
    assert [name for name in os.listdir(tmp_path)] == ['state.npz']  # no temporary file left
    with pytest.raises(FileNotFoundError, match='missing.npz does not exist; expected a saved thing'):
        files.load_arrays(str(tmp_path / 'missing.npz'), 'a saved thing')
    (tmp_path / 'text.npz').write_text('not an archive')
    with pytest.raises(ValueError, match='text.npz is not a saved thing'):
        files.load_arrays(str(tmp_path / 'text.npz'), 'a saved thing')
    np.savez(str(tmp_path / 'pickled.npz'), objects=np.array([{'a': 1}], dtype=object))
    with pytest.raises(ValueError, match='pickled.npz is not a saved thing'):
        files.load_arrays(str(tmp_path / 'pickled.npz'), 'a saved thing')
