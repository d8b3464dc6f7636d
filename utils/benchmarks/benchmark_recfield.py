"""What multiplexed probes save when measuring receptive fields: `ReceptiveField` row by row against multiplexed.

    python utils/benchmarks/benchmark_recfield.py   # 256x256 input, conv2, pool2, conv3: a few minutes on 2 CPU cores
    python utils/benchmarks/benchmark_recfield.py --help

The CIFAR-10 example's network (`utils.examples.cifar10.inference`, fresh weights, plus a 5x5 conv3 after pool2
built by the same code) is built on a large `[batch_size, size, size, 3]` input. For each layer asked for,
`ReceptiveField` runs once with `multiplex=False` (one probe per row and per column) and once with
`multiplex=True`; the table gives the geometry, the probe images and the wall time of each (one run each,
so times are noisy), and their ratios. Unless both ways give the same boxes, equal to the closed-form ones
(`utils.benchmarks.closed_form`), it ends with an `error:` line and exit status 2.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from recfield import ReceptiveField  # noqa: E402
from utils.base.quiet_tf import tf  # noqa: E402
from utils.benchmarks.closed_form import boxes_from_dependencies, chain_dependencies  # noqa: E402
from utils.core.model import Model  # noqa: E402
from utils.examples import cifar10  # noqa: E402
from utils.running import cli  # noqa: E402

tf1 = tf.compat.v1
logger = logging.getLogger('benchmark_recfield')

# The layers' tensors, and the SAME-padded layers up to each (the local response normalisations are 1x1).
CONV, POOL = dict(kernel=5), dict(kernel=3, stride=2)
LAYERS = {
    'conv2': ('conv2/conv2:0', [CONV, POOL, CONV]),
    'pool2': ('pool2:0', [CONV, POOL, CONV, POOL]),
    'conv3': ('conv3/conv3:0', [CONV, POOL, CONV, POOL, CONV]),
}


class CheckFailed(ValueError):
    """The two ways, or the closed form, disagree on the boxes.

    A ValueError, so that `cli.run_main` ends the script with a one-line error and exit status 2.
    """


def open_model(layer_names, batch_size, size):
    """The CIFAR-10 network on `[batch_size, size, size, 3]` inputs with a conv3 after pool2, as a `Model`.

    Only the convolutions get values: the fully connected layers, sized for this input, are never run.
    """
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)
        images_ph = tf1.placeholder(tf.float32, [batch_size, size, size, 3], name='images')
        cifar10.inference(images_ph)
        cifar10._conv_relu(graph.get_tensor_by_name('pool2:0'), 'conv3', bias=0.1)
        session = tf1.Session(graph=graph)
        session.run(tf1.variables_initializer(tf1.global_variables('conv')))
    layers = [graph.get_tensor_by_name(LAYERS[name][0]) for name in layer_names]

    def forward_func(batch, layers=layers):
        return session.run(layers, feed_dict={images_ph: batch})
    return Model(forward_func, layers, images_ph.shape.as_list(), cifar10.VALUE_RANGE,
                          close=session.close)


def closed_form_boxes(name, size):
    """The exact `[feat_h, feat_w, 4]` boxes of layer `name` on a `size` x `size` input."""
    reads = chain_dependencies(size, LAYERS[name][1])
    return boxes_from_dependencies(reads, reads)


def measure(model, index):
    """Times a forward batch and both ways of probing layer `index`.

    Returns:
        `(seconds of a forward batch, the median of 3, {multiplex: (ReceptiveField, seconds)})`.

    Raises:
        CheckFailed: the two ways give different boxes.
    """
    forward_func = model.forward_func_for([index])
    probe = np.zeros(model.imshape, np.float32)
    forward_func(probe)  # warm-up: the first run of this fetch
    forward_seconds = float(np.median([timed(forward_func, probe) for _ in range(3)]))
    fields = {}
    for multiplex in (False, True):
        start = time.perf_counter()
        field = ReceptiveField(model.imshape, forward_func, value_range=model.value_range, multiplex=multiplex)
        fields[multiplex] = (field, time.perf_counter() - start)
        logger.info('%s, multiplex=%s: %.1f s, %d probe images', model.layers[index].name, multiplex,
                    fields[multiplex][1], field.num_probe_images)
    check_boxes(model.layers[index].name, fields[True][0].recfield, fields[False][0].recfield, 'row by row')
    return forward_seconds, fields


def timed(function, *args):
    """The seconds that `function(*args)` takes."""
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def check_boxes(name, measured, expected, expected_by):
    """Raises CheckFailed, naming a few feature pixels, unless the boxes `measured` equal `expected`."""
    if measured.shape != expected.shape:
        raise CheckFailed(f'{name}: {measured.shape} multiplexed boxes against {expected.shape} {expected_by} ones')
    wrong = np.argwhere((measured != expected).any(axis=-1))
    if len(wrong):
        raise CheckFailed(f'{name}: the multiplexed boxes differ from the {expected_by} ones at {len(wrong)} feature '
                          'pixels, e.g. ' + '; '.join(f'{pixel.tolist()}: {measured[tuple(pixel)].tolist()} vs '
                                                      f'{expected[tuple(pixel)].tolist()}' for pixel in wrong[:3]))


def format_table(model, rows):
    """The result table from `(name, feature shape, forward seconds, {multiplex: (field, seconds)})` rows."""
    batch_size, height, width, channels = model.imshape

    def pair(values):
        return 'None' if values is None else f'{values[0]},{values[1]}'
    row_by_row_probes = sorted({str(fields[False][0].num_probe_images) for *_, fields in rows})
    lines = [
        f'ReceptiveField on {height}x{width}x{channels} input, batch {batch_size}, '
        f'{"/".join(str(layer.num_channels) for layer in model.layers)} channels; row by row (multiplex=False) '
        'against multiplexed (multiplex=True)',
        'Statistic: one run of each way (wall time of the constructor), the median of 3 for a forward batch. Row '
        f'by row runs {" or ".join(row_by_row_probes)} probe images per layer (every row and column, four times: '
        'two random-sign runs and two extreme references).',
        '',
        f'{"layer":<7}{"feature":>10}{"size":>8}{"stride":>8}{"padding":>9}{"fwd s/batch":>13}{"probes mux":>12}'
        f'{"fewer":>8}{"s row":>9}{"s mux":>8}{"faster":>8}',
    ]
    for name, feature, forward_seconds, fields in rows:
        (row_field, row_seconds), (mux_field, mux_seconds) = fields[False], fields[True]
        lines.append(
            f'{name:<7}{pair(feature):>10}{pair(mux_field.size):>8}{pair(mux_field.stride):>8}'
            f'{pair(mux_field.padding):>9}{forward_seconds:>13.3f}{mux_field.num_probe_images:>12}'
            f'{row_field.num_probe_images / mux_field.num_probe_images:>7.1f}x{row_seconds:>9.2f}{mux_seconds:>8.2f}'
            f'{row_seconds / mux_seconds:>7.1f}x')
    lines += ['',
              'size/stride/padding are (y, x) as measured (google-research receptive_field convention); probes '
              'exclude references; fewer and faster are row by row / multiplexed.',
              'check: both ways gave identical boxes, equal to the closed-form ones: OK']
    return '\n'.join(lines)


def benchmark(layer_names=tuple(LAYERS), size=256, batch_size=16):
    """Measures the layers both ways and checks them; returns the table as text."""
    rows = []
    with open_model(layer_names, batch_size, size) as model:
        for index, name in enumerate(layer_names):
            forward_seconds, fields = measure(model, index)
            check_boxes(name, fields[True][0].recfield, closed_form_boxes(name, size), 'closed-form')
            rows.append((name, fields[True][0].feature_shape, forward_seconds, fields))
    return format_table(model, rows)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--size', type=cli.positive_int, default=256, help='input height and width')
    parser.add_argument('--batch_size', type=cli.positive_int, default=16, help='probe images per forward batch')
    parser.add_argument('--layers', nargs='+', choices=tuple(LAYERS), default=list(LAYERS), help='layers to measure')
    parser.add_argument('--verbose', '-v', action='store_true', help='debug logging')
    return parser.parse_args(argv)


def main(argv=None):
    """Prints both ways' probes and times; raises CheckFailed when their boxes differ."""
    args = parse_args(argv)
    cli.setup_logging('DEBUG' if args.verbose else 'INFO')
    print(benchmark(args.layers, args.size, args.batch_size), flush=True)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
