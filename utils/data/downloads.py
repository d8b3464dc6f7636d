"""Downloading datasets and models: streamed with a progress bar, checked, and never left half-written.

`download` streams a URL into a temporary file beside the destination and renames it into place only once
the whole body has arrived (and its MD5 matches, when one is given). Without an MD5, a `.zip` or tar archive
is read to its end first (`check_archive`): a body cut short by a server that sent no Content-Length then
fails instead of replacing a good file. Other files without an MD5 cannot be checked. `extract_tar` unpacks an archive
through the standard library's `data` filter, which refuses members that would land outside the target
folder (`../`, absolute paths, links pointing out, devices), into a temporary folder first, then moves its
files in without deleting or replacing anything of other contents. The command-line tool
on top: `python utils/download.py URL DESTINATION [--md5 HEX] [--extract]`.
"""

import filecmp
import hashlib
import logging
import lzma
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib

import progressbar
import requests

from utils.base.files import atomic_write
from utils.base.progress import progress_bar

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
ARCHIVE_KINDS = (('.zip', 'zip'), ('.tar', 'tar'), ('.tgz', 'tar'), ('.tar.gz', 'tar'), ('.tbz2', 'tar'),
                 ('.tar.bz2', 'tar'), ('.txz', 'tar'), ('.tar.xz', 'tar'))


def download(url, destination, md5=None, session=None, timeout=60):
    """Downloads `url` to `destination`, atomically.

    Args:
        url: an http(s) address.
        destination: file path; its folder must exist.
        md5: expected hex MD5 of the file, or None to skip the check.
        session: a `requests.Session` to use (e.g. one that carries cookies), or None for a new one.
        timeout: seconds to wait for the server to connect or to send more data.

    Returns:
        `destination`.

    Raises:
        ConnectionError: the server could not be reached, answered with an HTTP error, or the connection
            broke before the whole file arrived. Nothing is left at `destination`.
        ValueError: the file arrived but its MD5 is not `md5`. Nothing is left at `destination`.
    """
    session = session or requests.Session()
    name = os.path.basename(destination)
    try:
        with session.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise ConnectionError(f'downloading {name}: {url} answered HTTP {response.status_code} '
                                      f'{response.reason}; check the address or try again later.')
            write_response(response, destination, md5)
    except requests.RequestException as error:
        raise ConnectionError(f'downloading {name} from {url} failed ({error.__class__.__name__}: {error}); '
                              'check your connection and run the command again.') from error
    return destination


def write_response(response, destination, md5=None):
    """Streams a `requests` response body into `destination` atomically, with a progress bar.

    Args:
        response: a streamed response (`stream=True`) with status 200.
        destination: file path; its folder must exist.
        md5: expected hex MD5, or None.

    Raises:
        ConnectionError: fewer bytes arrived than the response's Content-Length announced.
        ValueError: the MD5 differs, or, without `md5`, an archive does not read to its end (`check_archive`).
        requests.RequestException: the connection broke while reading.
        In every case `destination` is left as it was.
    """
    name = os.path.basename(destination)
    expected_size = int(response.headers.get('Content-Length', 0)) or None
    digest = hashlib.md5()
    received = 0
    widgets = [f'{name} ', progressbar.DataSize(), ' ', progressbar.Bar(), ' ', progressbar.FileTransferSpeed()]
    with atomic_write(destination, 'w+b') as stream, \
            progress_bar('', expected_size or None, widgets=widgets) as bar:
        for chunk in response.iter_content(CHUNK_SIZE):
            stream.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            bar.update(min(received, expected_size) if expected_size else received)
        if expected_size is not None and received != expected_size:
            raise ConnectionError(f'downloading {name}: the connection ended after {received} of '
                                  f'{expected_size} bytes; run the command again.')
        if md5 is not None and digest.hexdigest() != md5.lower():
            raise ValueError(f'downloaded {name} has MD5 {digest.hexdigest()}, expected {md5}: the file is '
                             'damaged or not the expected one; run the command again, or download it by hand.')
        if md5 is None:
            check_archive(stream, name)
    logger.info('downloaded %s (%d bytes)', destination, received)


def check_archive(stream, name):
    """Reads a `.zip` or tar archive (as `name` ends, `ARCHIVE_KINDS`) to its end; any other file passes.

    A zip must open and every member match its CRC; a tar (any compression) must list every member, decompress
    to its end (where gzip, bz2 and xz check their own lengths or CRCs) and end with the two zero blocks every
    tar has.

    Args:
        stream: the file, open for reading (it is read from its start).
        name: its file name, for the kind and for the message.

    Raises:
        ValueError: the archive is damaged or ends early.
    """
    kind = next((kind for ending, kind in ARCHIVE_KINDS if name.lower().endswith(ending)), None)
    if kind is None:
        return
    stream.flush()
    stream.seek(0)
    try:
        if kind == 'zip':
            with zipfile.ZipFile(stream) as archive:
                damaged = archive.testzip()
            if damaged is not None:
                raise zipfile.BadZipFile(f'member {damaged} does not match its CRC')
        else:
            with tarfile.open(fileobj=stream) as archive:
                archive.getmembers()
                while archive.fileobj.read(CHUNK_SIZE):
                    pass
                if archive.fileobj.tell() < archive.offset + 2 * tarfile.BLOCKSIZE:
                    raise tarfile.ReadError('it ends before its end-of-archive blocks')
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as error:
        raise ValueError(f'downloaded {name} is not a complete {kind} archive ({error}): the download was cut short '
                         'or the file is damaged; run the command again.') from error


def extract_tar(archive, target_dir):
    """Unpacks a tar archive (any compression) into `target_dir`, safely and all or nothing, deleting nothing.

    Members are extracted into a temporary folder inside `target_dir` and only then moved into place: folders
    are merged with folders already there, files already there with the same contents are left as they are,
    and files of the user's that the archive does not hold are kept. A file the archive would replace by other
    contents (or a file where it has a folder, or the other way round) stops the extraction before anything is
    moved.

    Args:
        archive: path of the archive.
        target_dir: an existing folder.

    Returns:
        list of the top-level names extracted.

    Raises:
        FileNotFoundError: no archive at `archive`.
        ValueError: the archive is damaged, a member would land outside `target_dir` (path traversal, absolute
            path, link pointing out) or is a device file, or it would replace something of another content.
            Nothing is extracted then.
    """
    if not os.path.isfile(archive):
        raise FileNotFoundError(f'no archive at {archive}.')
    staging = tempfile.mkdtemp(dir=target_dir, prefix='.tmp-extract-')
    try:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(staging, filter='data')
        except tarfile.FilterError as error:
            raise ValueError(f'{archive} has an unsafe member ({error}); refusing to extract it.') from error
        except (tarfile.TarError, EOFError, OSError) as error:
            raise ValueError(f'{archive} is not a readable tar archive ({error}); delete it and download it '
                             'again.') from error
        names = sorted(os.listdir(staging))
        moves = _moves_into(staging, target_dir, names)
        for source, destination in moves:
            os.replace(source, destination)
        return names
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _moves_into(staging, target_dir, names):
    """The `(source, destination)` renames that put the entries `names` of `staging` into `target_dir` without
    replacing anything of other contents: whole entries where nothing is in the way, the insides of folders
    that exist on both sides, nothing for files that are already there, the same.

    Raises:
        ValueError: an entry would replace a file or folder of another content or kind; nothing has moved.
    """
    moves, conflicts = [], []
    pending = [(os.path.join(staging, name), os.path.join(target_dir, name)) for name in names]
    while pending:
        source, destination = pending.pop()
        if not os.path.lexists(destination):
            moves.append((source, destination))
        elif os.path.isdir(source) and not os.path.islink(source):
            if os.path.isdir(destination) and not os.path.islink(destination):
                pending += [(os.path.join(source, name), os.path.join(destination, name))
                            for name in os.listdir(source)]
            else:
                conflicts.append(destination)
        elif not (os.path.isfile(source) and not os.path.islink(source) and os.path.isfile(destination)
                  and not os.path.islink(destination) and filecmp.cmp(source, destination, shallow=False)):
            conflicts.append(destination)
    if conflicts:
        conflicts.sort()
        raise ValueError(f'extracting would replace {len(conflicts)} files or folders in {target_dir} by other '
                         f'contents (first: {conflicts[0]}); nothing was extracted: extract into an empty folder, or '
                         'move them away first.')
    return sorted(moves)
