"""Smoke tests of utils/benchmark.py on tiny sizes (seconds, not minutes)."""

import numpy as np
import pytest

from activations import Activations, TopActivations
from utils import benchmark


def test_main_prints_both_tables(capsys):
    status = benchmark.main(['--num_batches', '2', '--batch_size', '8', '--rf_size', '40',
                             '--rf_batch_size', '4', '--rf_channels', '4'])
    out = capsys.readouterr().out
    assert status == 0
    assert '(a) forward only' in out and '(c) forward + Activations, 128 per-channel' in out
    assert 'check: (b) and (c) kept identical' in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split() and line.split()[0] in ('conv2', 'pool2', 'conv3')}
    assert [rows[name][2] for name in ('conv2', 'pool2', 'conv3')] == ['15,15', '19,19', '35,35']
    assert all(row[-2:] == ['yes', 'yes'] for row in rows.values())


def test_analytic_extents_match_hand_computed_pool2():
    # conv1 5x5, pool1 3/2, conv2 5x5, pool2 3/2 (SAME) on 64 lines: box of line m is [4m - 6, 4m + 13).
    start, stop = benchmark.analytic_extents(benchmark.RF_LAYER_OPS['pool2'], 64)
    m = np.arange(16)
    np.testing.assert_array_equal(start, np.clip(4 * m - 6, 0, 64))
    np.testing.assert_array_equal(stop, np.clip(4 * m + 13, 0, 64))


def test_check_equal_work_catches_a_difference(rng):
    images = rng.integers(0, 256, (6, 4, 4, 3), dtype=np.uint8)
    index = {image.tobytes(): i for i, image in enumerate(images)}
    top, per_channel = {}, {}
    for layer in benchmark.TOP_LAYERS:
        features = rng.normal(size=(6, 3, 3, 2))
        top[layer] = TopActivations(2).update(images, features)
        per_channel[layer] = [Activations(2) for _ in range(2)]
        for channel, act in enumerate(per_channel[layer]):
            act.update(images, features[..., channel])
    benchmark.check_equal_work(top, per_channel, index)
    per_channel['conv2'][1].update(images, 10 + rng.normal(size=(6, 3, 3)))  # now keeps other firings
    with pytest.raises(benchmark.CheckFailed, match='conv2 channel 1'):
        benchmark.check_equal_work(top, per_channel, index)


def test_shards_part_times_the_three_ways_and_checks_their_pictures(capsys):
    status = benchmark.main(['--part', 'shards', '--shards_max_images', '8', '--shards_image_size', '64',
                             '--shards_layers', 'vgg_16/conv1/conv1_2/Relu:0'])
    out = capsys.readouterr().out
    assert status == 0
    assert 'on 8 tiles of 64x64' in out and 'os.cpu_count() = ' in out
    rows = [line for line in out.splitlines() if line.startswith(tuple(benchmark.SHARD_MODES.values()))]
    assert len(rows) == 3 and rows[0].split()[-1] == '1.00'
    assert 'byte-identical pictures (2 files): OK' in out
