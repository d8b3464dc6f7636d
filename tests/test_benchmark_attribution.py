"""Tests of utils/benchmarks/benchmark_attribution.py: a run on tiny tiles, and the calls it counts."""

import re

import numpy as np
import pytest

from conftest import run_script
from recfield import ReceptiveField
from utils.benchmarks import benchmark_attribution
from utils.probing import attribution


class Tracker:
    """What `calls_per_entry` reads of a tracker: each channel's feature-map coordinates (`TopActivations.channel`)."""

    def __init__(self, coords):
        self.coords = np.asarray(coords)

    def channel(self, channel):
        return None, self.coords[channel], None, None


def test_calls_per_entry_are_the_methods_inputs_per_kept_entry():
    boxes = np.zeros((2, 2, 4), np.int64)
    boxes[0, 0], boxes[1, 1] = [0, 0, 8, 8], [0, 0, 4, 2]
    field = ReceptiveField.from_arrays(boxes, (8, 8))
    layers = [('layer', field, Tracker([[[0, 0], [1, 1]]]), [0])]
    reference = np.zeros((8, 8, 3), np.float32)
    # An 8x8 box: windows of 2 (a quarter of 8) a pixel apart (half the window), 7 x 7 of them, and the image itself;
    # a 4x2 box: windows of 1, 4 x 2 of them, and the image.
    occlusion = attribution.method_for('occlusion', reference)
    assert benchmark_attribution.calls_per_entry(occlusion, layers) == ((1 + 7 * 7) + (1 + 4 * 2)) / 2
    assert benchmark_attribution.calls_per_entry(attribution.method_for('gradients', reference), layers) == 1
    steps = attribution.method_for('integrated_gradients', reference, ig_steps=5)
    assert benchmark_attribution.calls_per_entry(steps, layers) == 5


@pytest.mark.slow
def test_script_prints_every_method_and_every_layers_effective_field():
    result = run_script('utils/benchmarks/benchmark_attribution.py', '--image_size', '32', '--max_images', '16',
                        '--num_channels', '1', '--erf_images', '2', '--occlusion_images', '2', '--quiet')
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line.split()}
    assert rows['gradients'][0] == '1.0' and rows['integrated_gradients'][0] == '32.0'
    assert float(rows['occlusion'][0]) > 1
    layers = [line for line in result.stdout.splitlines() if line.startswith('vgg_16/')]
    assert len(layers) == 5 and all(re.search(r'50 % of its weight in \d+x\d+, 90 % in', line) for line in layers)
    # conv1_2's 5x5 field: 2 gradients; by occlusion 2 images, each run whole and with each of its 25 pixels occluded.
    figures = layers[0].split()
    assert figures[1] == '2' and figures[3] == str(2 * 26)
