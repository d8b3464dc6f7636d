"""utils.data.downloads and utils/download.py against a real HTTP server on 127.0.0.1: good files, wrong MD5,
unsafe archives."""

import hashlib
import io
import os
import tarfile

import pytest

from conftest import make_tar, make_zip, run_script, send_bytes, send_half_then_hang_up, send_without_length
from utils import download as download_script
from utils.data.downloads import download, extract_tar
from utils.running.cli import run_main

ARCHIVE = make_tar({'dataset/a.bin': b'a' * 5000, 'dataset/b.bin': b'b' * 300})


def test_download_and_extract(http_server, tmp_path):
    http_server.routes['/data.tar.gz'] = lambda handler: send_bytes(handler, ARCHIVE)
    path = download(http_server.url + '/data.tar.gz', str(tmp_path / 'data.tar.gz'),
                    md5=hashlib.md5(ARCHIVE).hexdigest())
    assert open(path, 'rb').read() == ARCHIVE
    assert extract_tar(path, str(tmp_path)) == ['dataset']
    assert (tmp_path / 'dataset' / 'a.bin').read_bytes() == b'a' * 5000
    assert sorted(os.listdir(tmp_path)) == ['data.tar.gz', 'dataset']  # no temporary files left


def test_wrong_md5_leaves_nothing(http_server, tmp_path):
    http_server.routes['/data.tar.gz'] = lambda handler: send_bytes(handler, ARCHIVE)
    with pytest.raises(ValueError, match='MD5'):
        download(http_server.url + '/data.tar.gz', str(tmp_path / 'data.tar.gz'), md5='0' * 32)
    assert os.listdir(tmp_path) == []


def test_connection_dropped_midway_leaves_nothing(http_server, tmp_path):
    http_server.routes['/data.tar.gz'] = lambda handler: send_half_then_hang_up(handler, ARCHIVE)
    with pytest.raises(ConnectionError, match='run the command again'):
        download(http_server.url + '/data.tar.gz', str(tmp_path / 'data.tar.gz'))
    assert os.listdir(tmp_path) == []


ZIP = make_zip({'model/weights.bin': bytes(range(256)) * 40, 'model/meta.txt': b'meta'})
PLAIN_TAR = make_tar({'dataset/a.bin': b'a' * 5000, 'dataset/b.bin': b'b' * 300}, mode='w')


def end_of_members(tar_bytes):
    """Where a plain tar's end-of-archive blocks start: a cut there leaves every member whole."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as archive:
        archive.getmembers()
        return archive.offset


@pytest.mark.parametrize('name, body, cut', [
    ('data.tar.gz', ARCHIVE, len(ARCHIVE) // 2),
    ('data.tar.gz', ARCHIVE, len(ARCHIVE) - 4),  # only gzip's length field is missing
    ('data.tar', PLAIN_TAR, len(PLAIN_TAR) // 2),
    ('data.tar', PLAIN_TAR, end_of_members(PLAIN_TAR)),
    ('model.zip', ZIP, len(ZIP) // 2),
    ('model.zip', ZIP, len(ZIP) - 1),
], ids=['tgz-half', 'tgz-trailer', 'tar-half', 'tar-end-blocks', 'zip-half', 'zip-last-byte'])
def test_body_cut_short_without_length_keeps_the_old_file(http_server, tmp_path, name, body, cut):
    http_server.routes['/' + name] = lambda handler: send_without_length(handler, body[:cut])
    (tmp_path / name).write_bytes(b'the good copy')
    with pytest.raises(ValueError, match=f'downloaded {name} is not a complete (zip|tar) archive .*run the command'):
        download(http_server.url + '/' + name, str(tmp_path / name))
    assert (tmp_path / name).read_bytes() == b'the good copy'
    assert os.listdir(tmp_path) == [name]  # no temporary file left


@pytest.mark.parametrize('name, body', [('data.tar.gz', ARCHIVE), ('data.tar', PLAIN_TAR), ('model.zip', ZIP),
                                        ('notes.bin', b'any bytes')])
def test_whole_body_without_length_is_accepted(http_server, tmp_path, name, body):
    http_server.routes['/' + name] = lambda handler: send_without_length(handler, body)
    download(http_server.url + '/' + name, str(tmp_path / name))
    assert (tmp_path / name).read_bytes() == body


def test_http_error_is_clear(http_server, tmp_path):
    with pytest.raises(ConnectionError, match='HTTP 404'):
        download(http_server.url + '/missing.tar.gz', str(tmp_path / 'x.tar.gz'))
    assert os.listdir(tmp_path) == []


def test_unreachable_server_is_clear(tmp_path):
    with pytest.raises(ConnectionError, match='check your connection'):
        download('http://127.0.0.1:9/data.tar.gz', str(tmp_path / 'x.tar.gz'), timeout=5)


@pytest.mark.parametrize('members', [
    {'dataset/ok.bin': b'ok', '../escaped.bin': b'evil'},
    {'dataset/ok.bin': b'ok', 'dataset/../../escaped.bin': b'evil'},
    {'dataset/link': None},
], ids=['parent', 'nested-parent', 'symlink-out'])
def test_unsafe_archive_is_refused_and_nothing_extracted(tmp_path, members):
    target = tmp_path / 'target'
    target.mkdir()
    archive = tmp_path / 'evil.tar'
    archive.write_bytes(make_tar(members, mode='w'))
    with pytest.raises(ValueError, match='unsafe member'):
        extract_tar(str(archive), str(target))
    assert os.listdir(target) == []
    assert not (tmp_path / 'escaped.bin').exists()


def test_absolute_member_lands_inside_the_target(tmp_path):
    """The data filter strips the leading '/': the member cannot reach the absolute path it names."""
    outside = tmp_path / 'outside' / 'absolute.bin'
    target = tmp_path / 'target'
    target.mkdir()
    archive = tmp_path / 'abs.tar'
    archive.write_bytes(make_tar({str(outside): b'data'}, mode='w'))
    extract_tar(str(archive), str(target))
    assert not outside.exists()
    assert (target / str(outside).lstrip('/')).read_bytes() == b'data'


def test_damaged_archive_is_clear(tmp_path):
    archive = tmp_path / 'broken.tar.gz'
    archive.write_bytes(ARCHIVE[:len(ARCHIVE) // 2])
    with pytest.raises(ValueError, match='not a readable tar archive'):
        extract_tar(str(archive), str(tmp_path))
    assert os.listdir(tmp_path) == ['broken.tar.gz']


def test_extract_keeps_what_it_did_not_write(tmp_path):
    (tmp_path / 'dataset').mkdir()
    (tmp_path / 'dataset' / 'my_own.bin').write_bytes(b'mine')
    (tmp_path / 'dataset' / 'a.bin').write_bytes(b'a' * 5000)  # already there, the same: left as it is
    (tmp_path / '.git').mkdir()
    (tmp_path / '.git' / 'HEAD').write_text('ref: refs/heads/main\n')
    archive = tmp_path / 'data.tar.gz'
    archive.write_bytes(make_tar({'dataset/a.bin': b'a' * 5000, 'dataset/b.bin': b'b' * 300, '.git/config': b'x'}))
    assert extract_tar(str(archive), str(tmp_path)) == ['.git', 'dataset']
    assert sorted(os.listdir(tmp_path / 'dataset')) == ['a.bin', 'b.bin', 'my_own.bin']
    assert (tmp_path / 'dataset' / 'my_own.bin').read_bytes() == b'mine'
    assert (tmp_path / '.git' / 'HEAD').read_text() == 'ref: refs/heads/main\n'
    assert sorted(os.listdir(tmp_path / '.git')) == ['HEAD', 'config']
    assert sorted(os.listdir(tmp_path)) == ['.git', 'data.tar.gz', 'dataset']  # no temporary folder left


@pytest.mark.parametrize('mine', ['file', 'folder'])
def test_extract_that_would_replace_other_contents_is_refused_whole(tmp_path, mine):
    (tmp_path / 'dataset').mkdir()
    (tmp_path / 'dataset' / 'a.bin').write_bytes(b'my own a')
    if mine == 'folder':
        (tmp_path / 'dataset' / 'a.bin').unlink()
        (tmp_path / 'dataset' / 'a.bin').mkdir()
    archive = tmp_path / 'data.tar.gz'
    archive.write_bytes(ARCHIVE)
    with pytest.raises(ValueError, match=r'would replace 1 files or folders in .* \(first: .*dataset/a.bin\); nothing '
                                         'was extracted'):
        extract_tar(str(archive), str(tmp_path))
    assert os.listdir(tmp_path / 'dataset') == ['a.bin']  # b.bin was not moved in either
    assert sorted(os.listdir(tmp_path)) == ['data.tar.gz', 'dataset']


def test_script_refuses_to_extract_over_the_users_files(http_server, tmp_path, capsys):
    http_server.routes['/data.tar.gz'] = lambda handler: send_bytes(handler, ARCHIVE)
    (tmp_path / 'dataset').mkdir()
    (tmp_path / 'dataset' / 'b.bin').write_bytes(b'my b')
    assert run_main(download_script.main, [http_server.url + '/data.tar.gz', str(tmp_path / 'data.tar.gz'),
                                           '--extract']) == 2
    assert 'nothing was extracted' in capsys.readouterr().err
    assert (tmp_path / 'dataset' / 'b.bin').read_bytes() == b'my b'


# -- as a script ----------------------------------------------------------------------------------------------

def test_script_help_lists_its_arguments():
    result = run_script('utils/download.py', '--help')
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('usage: download.py') and '--md5' in result.stdout and not result.stderr


def test_script_downloads_and_extracts(http_server, tmp_path):
    http_server.routes['/data.tar.gz'] = lambda handler: send_bytes(handler, ARCHIVE)
    destination = tmp_path / 'data.tar.gz'
    assert run_main(download_script.main, [http_server.url + '/data.tar.gz', str(destination), '--md5',
                                           hashlib.md5(ARCHIVE).hexdigest(), '--extract']) == 0
    assert destination.read_bytes() == ARCHIVE
    assert (tmp_path / 'dataset' / 'b.bin').read_bytes() == b'b' * 300


def test_script_bad_input_is_one_line(http_server, tmp_path):
    http_server.routes['/data.tar.gz'] = lambda handler: send_bytes(handler, ARCHIVE)
    result = run_script('utils/download.py', http_server.url + '/data.tar.gz', tmp_path / 'x.tar.gz', '--md5',
                        '0' * 32)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith('error: downloaded x.tar.gz has MD5 ')
    assert 'Traceback' not in result.stderr and os.listdir(tmp_path) == []
