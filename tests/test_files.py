"""utils.files.atomic_write: all or nothing."""

import os

import pytest

from utils.files import atomic_write, ensure_writable_dir


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
