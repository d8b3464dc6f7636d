"""TensorFlow without its C++ start-up lines: modules write `from utils.base.quiet_tf import tf`, not
`import tensorflow`.

What TensorFlow 2.21 prints on a machine without a GPU, and when:

* `import tensorflow` (or `import keras`): absl's `WARNING: All log messages before absl::InitializeLog() is
  called are written to STDERR` and `I0000` lines of oneDNN and `Could not find cuda drivers`, twice (two
  libraries load), written before TensorFlow reads TF_CPP_MIN_LOG_LEVEL, so that variable cannot hide them;
* the first session: `E0000 ... failed call to cuInit`; the first run: an MLIR `I0000` line. Both obey
  TF_CPP_MIN_LOG_LEVEL=3, which `utils/__init__.py` sets unless it is set already.

Importing this module imports TensorFlow with file descriptor 2 sent to a temporary file, then writes to stderr
every line that is not such a log line: a Python warning or error of the import still shows. With
`--logging_level DEBUG` on the command line, or TF_CPP_MIN_LOG_LEVEL=0, nothing is hidden. Known limit: a
crash inside the import itself (not an exception) loses what it wrote.
"""

import contextlib
import os
import re
import sys
import tempfile

# A C++ log line (`E0000 00:00:1795623573.801148   29354 cuda_platform.cc:52] failed call to cuInit: ...`; fatal
# `F` lines are kept), absl's notice before its set-up, and the second line of the CPU-instructions notice.
LOG_LINE = re.compile(r'[IWE]\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: All log messages before absl::InitializeLog\(\) '
                      r'|To enable the following instructions: ')


def debug_requested(argv):
    """Whether the command line `argv` asks for `--logging_level DEBUG` (read before argparse runs, since
    TensorFlow is imported first)."""
    for flag, value in zip(argv, argv[1:] + ['']):
        if flag.startswith('--logging_level='):
            flag, value = flag.split('=', 1)
        if flag == '--logging_level' and value.upper() == 'DEBUG':
            return True
    return False


@contextlib.contextmanager
def log_lines_hidden(pattern=LOG_LINE):
    """Inside the block, file descriptor 2 goes to a temporary file; after it, the lines that do not match
    `pattern` are written to `sys.stderr`, even when the block raises."""
    sys.stderr.flush()
    saved_fd = os.dup(2)
    try:
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved_fd, 2)
                captured.seek(0)
                lines = captured.read().decode(errors='replace').splitlines(keepends=True)
                sys.stderr.write(''.join(line for line in lines if not pattern.match(line)))
                sys.stderr.flush()
    finally:
        os.close(saved_fd)


if debug_requested(sys.argv):
    os.environ['TF_CPP_MIN_LOG_LEVEL'] = '0'
with contextlib.nullcontext() if os.environ.get('TF_CPP_MIN_LOG_LEVEL') == '0' else log_lines_hidden():
    import tensorflow as tf  # noqa: E402,F401 (what this module gives)
