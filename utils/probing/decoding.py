"""Decoding which feature pixels multiplexed probes changed into each pixel's extent along one axis."""

import numpy as np


def decode_layer(changed, period, blocks, length):
    """One layer's extents along one axis from multiplexed observations.

    Args:
        changed: bool `[probes, feat_h, feat_w]`: which feature pixels each probe changed, the `period` phase
            probes (every line `y % period == phase` lit) first, then the block probes of `blocks`.
        period: spacing of the lit lines.
        blocks: `('halves', num_blocks)` or `('bands', factors)`, see `planning.block_probes`.
        length: image size along the axis.

    Returns:
        `(start, stop)`, int arrays `[feat_h, feat_w]` (`(0, 0)` where nothing changed a pixel), or None when
        some pixel's observations do not fit a box shorter than `period`.
    """
    feature_shape = changed.shape[1:]
    # Decode each distinct pattern of observations once: feature pixels share very few of them.
    unique_patterns, pattern_of_pixel = unique_rows(changed.reshape(len(changed), -1).T)
    decoded = np.zeros((len(unique_patterns), 2), np.int64)
    for index, pattern in enumerate(unique_patterns):
        extent = _decode_pattern(pattern[:period], pattern[period:], period, blocks, length)
        if extent is None:
            return None
        decoded[index] = extent
    extents = decoded[pattern_of_pixel.reshape(-1)].reshape(tuple(feature_shape) + (2,))
    return extents[..., 0], extents[..., 1]


def _decode_pattern(phase_changed, block_changed, period, blocks, length):
    """Decodes one feature pixel's extent `(start, stop)` from multiplexed observations.

    Args:
        phase_changed: bool `[period]`, whether lighting every line `y % period == phase` changed the pixel.
        block_changed: bool, what the block probes of `blocks` (`planning.block_probes`) changed.
        period: spacing of the lit lines.
        blocks: `('halves', num_blocks)` or `('bands', factors)`, see `planning.block_probes`.
        length: image size along the axis.

    Returns:
        `(start, stop)`, `(0, 0)` for a pixel that nothing changes, or None when the observations do not fit
        a box shorter than `period` (the estimate was too small, or a probe was masked).
    """
    if not phase_changed.any():
        return (0, 0) if not block_changed.any() else None
    if phase_changed.all():
        return None
    # The box starts right after the longest run of unchanged phases (cyclically); that run must be unique.
    changed_phases = np.flatnonzero(phase_changed)
    gaps = np.diff(np.append(changed_phases, changed_phases[0] + period)) - 1
    longest = gaps.max()
    if (gaps == longest).sum() != 1:
        return None
    start_phase = int(changed_phases[(np.argmax(gaps) + 1) % len(changed_phases)])
    box_length = period - int(longest)
    kind, layout = blocks
    if kind == 'halves':
        start = _decode_halves(block_changed, start_phase, period, layout)
    else:
        start = _decode_bands(block_changed, start_phase, box_length, period, layout)
    if start is None or start + box_length > length or (
            kind == 'halves' and (start + box_length - 1) // period != int(block_changed[layout - 1:].sum())):
        return None
    return start, start + box_length


def _decode_halves(block_changed, start_phase, period, num_blocks):
    """The start from prefix probes (lines `[0, j * period)` lit, `j = 1 ..`: True exactly for
    `j > start // period`) and suffix probes (`[j * period, length)`: True exactly for `j <= (stop - 1) //
    period`), the first `num_blocks - 1` and the last of `block_changed`; None if they are no steps."""
    prefix_changed, suffix_changed = block_changed[:num_blocks - 1], block_changed[num_blocks - 1:]
    if not _is_step(prefix_changed, rising=True) or not _is_step(suffix_changed, rising=False):
        return None
    return int((~prefix_changed).sum()) * period + start_phase


def _decode_bands(block_changed, start, box_length, period, factors):
    """The start from band probes, level by level: with the start known modulo `width` (at first the period),
    probe `k` of a level with factor `m` lights the lines `y` with `(y % (m * width)) // width == k`. A box
    shorter than `width` touches its start's band, and the next one (cyclically) exactly when it crosses a
    band border, which gives the start modulo `m * width`. None if the touched bands do not fit that."""
    width, offset = period, 0
    for factor in factors:
        touched = np.flatnonzero(block_changed[offset:offset + factor])
        offset += factor
        crosses = start % width + box_length > width
        if len(touched) != 1 + crosses:
            return None
        band = int(touched[0])
        if crosses:
            if touched[1] != band + 1:
                if not (band == 0 and touched[1] == factor - 1):
                    return None
                band = factor - 1  # the box crosses from the last band into the first
        start += band * width
        width *= factor
    return int(start)


def unique_rows(flags):
    """Distinct rows of a bool matrix, and for each row the index of its distinct row.

    Rows are packed into 64-bit words and sorted as integers: much faster than `np.unique(axis=0)`.

    Args:
        flags: bool `[n, m]`.

    Returns:
        `(unique, inverse)`: the distinct rows `[k, m]` (in no promised order), and int `[n]` with
        `unique[inverse] == flags`.
    """
    packed = np.packbits(flags, axis=1)
    packed = np.pad(packed, ((0, 0), (0, -packed.shape[1] % 8)))
    words = np.ascontiguousarray(packed).view(np.uint64)
    order = np.lexsort(words.T[::-1])
    sorted_words = words[order]
    starts = np.concatenate([[True], (sorted_words[1:] != sorted_words[:-1]).any(axis=1)])
    inverse = np.empty(len(flags), np.int64)
    inverse[order] = np.cumsum(starts) - 1
    return flags[order[starts]], inverse


def _is_step(flags, rising):
    """True when `flags` is all False then all True (rising) or all True then all False (falling)."""
    values = flags.astype(np.int8)
    steps = np.diff(values)
    return bool((steps >= 0).all() if rising else (steps <= 0).all())
