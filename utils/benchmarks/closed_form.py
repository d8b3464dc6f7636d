"""Receptive fields in closed form, from the layers' arithmetic: the reference the probing is checked against.

Along one axis, output `o` of a layer with kernel `k`, stride `s`, dilation `d` reads inputs
`o * s - pad_before + j * d` (`j < k`) that lie inside the input, where TensorFlow's SAME padding puts
`pad_before = max((out - 1) * s + (k - 1) * d + 1 - in, 0) // 2` and VALID none. Chaining layers is a boolean
matrix product, merging branches a union; a box is the hull of the input lines a feature pixel reads. A
layer is a dict of `layer_dependencies` arguments: `{'kernel': 5, 'stride': 2, 'dilation': 1, 'padding': 'SAME'}`.
"""

import numpy as np

# VGG16's size, stride and padding per layer (Keras names), as the google-research `receptive_field`
# library tabulates them (Araujo et al., Distill 2019).
VGG16_TABLE = {
    'block1_conv1': (3, 1, 1), 'block1_pool': (6, 2, 2), 'block2_conv1': (10, 2, 4), 'block2_pool': (16, 4, 6),
    'block3_conv1': (24, 4, 10), 'block3_conv2': (32, 4, 14), 'block3_pool': (44, 8, 18),
    'block4_conv1': (60, 8, 26), 'block4_conv2': (76, 8, 34), 'block4_pool': (100, 16, 42),
    'block5_conv1': (132, 16, 58), 'block5_conv2': (164, 16, 74), 'block5_pool': (212, 32, 90),
}


def layer_dependencies(in_length, kernel, stride=1, dilation=1, padding='SAME'):
    """bool `[out, in]`: which inputs each output of one layer reads, along one axis."""
    span = (kernel - 1) * dilation + 1
    if padding == 'SAME':
        out_length = -(-in_length // stride)
        pad_before = max((out_length - 1) * stride + span - in_length, 0) // 2
    else:
        out_length = -(-(in_length - span + 1) // stride)
        pad_before = 0
    reads = np.zeros((out_length, in_length), bool)
    for out in range(out_length):
        taps = out * stride - pad_before + dilation * np.arange(kernel)
        reads[out, taps[(taps >= 0) & (taps < in_length)]] = True
    return reads


def chain_dependencies(in_length, layers, reads=None):
    """bool `[out, in]` of a chain of layers (dicts of `layer_dependencies` arguments)."""
    reads = np.eye(in_length, dtype=bool) if reads is None else reads
    for layer in layers:
        step = layer_dependencies(reads.shape[0], **layer)
        reads = (step.astype(np.int64) @ reads.astype(np.int64)) > 0
    return reads


def boxes_from_dependencies(row_reads, column_reads):
    """int `[out_h, out_w, 4]` boxes `[y1, x1, y2, x2]`: hulls of the rows and columns read."""
    def hull(reads):
        return np.stack([reads.argmax(axis=1), reads.shape[1] - reads[:, ::-1].argmax(axis=1)], axis=1)
    rows, columns = hull(row_reads), hull(column_reads)
    boxes = np.zeros((len(rows), len(columns), 4), np.int64)
    boxes[..., 0], boxes[..., 2] = rows[:, None, 0], rows[:, None, 1]
    boxes[..., 1], boxes[..., 3] = columns[None, :, 0], columns[None, :, 1]
    return boxes


def chain_geometry(layers):
    """Size, stride and padding of a chain of layers (google-research `receptive_field` convention)."""
    size, stride, padding = 1, 1, 0
    for layer in layers:
        span = (layer['kernel'] - 1) * layer.get('dilation', 1) + 1
        size += (span - 1) * stride
        padding += layer['pad_before'] * stride
        stride *= layer.get('stride', 1)
    return size, stride, padding
