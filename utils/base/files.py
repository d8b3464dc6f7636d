"""File helpers: writing output files atomically, so that an interrupted run never leaves a half-written file
behind; one run at a time in an output folder; reading `.npz` files whose headers may lie."""

import contextlib
import hashlib
import logging
import math
import os
import shutil
import tempfile
import time
import zipfile

try:
    import fcntl  # POSIX: folder locks
except ImportError:  # Windows: runs into one folder are not kept apart
    fcntl = None

import numpy as np
from numpy.lib import format as npy_format

# The dtype kinds of plain data (bool, integers, floats, complex, text): never objects (pickles) or records.
PLAIN_DTYPE_KINDS = 'biufcU'
# Deflate cannot shrink data more than about 1032 times: a bound on what a compressed member can really hold.
DEFLATE_MAX_RATIO = 1032
# Temporary files and folders of `atomic_write` (and of archive extraction) start with this.
TEMPORARY_PREFIX = '.tmp-'
# A temporary file older than this is left by a run that was killed: a write takes well under a second.
STALE_TEMPORARY_S = 60

logger = logging.getLogger(__name__)
_locked_folders = {}  # real path -> the open folder whose lock this process holds


@contextlib.contextmanager
def atomic_write(path, mode='wb'):
    """Opens a temporary file beside `path` for writing and renames it to `path` when the block succeeds.

    On an error inside the block the temporary file is removed and `path` is left as it was. The file gets
    the permissions a plain `open` would give it (not the 0600 of a temporary file).

    Args:
        path: destination file.
        mode: 'wb' or 'w'.

    Yields:
        the open temporary file.

    Raises:
        FileNotFoundError: the destination folder does not exist.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f'cannot write {path}: folder {directory} does not exist.')
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=TEMPORARY_PREFIX, suffix=os.path.splitext(path)[1])
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        with os.fdopen(handle, mode) as stream:
            yield stream
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(error, OSError) and error.filename is None and error.errno is not None:
            # A full disk (ENOSPC) or a file too large (EFBIG) says so without naming the file: name it.
            raise type(error)(error.errno, error.strerror, path) from error
        raise


def lock_folder(path, flag='--out_dir'):
    """Keeps other processes from taking `path` while this one writes into it, until `release_folders()`.

    The lock is the operating system's on the folder itself (`flock`: no file is added, and it goes away with
    the process however it ends). Taking a folder this process holds already does nothing. Without `fcntl`
    (Windows) nothing is locked.

    Raises:
        ValueError: another process holds the folder.
    """
    real_path = os.path.realpath(path)
    if fcntl is None or real_path in _locked_folders:
        return
    folder = os.open(real_path, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    try:
        fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(folder)
        raise ValueError(f'another run is writing into {path} ({error.strerror}); wait until it ends, or give '
                         f'another folder with {flag}.') from error
    _locked_folders[real_path] = folder


def release_folders():
    """Lets go of every folder `lock_folder` took in this process."""
    while _locked_folders:
        os.close(_locked_folders.popitem()[1])


def remove_stale_temporaries(folder, older_than=STALE_TEMPORARY_S):
    """Removes the temporary files and folders (`.tmp-*`) that runs killed while writing left in `folder`, those
    older than `older_than` seconds (younger ones may be another run's, being written), with a warning.

    Returns:
        the names removed.
    """
    removed, now = [], time.time()
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.startswith(TEMPORARY_PREFIX):
                continue
            with contextlib.suppress(OSError):
                if now - entry.stat(follow_symlinks=False).st_mtime < older_than:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed.append(entry.name)
    if removed:
        removed.sort()
        logger.warning('removed %d temporary files that interrupted runs left in %s (first: %s)', len(removed),
                       folder, removed[0])
    return removed


def ensure_writable_dir(path, flag='--out_dir'):
    """Creates folder `path` if missing and checks that files can be written in it.

    Meant to run before a long computation, so that an unwritable output folder fails at once.

    Args:
        path: the folder.
        flag: the command-line flag that gave it, for the error message.

    Returns:
        `path`.

    Raises:
        ValueError: `path` is a file, or the folder cannot be created or written to.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f'output folder {path} is a file; give a folder with {flag}.')
    if os.path.islink(path) and not os.path.exists(path):
        raise ValueError(f'output folder {path} is a symbolic link to {os.readlink(path)}, which does not exist; '
                         f'create that folder, or give another with {flag}.')
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise ValueError(f'cannot write to output folder {path} ({error.strerror or error}); give another '
                         f'folder with {flag}.') from error
    return path


def digest_files(paths, algorithm='sha256'):
    """The hex digest (`hashlib` algorithm) of the files' contents, read in order, in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    for path in paths:
        with open(path, 'rb') as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b''):
                digest.update(chunk)
    return digest.hexdigest()


def open_npz(path, kinds=PLAIN_DTYPE_KINDS):
    """`np.load(path, allow_pickle=False)` of an `.npz` file, after checking every array's header.

    numpy allocates the array a header declares before it reads the data, so a file of a few kilobytes that
    declares a huge shape asks for gigabytes (a MemoryError, or the process killed). Each member's `.npy`
    header is read first (shape, dtype, Fortran order), and the file is refused unless every array fits in
    the bytes its zip member holds, and those fit in the file.

    Args:
        path: the `.npz` file.
        kinds: the dtype kinds (`numpy.dtype.kind`) allowed; others are refused before any data is read.

    Returns:
        the `numpy.lib.npyio.NpzFile` (a context manager, as `np.load` returns).

    Raises:
        ValueError: a member is not an `.npy` array, is stored in a way numpy does not write, declares a dtype
            not in `kinds`, or declares more data than it holds; the message says which member and what, not
            the file (callers name it, as they do for numpy's own errors).
        zipfile.BadZipFile, OSError, EOFError, RuntimeError: the file is not a zip or cannot be read.
    """
    file_size = os.path.getsize(path)
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            _check_zip_member(member, file_size)
            with archive.open(member) as stream:
                _check_npy_header(member, stream, kinds)
    return np.load(path, allow_pickle=False)


# What reading an `.npz` file raises when it is not one numpy wrote: an empty or truncated file EOFError, a
# damaged zip BadZipFile (a plain .npy file too: an array, not an archive), an encrypted or unknown zip
# RuntimeError, a missing array KeyError, a bad header or a pickled array ValueError.
NPZ_ERRORS = (KeyError, ValueError, OSError, EOFError, TypeError, RuntimeError, zipfile.BadZipFile)


def save_arrays(path, arrays):
    """Writes named arrays to an `.npz` file (no pickle), atomically: what every saved state of the tool is
    (`TopActivations`, shard states, receptive-field cache entries, each through its `to_arrays`).

    Args:
        path: the file.
        arrays: dict from name to array (or anything `np.asarray` takes without objects).
    """
    with atomic_write(path) as stream:
        np.savez(stream, **arrays)


def load_arrays(path, what):
    """Reads every array of an `.npz` file written by `save_arrays`, headers checked first (`open_npz`).

    Args:
        path: the file.
        what: what the file should be, for errors (e.g. 'a file written by TopActivations.save').

    Returns:
        dict from name to numpy array, read into memory (the files are small: a run's kept patches at most).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not an `.npz` file of plain arrays; the message names it and `what`.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path} does not exist; expected {what}.')
    try:
        with open_npz(path) as data:
            return {name: data[name] for name in data.files}
    except NPZ_ERRORS as error:
        raise ValueError(f'{path} is not {what}: {error}') from error


def _check_zip_member(member, file_size):
    """Refuses a member whose sizes in the zip directory cannot be true of a file of `file_size` bytes."""
    if not member.filename.endswith('.npy'):
        raise ValueError(f'member {member.filename!r} is not a numpy array (.npy); the file is damaged.')
    if member.compress_type == zipfile.ZIP_STORED:
        most = member.compress_size
    elif member.compress_type == zipfile.ZIP_DEFLATED:
        most = member.compress_size * DEFLATE_MAX_RATIO
    else:  # numpy's savez writes stored or deflated members only
        raise ValueError(f'member {member.filename!r} is compressed with zip method {member.compress_type}, '
                         'which numpy does not write; the file is damaged.')
    if member.compress_size > file_size or member.file_size > most:
        raise ValueError(f'member {member.filename!r} declares {member.file_size} bytes ({member.compress_size} '
                         f'stored) in a file of {file_size}; the file is damaged.')


def _check_npy_header(member, stream, kinds):
    """Reads the `.npy` header at the start of `stream` and refuses arrays the member cannot hold."""
    name = member.filename[:-len('.npy')]
    version = npy_format.read_magic(stream)
    if version == (1, 0):
        shape, _fortran_order, dtype = npy_format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, _fortran_order, dtype = npy_format.read_array_header_2_0(stream)
    else:  # 3.0 only serves structured dtypes with non-Latin-1 field names, refused anyway
        raise ValueError(f'array {name!r} has an .npy header of version {version[0]}.{version[1]}, which this code '
                         'does not read; the file is damaged or not written by this code.')
    if dtype.kind not in kinds or dtype.hasobject:
        raise ValueError(f'array {name!r} declares dtype {dtype}, not plain numbers or text (Python objects are '
                         'never loaded: allow_pickle=False); the file is damaged or not written by this code.')
    if any(length < 0 for length in shape):
        raise ValueError(f'array {name!r} declares shape {shape}; the file is damaged.')
    # Zero-width items take no bytes but still become elements (a list from tolist): count each as one byte.
    declared = math.prod(shape) * max(dtype.itemsize, 1)
    held = member.file_size - stream.tell()
    if declared > held:
        raise ValueError(f'array {name!r} declares {dtype} of shape {shape} ({declared:,} bytes) but holds '
                         f'{held:,} bytes; the file is damaged.')
