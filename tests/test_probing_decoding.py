"""Decoding multiplexed probes into extents (`utils.probing.decoding`)."""

import numpy as np
import pytest

from probing_fixtures import boxes_of
from utils.probing.decoding import decode_layer, unique_rows
from utils.probing.planning import block_probes


@pytest.mark.parametrize('width', [1, 7, 64, 65, 130])
def test_unique_rows_agrees_with_numpy(width, rng):
    flags = rng.random((500, width)) < 0.5
    flags[250:] = flags[:250]  # plenty of repeated rows
    unique, inverse = unique_rows(flags)
    expected = np.unique(flags, axis=0)
    assert len(unique) == len(expected)
    assert {row.tobytes() for row in unique} == {row.tobytes() for row in expected}
    np.testing.assert_array_equal(unique[inverse], flags)


@pytest.mark.parametrize('length, num_lines, size, stride, padding, period', [
    (512, 256, 15, 2, 6, 19),   # CIFAR-10 conv2 at 512: bands (19 x 27 >= 512)
    (512, 512, 5, 1, 2, 7),     # bands over 74 blocks
    (128, 64, 16, 2, 7, 19),    # prefix and suffix or bands, whichever is fewer
    (60, 30, 9, 2, 3, 25),      # 3 blocks
])
def test_multiplexed_probes_decode_every_box(length, num_lines, size, stride, padding, period):
    starts, stops = boxes_of(length, num_lines, size, stride, padding, other=2)
    blocks, lit_blocks = block_probes(length, period)
    lines = np.arange(length)
    probes = [lines[lines % period == phase] for phase in range(period)] + lit_blocks
    lit_before = np.stack([np.concatenate([[0], np.cumsum(np.isin(lines, lit))]) for lit in probes])
    changed = lit_before[:, stops] - lit_before[:, starts] > 0  # [probes, feat_h, feat_w]
    found_starts, found_stops = decode_layer(changed, period, blocks, length)
    np.testing.assert_array_equal(found_starts, starts)
    np.testing.assert_array_equal(found_stops, stops)
    if length // period > 3:
        assert blocks[0] == 'bands' and len(lit_blocks) < 2 * (length // period)
    # A box longer than the period does not decode: the caller then probes line by line.
    assert decode_layer(lit_before[:, np.minimum(stops + period, length)] - lit_before[:, starts] > 0, period,
                         blocks, length) is None


def test_a_hand_made_pattern_of_band_probes_decodes():
    # 12 lines, period 4, bands of 4 lines (`block_probes(12, 4)`); probes: phases 0-3, then bands 0-2.
    blocks = ('bands', [3])
    changed = np.zeros((7, 1, 3), bool)
    changed[[1, 2, 5], 0, 0] = True  # box [5, 7): phases 1 and 2, band 1 (probe 5)
    changed[[3, 0, 4, 5], 0, 1] = True  # box [3, 5): phases 3 and 0, bands 0 and 1 (it crosses their border)
    starts, stops = decode_layer(changed, 4, blocks, 12)  # the third pixel: nothing changes it
    assert starts.tolist() == [[5, 3, 0]] and stops.tolist() == [[7, 5, 0]]
    changed[:4, 0, 2] = True  # every phase: a box as long as the period does not decode
    assert decode_layer(changed, 4, blocks, 12) is None


def test_a_hand_made_pattern_of_prefix_and_suffix_probes_decodes():
    # 40 lines, period 25: one prefix probe [0, 25) and one suffix probe [25, 40) (`block_probes(40, 25)`).
    changed = np.zeros((27, 1, 2), bool)
    changed[list(range(20, 25)) + list(range(5)), 0, 0] = True  # box [20, 30): phases 20-24 and 0-4 ...
    changed[[25, 26], 0, 0] = True  # ... both blocks
    changed[[3, 4, 5, 26], 0, 1] = True  # box [28, 31): the suffix only
    starts, stops = decode_layer(changed, 25, ('halves', 2), 40)
    assert starts.tolist() == [[20, 28]] and stops.tolist() == [[30, 31]]
    changed[25, 0, 1] = True  # the prefix [0, 25) too: no box of 3 lines starting at phase 3 fits both
    assert decode_layer(changed, 25, ('halves', 2), 40) is None
