"""utils.progress: bars redrawn live on a terminal, a line now and then when stderr is a file."""

import subprocess
import sys

import progressbar

from conftest import REPO
from utils import progress

# 200 updates over about 0.4 s, in a process whose stderr is a file, as in a batch job's log.
BAR_IN_A_LOG = '''
import time
from utils import progress
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
