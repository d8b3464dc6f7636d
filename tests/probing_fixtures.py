"""Helpers of the probing tests: boxes of a regular field along one axis."""

import numpy as np

from utils.probing.geometry import ROWS


def boxes_of(length, num_lines, size, stride, padding, other=3, axis=ROWS):
    """Clipped boxes along `axis` of a regular field, as `[feat_h, feat_w]` arrays (`other` lines across)."""
    first = np.arange(num_lines) * stride - padding
    starts, stops = np.clip(first, 0, length), np.clip(first + size, 0, length)
    tile = (1, other) if axis == ROWS else (other, 1)
    shape = (num_lines, 1) if axis == ROWS else (1, num_lines)
    return np.tile(starts.reshape(shape), tile), np.tile(stops.reshape(shape), tile)
