"""utils.base.progress: bars redrawn live on a terminal, a line now and then when stderr is a file."""

import os
import pty
import re
import subprocess
import sys

import progressbar

from conftest import REPO
from utils.base import progress

# 200 updates over about 0.4 s, in a process whose stderr is a file, as in a batch job's log.
BAR_IN_A_LOG = '''
import time
from utils.base import progress
progress.LOG_INTERVAL_S = 0.2
with progress.progress_bar('items ', 200) as bar:
    for item in range(200):
        time.sleep(0.002)
        bar.update(item + 1)
'''


def test_a_bar_in_a_log_file_prints_a_few_lines_not_one_per_update(tmp_path):
    log = tmp_path / 'stderr.txt'
    with open(log, 'w') as stream:
        subprocess.run([sys.executable, '-c', BAR_IN_A_LOG], cwd=REPO, stderr=stream, check=True, timeout=60)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert 2 <= len(lines) <= 10, lines  # the first, about one every 0.2 s, the last
    assert '100% (200 of 200)' in lines[-1]


def test_a_bar_without_a_count_counts_up(monkeypatch):
    monkeypatch.setattr(progress, 'enabled', True)
    assert progress.progress_bar('probe images ').max_value is progressbar.UnknownLength


# A bar on a terminal, with a log record and a print to stderr while it is live, and a record after it.
LOGS_DURING_A_BAR = '''
import logging, sys
from utils.base import progress
from utils.running import cli
cli.setup_logging('WARNING')
logger = logging.getLogger('scan')
with progress.progress_bar('items ', 3) as bar:
    bar.update(1)
    logger.warning('a log line')
    bar.update(2)
    print('a print to stderr', file=sys.stderr)
    bar.update(3)
logger.warning('after the bar')
'''


def run_on_a_terminal(code):
    """Runs Python `code` with stdout and stderr on a pseudo-terminal; returns all it wrote, as text."""
    master, slave = pty.openpty()
    with subprocess.Popen([sys.executable, '-c', code], cwd=REPO, stdin=subprocess.DEVNULL, stdout=slave,
                          stderr=slave) as process:
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=60) == 0, b''.join(chunks)
    os.close(master)
    return b''.join(chunks).decode()


def test_log_lines_print_above_a_live_bar_not_inside_it():
    written = run_on_a_terminal(LOGS_DURING_A_BAR)
    # What the terminal shows line by line: each carriage return or newline starts the line again.
    pieces = [piece.rstrip() for piece in re.split(r'[\r\n]', written) if piece.strip()]
    assert 'WARNING scan: a log line' in pieces and 'a print to stderr' in pieces, written
    assert [piece for piece in pieces if 'a log line' in piece or 'a print' in piece] == [
        'WARNING scan: a log line', 'a print to stderr'], written  # none glued to the bar's text
    assert pieces.index('WARNING scan: a log line') < max(index for index, piece in enumerate(pieces)
                                                          if '100% (3 of 3)' in re.sub(r'\x1b\[[\d;]*m', '', piece))
    assert pieces[-1] == 'WARNING scan: after the bar', written  # logging's stream is given back
