"""Ctrl-C while a script is still starting: `interrupted` and exit status 130, as later, not a traceback.

Importing TensorFlow takes seconds, before a script's `main` runs under `utils.running.cli.run_main` (which turns Ctrl-C
into that line). Every script imports this module before anything heavy; while it starts, Ctrl-C ends it at
once (nothing has been written yet), and `run_main` gives Ctrl-C back to Python (`restore`). Only a process
started as one of this repository's scripts is changed: importing the module elsewhere does nothing.
"""

import os
import signal
import sys

_REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _end_quietly(signum, frame):
    # To the stderr the script started with: while TensorFlow loads, descriptor 2 goes to a file (utils.base.quiet_tf).
    os.write(_stderr, b'interrupted\n')
    os._exit(130)  # nothing is written yet; unwinding an import half-way only prints a traceback


def restore():
    """Gives Ctrl-C back to Python (a `KeyboardInterrupt`) where this module took it."""
    if signal.getsignal(signal.SIGINT) is _end_quietly:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_main = os.path.abspath(getattr(sys.modules.get('__main__'), '__file__', None) or '')
if os.path.dirname(_main) in (_REPOSITORY, os.path.join(_REPOSITORY, 'utils'),
                              os.path.join(_REPOSITORY, 'utils', 'benchmarks')):
    _stderr = os.dup(2)
    signal.signal(signal.SIGINT, _end_quietly)
