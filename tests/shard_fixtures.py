"""The VGG16 example scanned whole and in shards, once for the shard tests (`test_shards`, `test_dask_shards`).

Small settings: 12 tiles of 64 pixels in batches of 4, two layers, 3 images per channel, 4 channels drawn.
The runs are subprocesses started together: a single run that draws the pictures, the two shards of a
2-shard scan, the single shard of a 1-shard scan (the state of a single run), and shard 1 of 2 with another
--num_samples (a state that must not merge with the others).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from utils import vgg16

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = [vgg16.relu_tensor_name(1, 2), vgg16.relu_tensor_name(3, 3)]
FLAGS = ['--max_images', '12', '--image_size', '64', '--layers', ','.join(LAYERS), '--num_samples', '3',
         '--num_channels', '4', '--batch_size', '4']
RUNS = {
    'single': [],
    'shard-0-of-2': ['--num_shards', '2', '--shard_index', '0'],
    'shard-1-of-2': ['--num_shards', '2', '--shard_index', '1'],
    'shard-0-of-1': ['--num_shards', '1', '--shard_index', '0'],
    'other_num_samples': ['--num_shards', '2', '--shard_index', '1', '--num_samples', '2'],
}


def run_script(script, *args, timeout=300):
    """Runs a script of the repository; returns the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, script, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope='session')
def vgg16_scans(tmp_path_factory):
    """`{run: (out_dir, CompletedProcess)}` for the runs of `RUNS`, all finished successfully."""
    root = tmp_path_factory.mktemp('vgg16_scans')
    processes = {}
    for name, flags in RUNS.items():
        out_dir = root / name
        processes[name] = out_dir, subprocess.Popen(
            [sys.executable, 'vgg16_activations.py', *FLAGS, *flags, '--out_dir', str(out_dir)], cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = {}
    for name, (out_dir, process) in processes.items():
        stdout, stderr = process.communicate(timeout=300)
        results[name] = out_dir, subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        assert process.returncode == 0, f'{name}: {stderr}'
    return results


def shard_state_paths(scans, *runs):
    """The state files written by the given runs of `vgg16_scans`, run by run, each run's sorted by layer."""
    return [str(scans[run][0] / name) for run in runs for name in sorted(os.listdir(scans[run][0]))
            if name.startswith('state-')]


def assert_same_state(state, expected):
    """Two `ShardState`s hold the same scan: layer, tracker, kept images and their names, receptive field, run
    (but for the number of shards)."""
    assert state.layer == expected.layer
    for name in ('firings', 'coords', 'indices', 'kept_image_indices', 'num_seen', 'next_index', 'num_samples'):
        np.testing.assert_array_equal(getattr(state.tracker, name), getattr(expected.tracker, name), err_msg=name)
    for channel in range(expected.tracker.num_channels):
        for image, expected_image in zip(state.tracker.channel(channel)[3], expected.tracker.channel(channel)[3]):
            np.testing.assert_array_equal(image, expected_image)
    assert state.image_ids == expected.image_ids
    assert state.field == expected.field and state.num_channels == expected.num_channels
    assert {**state.run, 'num_shards': 0} == {**expected.run, 'num_shards': 0}
