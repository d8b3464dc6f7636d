"""Geometry of measured boxes: size, stride and padding per axis, the hull of single-line probes, and the
layout check that tells a channels-first map.

Boxes are `[feat_h, feat_w, 4]` int arrays of `[y1, x1, y2, x2]`, end-exclusive, in image coordinates.
"""

import numpy as np

ROWS, COLUMNS = 0, 1


def transposed(boxes):
    """Whether boxes move with the feature column along the image's rows while staying put from feature row to
    feature row: what a channels-first map `[batch, channels, height, width]` read as `[batch, height, width,
    channels]` gives (its "rows" are channels, its "columns" the real rows).

    Args:
        boxes: int `[feat_h, feat_w, 4]` of `[y1, x1, y2, x2]`.

    Returns:
        bool.
    """
    rows = boxes[..., [0, 2]]  # the image rows each box spans
    return (boxes.shape[0] > 1 and boxes.shape[1] > 1 and (rows == rows[:1]).all()
            and len(np.unique(rows[0], axis=0)) > 1)


def hull(changed):
    """The extent of the lines whose single-line probe changed each pixel.

    Args:
        changed: bool `[lines, feat_h, feat_w]`, one probe per line along the axis.

    Returns:
        `(start, stop)`, int arrays `[feat_h, feat_w]`; `(0, 0)` where no probe changed the pixel.
    """
    any_change = changed.any(axis=0)
    start = np.where(any_change, changed.argmax(axis=0), 0)
    stop = np.where(any_change, len(changed) - changed[::-1].argmax(axis=0), 0)
    return start, stop


def geometry(recfield):
    """Size, stride and padding `(y, x)` from the box edges that nothing clips.

    Boxes are clipped by the image and also by the padding of inner layers (a VALID convolution of stride 2
    on an even size never reads the last row, so a later SAME layer's padding stands there): clipped starts
    all equal the smallest start, clipped stops the largest stop. So a start is exact where it is above the
    smallest, a stop where it is below the largest. The stride comes from two exact starts or two exact stops,
    the size from one exact start and one exact stop (of the same or different pixels), the padding from an
    exact start. Where the edge boxes follow no rule (dilated taps near the border skip lines, so those boxes
    are neither clipped nor regular), the geometry is that of the interior boxes (`_interior_geometry`).

    Args:
        recfield: int boxes `[feat_h, feat_w, 4]` of `[y1, x1, y2, x2]`.

    Returns:
        `(size, stride, padding)`, each a `(y, x)` tuple, or None where some axis cannot be derived.
    """
    per_axis = []
    for axis in (ROWS, COLUMNS):
        # Boxes along this axis, one per feature line, taken from the middle of the other axis.
        boxes = recfield if axis == ROWS else recfield.transpose(1, 0, 2)
        starts, stops = boxes[..., axis], boxes[..., axis + 2]
        if not ((starts == starts[:, :1]).all() and (stops == stops[:, :1]).all()):
            per_axis.append(None)  # boxes differ along the other axis: not one geometry
            continue
        per_axis.append(_axis_geometry(starts[:, 0], stops[:, 0]) or _interior_geometry(starts[:, 0], stops[:, 0]))
    if any(values is None for values in per_axis):
        return None, None, None
    return tuple(tuple(int(values[i]) for values in per_axis) for i in range(3))


def _axis_geometry(starts, stops):
    """`(size, stride, padding)` along one axis, or None (see `geometry`)."""
    index = np.arange(len(starts))
    exact_start = np.flatnonzero(starts > starts.min())
    exact_stop = np.flatnonzero(stops < stops.max())
    strides = set()
    for exact, edges in ((exact_start, starts), (exact_stop, stops)):
        if len(exact) >= 2:
            strides.update(np.unique(np.diff(edges[exact]) // np.diff(exact)).tolist())
            if np.any(np.diff(edges[exact]) % np.diff(exact)):
                return None
    if len(strides) != 1 or not len(exact_start) or not len(exact_stop):
        return None
    stride = strides.pop()
    padding = index[exact_start[0]] * stride - starts[exact_start[0]]
    size = stops[exact_stop[0]] + padding - index[exact_stop[0]] * stride
    # Every exact edge must fit the same size and padding.
    if np.any(index[exact_start] * stride - padding != starts[exact_start]) or np.any(
            index[exact_stop] * stride - padding + size != stops[exact_stop]):
        return None
    return size, stride, padding


def _interior_geometry(starts, stops):
    """`(size, stride, padding)` of the longest run of consecutive feature lines whose boxes follow one
    affine rule (both edges step by the same positive stride), or None when no run of 3 lines does, or two
    runs of that length follow different rules."""
    steps = np.diff(starts)
    regular = (steps > 0) & (steps == np.diff(stops))
    runs = []  # (number of lines, first line, stride)
    first = 0
    for line in range(1, len(steps) + 1):
        if line == len(steps) or not (regular[first] and regular[line] and steps[line] == steps[first]):
            if regular[first]:
                runs.append((line - first + 1, first, int(steps[first])))
            first = line
    if not runs:
        return None
    longest = max(length for length, _, _ in runs)
    rules = {(stride, int(stops[first] - starts[first]), first * stride - int(starts[first]))
             for length, first, stride in runs if length == longest}
    if longest < 3 or len(rules) != 1:
        return None
    stride, size, padding = rules.pop()
    return size, stride, padding
