"""What keeping each channel's strongest images costs during a scan, next to the forward pass itself.

    python utils/benchmarks/benchmark_scan.py            # 40 batches of 128 images, about half a minute on 2 CPU cores
    python utils/benchmarks/benchmark_scan.py --help

The CIFAR-10 example's network (`utils.examples.cifar10`, fresh weights; its conv1 and conv2 as a
`utils.core.model.Model` whose forward pass also computes the logits) runs on random 24x24 images, four ways per batch:
(a) the forward pass alone (`Model.run`, the maps fetched); (b) the pipeline's scan,
`pipeline.track_top_activations`: the maps and their per-channel maxima, computed in the graph
(`utils.models.tf_session.channel_maxima`), then one `TopActivations` per layer; (d) the same without maxima from the
graph: the maps, then `TopActivations.update` computes them (both keep every channel's statistics too,
`utils.base.channel_statistics`, from the same maxima); (c) the forward pass and the original tool's loop
of one `Activations` per channel. The order of the modes turns from batch to batch, so that slow phases of a shared
machine hit all of them; batch 0 warms up and is not counted. It prints the median wall time per batch, the time
spent besides `session.run`, the median CPU time per batch (of all the process's threads: steadier than the wall
time when other programs share the cores), and the scan's bookkeeping ratio (b-a)/a in both. Unless (b), (c)
and (d) keep the same images for every channel, it ends with an `error:` line and exit status 2.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from activations import Activations, TopActivations  # noqa: E402
from utils.base.quiet_tf import tf  # noqa: E402
from utils.core import pipeline  # noqa: E402
from utils.core.model import Model  # noqa: E402
from utils.examples import cifar10  # noqa: E402
from utils.examples.cifar10_input import CROP_SIZE  # noqa: E402
from utils.models.tf_session import session_forward_funcs  # noqa: E402
from utils.running import cli  # noqa: E402

logger = logging.getLogger('benchmark_scan')

MODES = ('a', 'b', 'd', 'c')
LOGITS = 'softmax_linear/softmax_linear:0'


class CheckFailed(ValueError):
    """The modes did not do the same work, so their times do not compare.

    A ValueError, so that `cli.run_main` ends the script with a one-line error and exit status 2.
    """


def open_model(batch_size, forward_seconds):
    """The CIFAR-10 network with fresh weights as a `Model` of conv1 and conv2, with its
    `maxima_forward_func`.

    Both forward functions also run the logits (the whole network runs) and append their durations to the list
    `forward_seconds`.
    """
    session, images_ph = cifar10.build_session(batch_size)
    graph = session.graph
    layers = [graph.get_tensor_by_name(name) for name in cifar10.DEFAULT_LAYERS]
    with graph.as_default():
        session.run(tf.compat.v1.global_variables_initializer())
    forward_func, maxima_forward_func = session_forward_funcs(session, images_ph, layers,
                                                              run_also=[graph.get_tensor_by_name(LOGITS)])

    def timed(function):
        def run(*args):
            start = time.perf_counter()
            result = function(*args)
            forward_seconds.append(time.perf_counter() - start)
            return result
        return run
    return Model(timed(forward_func), layers, images_ph.shape.as_list(), cifar10.VALUE_RANGE,
                          close=session.close, maxima_forward_func=timed(maxima_forward_func))


def random_batches(num_batches, batch_size, seed):
    """`(network inputs, uint8 images)` batches of random 24x24 images, standardised per image like CIFAR-10's."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num_batches, batch_size, CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)
    pixels = images.astype(np.float32)
    mean, std = pixels.mean(axis=(2, 3, 4), keepdims=True), pixels.std(axis=(2, 3, 4), keepdims=True)
    return list(zip((pixels - mean) / std, images))


def time_modes(model, batches, num_samples, forward_seconds):
    """Runs every batch through modes a, b, d and c, in turns.

    Returns:
        `(trackers, per_channel, totals, besides, cpu)`: (b)'s and (d)'s `TopActivations` per layer (a dict by
        mode), (c)'s lists of `Activations` per layer, and per mode the seconds of each batch: wall, wall besides
        `session.run`, and CPU.
    """
    per_channel = [[Activations(num_samples) for _ in range(layer.num_channels)] for layer in model.layers]
    full_maps = [TopActivations(num_samples) for _ in model.layers]
    totals = {mode: [] for mode in MODES}
    besides = {mode: [] for mode in MODES}
    cpu = {mode: [] for mode in MODES}

    def record(mode, start, cpu_start):
        totals[mode].append(time.perf_counter() - start)
        cpu[mode].append(time.process_time() - cpu_start)
        besides[mode].append(totals[mode][-1] - sum(forward_seconds))
        forward_seconds.clear()

    def run_per_channel(inputs, images):
        for feature_map, activations in zip(model.run(inputs), per_channel):
            for channel, channel_activations in enumerate(activations):
                channel_activations.update(images, feature_map[..., channel])

    def feed_scan():
        # Mode b is the pipeline's own loop, pulling batches from here: from handing it a batch to its next
        # request, it works on that batch; modes a and c run on the same batch before or after.
        for number, (inputs, images) in enumerate(batches):
            for mode in MODES[number % len(MODES):] + MODES[:number % len(MODES)]:
                forward_seconds.clear()
                start, cpu_start = time.perf_counter(), time.process_time()
                if mode == 'a':
                    model.run(inputs)
                elif mode == 'b':
                    yield inputs, images
                elif mode == 'd':
                    for tracker, feature_map in zip(full_maps, model.run(inputs)):
                        tracker.update(images, feature_map)
                else:
                    run_per_channel(inputs, images)
                record(mode, start, cpu_start)

    trackers = pipeline.track_top_activations(model, feed_scan(), num_samples, num_batches=len(batches))
    return {'b': trackers, 'd': full_maps}, per_channel, totals, besides, cpu


def check_equal_work(trackers, per_channel, batches, layer_names, mode='b'):
    """Raises CheckFailed unless each `Activations` holds exactly its channel of the `TopActivations` of `mode`.

    Firings and coordinates are compared directly, kept images by their dataset index (found from their bytes)
    and by content.
    """
    index_of_image = {image.tobytes(): index
                      for index, image in enumerate(image for _, images in batches for image in images)}
    for name, tracker, activations in zip(layer_names, trackers, per_channel):
        for channel, channel_activations in enumerate(activations):
            firings, coords, indices, images = tracker.channel(channel)
            where = f'({mode}) and (c) differ on {name} channel {channel}'
            if not np.array_equal(firings, channel_activations.firings):
                raise CheckFailed(f'{where}: firings {firings} vs {channel_activations.firings}')
            if not np.array_equal(coords, channel_activations.coords):
                raise CheckFailed(f'{where}: coords {coords.tolist()} vs '
                                  f'{channel_activations.coords.tolist()}')
            other_indices = [index_of_image.get(image.tobytes(), -1) for image in channel_activations.images]
            if not np.array_equal(indices, other_indices):
                raise CheckFailed(f'{where}: kept image indices {indices} vs {other_indices}')
            if not all(np.array_equal(a, b) for a, b in zip(images, channel_activations.images)):
                raise CheckFailed(f'{where}: kept images')


def format_table(model, num_samples, totals, besides, cpu, loads):
    """The result table from per-batch seconds of each mode (batch 0, the warm-up, left out)."""
    num_batches, batch_size = len(totals['a']) - 1, model.imshape[0]
    median = {mode: float(np.median(totals[mode][1:])) for mode in MODES}
    extra = {mode: float(np.median(besides[mode][1:])) for mode in MODES}
    cpu_median = {mode: float(np.median(cpu[mode][1:])) for mode in MODES}
    forward = np.array(totals['a'][1:])
    paired = {mode: float(np.median(np.array(totals[mode][1:]) / forward - 1)) for mode in MODES[1:]}
    num_channels = sum(layer.num_channels for layer in model.layers)
    labels = {'a': '(a) forward only (Model.run)',
              'b': '(b) scan: maxima from the graph, TopActivations',
              'd': '(d) maxima in numpy, TopActivations',
              'c': f'(c) forward + {num_channels} per-channel Activations'}
    lines = [
        f'Top activations of {" + ".join(f"{layer.name} ({layer.num_channels} ch)" for layer in model.layers)}, '
        f'{num_batches} batches of {batch_size} random {CROP_SIZE}x{CROP_SIZE}x3 images, {num_samples} kept per '
        'channel',
        f'Statistic: median over {num_batches} batches of the wall and the CPU time per batch (modes in turns on '
        'every batch; one more warm-up batch not counted); load average before and after: '
        f'{", ".join(f"{load:.2f}" for load in loads)}.',
        '',
        f'{"mode":<48}{"ms/batch":>10}{"x (a)":>8}{"besides session.run ms":>24}{"CPU ms/batch":>14}{"x (a)":>8}',
    ]
    for mode in MODES:
        lines.append(f'{labels[mode]:<48}{median[mode] * 1e3:>10.2f}{median[mode] / median["a"]:>8.2f}'
                     f'{extra[mode] * 1e3:>24.2f}{cpu_median[mode] * 1e3:>14.2f}'
                     f'{cpu_median[mode] / cpu_median["a"]:>8.2f}')
    lines += [
        '',
        f'scan bookkeeping ratio (b-a)/a = {(median["b"] / median["a"] - 1) * 100:+.1f} % of the forward pass '
        f'(median of per-batch paired ratios: {paired["b"] * 100:+.1f} %; CPU time: '
        f'{(cpu_median["b"] / cpu_median["a"] - 1) * 100:+.1f} %)',
        f'without maxima from the graph (d-a)/a = {(median["d"] / median["a"] - 1) * 100:+.1f} % '
        f'(paired: {paired["d"] * 100:+.1f} %; CPU time: {(cpu_median["d"] / cpu_median["a"] - 1) * 100:+.1f} %)',
        f'(c-a)/a = {median["c"] / median["a"] - 1:.2f} x the forward pass '
        f'(median of per-batch paired ratios: {paired["c"]:.2f} x)',
        'check: (b), (d) and (c) kept identical firings, coords and images for every channel: OK',
    ]
    return '\n'.join(lines)


def benchmark(num_batches=40, batch_size=128, num_samples=5, seed=0):
    """Times the four modes on the same batches and checks their results; returns the table as text."""
    batches = random_batches(num_batches + 1, batch_size, seed)  # +1: the warm-up batch
    forward_seconds = []
    load_before = os.getloadavg()[0]
    with open_model(batch_size, forward_seconds) as model:
        trackers, per_channel, totals, besides, cpu = time_modes(model, batches, num_samples, forward_seconds)
    loads = (load_before, os.getloadavg()[0])
    for mode, mode_trackers in trackers.items():
        check_equal_work(mode_trackers, per_channel, batches, model.layer_names, mode)
    return format_table(model, num_samples, totals, besides, cpu, loads)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--num_batches', type=cli.positive_int, default=40, help='timed batches (plus 1 warm-up)')
    parser.add_argument('--batch_size', type=cli.positive_int, default=128, help='images per batch')
    parser.add_argument('--num_samples', type=cli.positive_int, default=5, help='images kept per channel')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random images')
    parser.add_argument('--verbose', '-v', action='store_true', help='debug logging')
    return parser.parse_args(argv)


def main(argv=None):
    """Prints the three modes' times; raises CheckFailed when they did not keep the same images."""
    args = parse_args(argv)
    cli.setup_logging('DEBUG' if args.verbose else 'INFO')
    print(benchmark(args.num_batches, args.batch_size, args.num_samples, args.seed), flush=True)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
