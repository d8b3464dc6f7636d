"""Writing output files atomically, so that an interrupted run never leaves a half-written file behind."""

import contextlib
import hashlib
import os
import tempfile


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
    handle, temporary = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix=os.path.splitext(path)[1])
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        with os.fdopen(handle, mode) as stream:
            yield stream
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


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
