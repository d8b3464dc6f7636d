"""How often the masking guard misses: receptive fields of random networks built to hide probes, against the
closed form.

    python utils/benchmarks/benchmark_masking.py          # 40 networks at 30x30: about 10 s on 2 CPU cores
    python utils/benchmarks/benchmark_masking.py --help

Each network (seeded, so every run builds the same ones) is a k x k convolution (k 3 or 5) to C channels (C 2 to
16) with a ReLU behind a bias of -0.5 to -3 (units dead at grey, woken only by a strong pattern), a max-pool
(2 or 3, stride 1), a 1x1 convolution to 4 channels and tanh(s x) with s 1, 10 or 100 (saturation): harder
than the masking network of the tests, which has 16 channels and a bias of -2. The closed form says which
input lines each feature pixel depends on; a probe changes it only if some reference wakes a unit on the way.
For each network `ReceptiveField` measures the boxes with `num_trials` 2 (the default: 4 runs per probe) and
4 (6 runs, two of them on random references), multiplexed, and line by line with the default. The table
counts the networks with some box other than the closed form's, and those feature pixels. Unless the
multiplexed and line-by-line boxes are the same for every network (what multiplexing promises), it ends with
an `error:` line and exit status 2.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import argparse  # noqa: E402
import logging  # noqa: E402

import numpy as np  # noqa: E402

from recfield import ReceptiveField  # noqa: E402
from utils.base.quiet_tf import tf  # noqa: E402
from utils.benchmarks.benchmark_recfield import check_boxes  # noqa: E402
from utils.benchmarks.closed_form import boxes_from_dependencies, chain_dependencies  # noqa: E402
from utils.running import cli  # noqa: E402

tf1 = tf.compat.v1
logger = logging.getLogger('benchmark_masking')

WAYS = {'default': dict(num_trials=2), 'num_trials=4': dict(num_trials=4)}


def network_parameters(number):
    """The random choices of network `number`: a dict of kernel, channels, bias, pool and saturation."""
    rng = np.random.default_rng(1000 + number)
    return dict(kernel=int(rng.choice([3, 5])), channels=int(rng.choice([2, 4, 6, 8, 16])),
                bias=float(rng.uniform(0.5, 3.0)), pool=int(rng.choice([2, 3])),
                saturation=float(rng.choice([1.0, 10.0, 100.0])))


def build_network(number, size, batch_size=4):
    """Network `number` on `[batch_size, size, size, 3]` inputs in -1..1: `(session, forward_func, closed-form
    boxes)`; close the session when done."""
    parameters = network_parameters(number)
    rng = np.random.default_rng(number)
    kernel, channels = parameters['kernel'], parameters['channels']
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [batch_size, size, size, 3])
        filters = rng.normal(0, 0.3, (kernel, kernel, 3, channels)).astype(np.float32)
        hidden = tf.nn.relu(tf.nn.conv2d(images, filters, 1, 'SAME') - parameters['bias'])
        pooled = tf.nn.max_pool2d(hidden, parameters['pool'], 1, 'SAME')
        mixing = rng.normal(0, 1.0, (1, 1, channels, 4)).astype(np.float32)
        output = tf.tanh(parameters['saturation'] * tf.nn.conv2d(pooled, mixing, 1, 'SAME'))
    session = tf1.Session(graph=graph)
    reads = chain_dependencies(size, [dict(kernel=kernel), dict(kernel=parameters['pool'])])
    return session, lambda batch: session.run([output], {images: batch}), boxes_from_dependencies(reads, reads)


def benchmark(num_networks=40, size=30):
    """Measures every network every way; returns the table as text.

    Raises:
        benchmark_recfield.CheckFailed: multiplexed and line-by-line boxes differ for some network.
    """
    wrong = {way: [0, 0] for way in list(WAYS) + ['line by line']}  # networks, feature pixels
    # Pixels that no probe changes are what this counts, not news: recfield's warnings about them are left out.
    recfield_logger = logging.getLogger('recfield')
    level = recfield_logger.level
    recfield_logger.setLevel(logging.ERROR)
    try:
        for number in range(num_networks):
            _measure_network(number, size, wrong)
    finally:
        recfield_logger.setLevel(level)
    total = num_networks * size * size
    lines = [f'{num_networks} random masking networks on {size}x{size} input (see --help); boxes against the '
             'closed form.', '',
             f'{"way":<46}{"networks wrong":>16}{"pixels wrong":>14}{"of":>8}']
    for way, (networks, pixels) in wrong.items():
        label = {'default': 'multiplexed, num_trials=2 (4 runs a probe)',
                 'num_trials=4': 'multiplexed, num_trials=4 (6 runs a probe)',
                 'line by line': 'line by line, num_trials=2'}[way]
        lines.append(f'{label:<46}{networks:>16}{pixels:>14}{total:>8}')
    lines += ['', 'check: multiplexed and line-by-line boxes are the same for every network: OK']
    return '\n'.join(lines)


def _measure_network(number, size, wrong):
    """Measures network `number` every way, checks multiplexed against line by line, and adds its networks and
    feature pixels with boxes other than the closed form's to `wrong` (`{way: [networks, pixels]}`)."""
    session, forward_func, expected = build_network(number, size)
    with session:
        imshape = [4, size, size, 3]
        fields = {way: ReceptiveField(imshape, forward_func, seed=number, **options) for way, options in WAYS.items()}
        fields['line by line'] = ReceptiveField(imshape, forward_func, seed=number, multiplex=False)
    check_boxes(f'network {number}', fields['default'].recfield, fields['line by line'].recfield, 'line-by-line')
    pixels = {way: int((field.recfield != expected).any(axis=-1).sum()) for way, field in fields.items()}
    for way, count in pixels.items():
        wrong[way][0] += count > 0
        wrong[way][1] += count
    logger.info('network %d %s: boxes other than the closed form at %s feature pixels', number,
                network_parameters(number), pixels)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--num_networks', type=cli.positive_int, default=40, help='how many random networks')
    parser.add_argument('--size', type=cli.positive_int, default=30, help='input height and width')
    parser.add_argument('--verbose', '-v', action='store_true', help='a line per network')
    return parser.parse_args(argv)


def main(argv=None):
    """Prints the table; raises CheckFailed when multiplexed and line-by-line boxes differ."""
    args = parse_args(argv)
    cli.setup_logging('INFO' if args.verbose else 'WARNING')
    print(benchmark(args.num_networks, args.size), flush=True)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
