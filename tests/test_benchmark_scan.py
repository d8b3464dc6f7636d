"""Tests of utils/benchmarks/benchmark_scan.py: a run on tiny sizes, and its check of equal work."""

import re

import numpy as np
import pytest

from conftest import run_script
from activations import Activations, TopActivations
from utils.benchmarks import benchmark_scan


def table_rows(table):
    """The `(ms/batch, x (a), besides session.run ms, CPU ms/batch, x (a))` numbers of modes a, b, d and c in a
    printed table."""
    rows = [line for line in table.splitlines() if line.startswith(('(a)', '(b)', '(c)', '(d)'))]
    assert [row[:3] for row in rows] == ['(a)', '(b)', '(d)', '(c)']
    return [tuple(map(float, row.split()[-5:])) for row in rows]


# In this process and not under capsys: a progress bar (track_top_activations draws one) drawn under capsys
# breaks the later ones of the process (progressbar2 keeps the stream of its first bar).
def test_benchmark_times_the_four_modes_and_checks_their_images():
    table = benchmark_scan.benchmark(num_batches=2, batch_size=8, num_samples=3)
    assert 'conv1/conv1:0 (64 ch) + conv2/conv2:0 (64 ch), 2 batches of 8 random 24x24x3 images' in table
    assert '(c) forward + 128 per-channel Activations' in table
    ms_per_batch, ratio, besides_forward, cpu_ms_per_batch, cpu_ratio = zip(*table_rows(table))
    assert min(ms_per_batch) > 0 and ratio[0] == 1.0 and min(cpu_ms_per_batch) > 0 and cpu_ratio[0] == 1.0
    # The per-channel loop does the same work as TopActivations, in 128 small steps instead of one.
    assert besides_forward[3] > besides_forward[1] > besides_forward[0]
    assert re.search(r'^scan bookkeeping ratio \(b-a\)/a = [+-]\d+\.\d %', table, re.MULTILINE)
    assert 'check: (b), (d) and (c) kept identical firings, coords and images for every channel: OK' in table


@pytest.mark.slow
def test_script_prints_the_table():
    result = run_script('utils/benchmarks/benchmark_scan.py', '--num_batches', '1', '--batch_size', '4')
    assert result.returncode == 0, result.stderr
    assert len(table_rows(result.stdout)) == 4 and '1 batches of 4 random' in result.stdout


def test_help_says_what_it_measures(capsys):
    with pytest.raises(SystemExit, match='^0$'):
        benchmark_scan.parse_args(['--help'])
    assert 'strongest images' in capsys.readouterr().out


def make_batches(rng, num_batches=2, batch_size=3):
    """`(inputs, uint8 images)` batches of random 4x4 images, as `benchmark_scan.random_batches` gives them."""
    images = rng.integers(0, 256, (num_batches, batch_size, 4, 4, 3), dtype=np.uint8)
    return [(batch.astype(np.float32), batch) for batch in images]


def test_check_equal_work_catches_a_channel_that_kept_other_images(rng):
    batches = make_batches(rng)
    trackers, per_channel = [], []
    for _ in ('conv1', 'conv2'):
        tracker, activations = TopActivations(2), [Activations(2) for _ in range(2)]
        for _, images in batches:
            features = rng.normal(size=(len(images), 3, 3, 2))
            tracker.update(images, features)
            for channel, channel_activations in enumerate(activations):
                channel_activations.update(images, features[..., channel])
        trackers.append(tracker)
        per_channel.append(activations)
    benchmark_scan.check_equal_work(trackers, per_channel, batches, ['conv1', 'conv2'])
    per_channel[1][1].update(batches[0][1], 10 + rng.normal(size=(3, 3, 3)))  # now keeps stronger firings
    with pytest.raises(benchmark_scan.CheckFailed, match=r'\(b\) and \(c\) differ on conv2 channel 1: firings'):
        benchmark_scan.check_equal_work(trackers, per_channel, batches, ['conv1', 'conv2'])


def test_per_channel_trackers_keeping_more_images_fail_the_check(monkeypatch):
    monkeypatch.setattr(benchmark_scan, 'Activations', lambda num_samples: Activations(num_samples + 1))
    with pytest.raises(benchmark_scan.CheckFailed, match=r'\(b\) and \(c\) differ on conv1/conv1:0 channel 0: firings'):
        benchmark_scan.benchmark(num_batches=1, batch_size=4, num_samples=2)
    # A ValueError: the command line ends with its message (utils.running.cli.run_main).
    assert issubclass(benchmark_scan.CheckFailed, ValueError)
