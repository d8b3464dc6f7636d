"""utils.progress: bars redrawn live on a terminal, a line now and then when stderr is a file."""

import sys
import time

import progressbar

from utils import progress


def test_a_bar_in_a_log_file_prints_a_few_lines_not_one_per_update(tmp_path, monkeypatch):
    log = tmp_path / 'stderr.txt'
    with open(log, 'w') as stream:
        monkeypatch.setattr(sys, 'stderr', stream)
        monkeypatch.setattr(progress, 'LOG_INTERVAL_S', 0.2)
        with progress.progress_bar('items ', 200, fd=stream) as bar:
            for item in range(200):
                time.sleep(0.002)
                bar.update(item + 1)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert 2 <= len(lines) <= 10, lines  # about 0.4 s of updates: the first, one every 0.2 s, the last
    assert '100% (200 of 200)' in lines[-1]


def test_a_bar_without_a_count_counts_up():
    bar = progress.progress_bar('probe images ')
    assert bar.max_value is progressbar.UnknownLength
