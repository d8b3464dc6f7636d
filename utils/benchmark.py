"""Benchmark of the two costly parts of the tool: keeping the top activations, and probing receptive fields.

Run from the repository root:

    python utils/benchmark.py                 # both parts, defaults sized for ~2-3 minutes on 2 CPU cores
    python utils/benchmark.py --part top      # only part 1
    python utils/benchmark.py --part shards   # only part 3 (not in the default run: about 4 minutes)
    python utils/benchmark.py --help

Part 1, top activations. The CIFAR-10 example's network (`utils/cifar10_model.py`, the classic tutorial's:
24x24x3 input; conv1 5x5x64, pool1, norm1, conv2 5x5x64, norm2, pool2, local3 384, local4 192,
softmax_linear 10) with random weights is run on random uint8 images (drawn once; every mode sees the same batches, in the
same session). Three modes are timed on every batch:

    (a) forward only: one `sess.run` fetching conv1, conv2 and the logits (the full forward pass);
    (b) (a) + `TopActivations(num_samples).update(images, features)` for all channels of conv1 and conv2;
    (c) (a) + the original per-channel style: one `Activations(num_samples)` per channel and layer, and a
        Python loop calling `act.update(images, features[..., c])` for every channel.

After one warm-up batch (not counted), the modes run interleaved on every batch, their order rotated from
batch to batch, so that slow phases of a shared machine hit all modes alike. The statistic is the MEDIAN
over batches of the time per batch. Reading the table: "overhead" is (b - a) / a in percent and (c - a) / a
as a multiple of the forward pass; "bookkeeping" is the median time of the update calls alone (timed
inside modes b and c, without the forward pass), and the last line says how much faster (b)'s bookkeeping
is than (c)'s. The script checks that (b) and (c) end with the same firings, coordinates and kept images
for every channel, so both do the same work; it exits with status 1 otherwise.

Part 2, receptive fields. The convolutional part of the same network (conv1, pool1, norm1, conv2, norm2,
pool2, plus a conv3 5x5 after pool2) is built on a `[rf_batch_size, rf_size, rf_size, 3]` float
placeholder. For conv2 (receptive field 15), pool2 (19) and conv3 (35), `ReceptiveField` is run once with
`multiplex=False` (one probe per row and per column) and once with `multiplex=True`. The table gives the
measured size/stride/padding, the number of probe images and the wall time of each way, and the ratios
row-by-row / multiplexed. The probe-image ratio is machine-independent; the time ratio is what it buys on
this machine (single run each, so noisy on a shared machine). The script checks that both ways give
identical `recfield` arrays and exits with status 1 otherwise. The layers have `--rf_channels` channels
(default 8, not 64): a receptive field does not depend on the channel count, and 64 channels at 512x512 cost
minutes per layer on a small CPU.

Part 3, shards (`--part shards`). The VGG16 example (`vgg16_activations.py`, its default 5 layers, 10 channels,
5 images each) on the same tiles three ways, one after the other: (1) one process; (2) the 2 shards of
`--num_shards 2` as two processes at once, then `utils/merge_activations.py`; (3) `--dask_scheduler local
--dask_workers 2 --num_shards 2`, a Dask LocalCluster of 2 single-threaded worker processes. The statistic is
the wall time of one run of each, from starting the processes to the pictures written, so it includes what
every process pays once (starting Python and TensorFlow, building the graph, reading the weights, a Dask
cluster) and the receptive fields (measured once per layer, see `utils/shards.py`); images per second is the
number of tiles over that time. The script checks that the three ways write byte-identical pictures and exits
with status 1 otherwise. It prints `os.cpu_count()`: on a machine with few cores, processes share them.

Diagnostics go to the log (stderr); only the result tables are printed to stdout.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import argparse  # noqa: E402
import glob  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from activations import Activations, TopActivations  # noqa: E402
from recfield import ReceptiveField  # noqa: E402
from utils import cifar10_model  # noqa: E402

tf1 = tf.compat.v1
logger = logging.getLogger('benchmark')

TOP_LAYERS = ('conv1', 'conv2')
MODES = ('a', 'b', 'c')


class CheckFailed(Exception):
    """A sanity check of the benchmark failed: the compared modes did not do the same work."""


# -- networks -------------------------------------------------------------------------------------------

def _weights(name, shape, stddev):
    return tf1.get_variable(name, shape, tf.float32, tf1.truncated_normal_initializer(stddev=stddev))


def _biases(name, size, value):
    return tf1.get_variable(name, [size], tf.float32, tf1.constant_initializer(value))


def _conv_relu(inputs, name, channels, bias):
    """5x5 SAME convolution and ReLU in variable scope `name`; the output tensor is `name/name:0`."""
    with tf1.variable_scope(name) as scope:
        kernel = _weights('weights', [5, 5, int(inputs.shape[-1]), channels], 5e-2)
        pre_activation = tf.nn.bias_add(tf.nn.conv2d(inputs, kernel, [1, 1, 1, 1], padding='SAME'),
                                        _biases('biases', channels, bias))
        return tf.nn.relu(pre_activation, name=scope.name)


def _pool(inputs, name):
    return tf.nn.max_pool2d(inputs, ksize=3, strides=2, padding='SAME', name=name)


def _norm(inputs, name):
    return tf.nn.local_response_normalization(inputs, depth_radius=4, bias=1.0, alpha=0.001 / 9.0, beta=0.75,
                                              name=name)


def build_conv_part(images, channels=64, with_conv3=False):
    """Builds conv1, pool1, norm1, conv2, norm2, pool2 (and conv3) of the CIFAR-10 tutorial network.

    Args:
        images: float32 tensor `[batch, height, width, 3]`.
        channels: channels of every convolution (64 in the tutorial).
        with_conv3: add a 5x5 conv3 after pool2 (receptive field 35).

    Returns:
        dict from layer name to output tensor.
    """
    layers = {}
    layers['conv1'] = _conv_relu(images, 'conv1', channels, 0.0)
    layers['pool1'] = _pool(layers['conv1'], 'pool1')
    layers['norm1'] = _norm(layers['pool1'], 'norm1')
    layers['conv2'] = _conv_relu(layers['norm1'], 'conv2', channels, 0.1)
    layers['norm2'] = _norm(layers['conv2'], 'norm2')
    layers['pool2'] = _pool(layers['norm2'], 'pool2')
    if with_conv3:
        layers['conv3'] = _conv_relu(layers['pool2'], 'conv3', channels, 0.1)
    return layers


def build_cifar10(images_uint8):
    """Builds the CIFAR-10 tutorial network (`utils.cifar10_model.inference`) on a uint8 image tensor.

    Returns:
        dict from `conv1`, `conv2` and `logits` to their tensors.
    """
    logits = cifar10_model.inference(tf.cast(images_uint8, tf.float32) / 127.5 - 1.0)
    graph = logits.graph
    return {'conv1': graph.get_tensor_by_name('conv1/conv1:0'), 'conv2': graph.get_tensor_by_name('conv2/conv2:0'),
            'logits': logits}


def make_session(build, seed):
    """Builds a graph with `build()` under a graph-level seed; returns `(session, build's result)`."""
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(seed)
        outputs = build()
        session = tf1.Session(graph=graph)
        session.run(tf1.global_variables_initializer())
    graph.finalize()
    return session, outputs


# -- part 1: top activations ----------------------------------------------------------------------------

def _new_trackers(num_samples, num_channels):
    """Fresh bookkeeping of modes b and c: `{layer: TopActivations}`, `{layer: [Activations per channel]}`."""
    top = {layer: TopActivations(num_samples) for layer in TOP_LAYERS}
    per_channel = {layer: [Activations(num_samples) for _ in range(num_channels[layer])] for layer in TOP_LAYERS}
    return top, per_channel


def _run_mode(mode, sess, fetches, feed, images, top, per_channel):
    """Runs one mode on one batch; returns `(total seconds, seconds spent in update calls)`."""
    start = time.perf_counter()
    features = sess.run(fetches, feed_dict=feed)
    after_forward = time.perf_counter()
    if mode == 'b':
        for layer in TOP_LAYERS:
            top[layer].update(images, features[layer])
    elif mode == 'c':
        for layer in TOP_LAYERS:
            maps = features[layer]
            for channel, act in enumerate(per_channel[layer]):
                act.update(images, maps[..., channel])
    end = time.perf_counter()
    return end - start, end - after_forward


def check_equal_work(top, per_channel, image_index):
    """Raises CheckFailed unless each `Activations` holds exactly its channel of the `TopActivations`.

    Firings and coordinates are compared directly; the kept images by their global index, found by looking
    each image up in `image_index` (bytes -> index), and by content.
    """
    for layer in TOP_LAYERS:
        for channel, act in enumerate(per_channel[layer]):
            firings, coords, indices, images = top[layer].channel(channel)
            act_indices = np.array([image_index.get(image.tobytes(), -1) for image in act.images])
            where = f'{layer} channel {channel}'
            if not np.array_equal(firings, act.firings):
                raise CheckFailed(f'{where}: firings differ: {firings} vs {act.firings}')
            if not np.array_equal(coords, act.coords):
                raise CheckFailed(f'{where}: coords differ: {coords.tolist()} vs {act.coords.tolist()}')
            if not np.array_equal(indices, act_indices):
                raise CheckFailed(f'{where}: kept image indices differ: {indices} vs {act_indices}')
            if not all(np.array_equal(a, b) for a, b in zip(images, act.images)):
                raise CheckFailed(f'{where}: kept images differ')


def benchmark_top(args):
    """Part 1: times modes a, b, c interleaved on the same batches; returns the result table as text."""
    rng = np.random.default_rng(args.seed)
    shape = (args.num_batches + 1, args.batch_size, 24, 24, 3)  # +1: the warm-up batch
    logger.info('drawing %d random uint8 batches of %d images', shape[0], args.batch_size)
    batches = rng.integers(0, 256, shape, dtype=np.uint8)

    placeholder = {}

    def build():
        placeholder['images'] = tf1.placeholder(tf.uint8, [args.batch_size, 24, 24, 3], name='images')
        return build_cifar10(placeholder['images'])

    sess, layers = make_session(build, args.seed)
    with sess:
        fetches = {layer: layers[layer] for layer in TOP_LAYERS}
        fetches['logits'] = layers['logits']
        logger.info('fetching %s', ', '.join(f'{t.name} {t.shape}' for t in fetches.values()))
        num_channels = {layer: int(layers[layer].shape[-1]) for layer in TOP_LAYERS}

        # Warm-up on batch 0 with throw-away trackers: graph setup, first numpy/TF calls.
        warm_top, warm_per_channel = _new_trackers(args.num_samples, num_channels)
        warm_feed = {placeholder['images']: batches[0]}
        for mode in MODES:
            _run_mode(mode, sess, fetches, warm_feed, batches[0], warm_top, warm_per_channel)

        top, per_channel = _new_trackers(args.num_samples, num_channels)
        totals = {mode: [] for mode in MODES}
        updates = {mode: [] for mode in MODES}
        for number in range(args.num_batches):
            images = batches[number + 1]
            feed = {placeholder['images']: images}
            order = MODES[number % 3:] + MODES[:number % 3]
            for mode in order:
                total, update = _run_mode(mode, sess, fetches, feed, images, top, per_channel)
                totals[mode].append(total)
                updates[mode].append(update)
            logger.debug('batch %d: %s', number, ', '.join(f'{m} {totals[m][-1] * 1e3:.1f} ms' for m in MODES))

    image_index = {batches[number + 1, i].tobytes(): number * args.batch_size + i
                   for number in range(args.num_batches) for i in range(args.batch_size)}
    check_equal_work(top, per_channel, image_index)
    logger.info('check passed: TopActivations and per-channel Activations kept the same images, firings '
                'and coordinates for all %d channels', sum(num_channels.values()))
    return format_top_table(args, num_channels, totals, updates)


def format_top_table(args, num_channels, totals, updates):
    """The part-1 table from per-batch times (seconds) of each mode."""
    median = {mode: float(np.median(totals[mode])) for mode in MODES}
    keep = {mode: float(np.median(updates[mode])) for mode in ('b', 'c')}
    a = np.array(totals['a'])
    paired_b = float(np.median((np.array(totals['b']) - a) / a))
    paired_c = float(np.median((np.array(totals['c']) - a) / a))
    channels = sum(num_channels.values())
    labels = {
        'a': '(a) forward only',
        'b': '(b) forward + TopActivations, 2 trackers',
        'c': f'(c) forward + Activations, {channels} per-channel',
    }
    lines = [
        f'Part 1: top activations of {" + ".join(f"{layer} ({num_channels[layer]} ch)" for layer in TOP_LAYERS)}, '
        f'{args.num_batches} batches of {args.batch_size} random 24x24x3 uint8 images, '
        f'{args.num_samples} kept per channel',
        f'Statistic: median over the {args.num_batches} batches of the time per batch (modes interleaved on '
        'every batch, order rotated; 1 warm-up batch not counted).',
        '',
        f'{"mode":<46}{"ms/batch":>10}{"x (a)":>8}{"overhead vs (a)":>18}{"bookkeeping ms":>16}',
    ]
    for mode in MODES:
        ratio = median[mode] / median['a']
        if mode == 'a':
            overhead, bookkeeping = '-', '-'
        elif mode == 'b':
            overhead, bookkeeping = f'{(ratio - 1) * 100:+.1f} %', f'{keep["b"] * 1e3:.2f}'
        else:
            overhead, bookkeeping = f'{ratio - 1:+.2f} x', f'{keep["c"] * 1e3:.2f}'
        lines.append(f'{labels[mode]:<46}{median[mode] * 1e3:>10.2f}{ratio:>8.2f}{overhead:>18}{bookkeeping:>16}')
    lines += [
        '',
        f'(b-a)/a = {(median["b"] / median["a"] - 1) * 100:+.1f} % of the forward pass '
        f'(median of per-batch paired ratios: {paired_b * 100:+.1f} %)',
        f'(c-a)/a = {median["c"] / median["a"] - 1:.2f} x the forward pass '
        f'(median of per-batch paired ratios: {paired_c:.2f} x)',
        f'bookkeeping alone: per-channel (c) {keep["c"] * 1e3:.2f} ms vs TopActivations (b) '
        f'{keep["b"] * 1e3:.2f} ms per batch = {keep["c"] / keep["b"]:.1f} x faster',
        'check: (b) and (c) kept identical firings, coords and images for every channel: OK',
    ]
    return '\n'.join(lines)


# -- part 2: receptive fields ---------------------------------------------------------------------------

# (kernel, stride) of the SAME-padded layers up to each measured layer; the LRN layers are 1x1 in space.
RF_LAYER_OPS = {
    'conv2': [(5, 1), (3, 2), (5, 1)],
    'pool2': [(5, 1), (3, 2), (5, 1), (3, 2)],
    'conv3': [(5, 1), (3, 2), (5, 1), (3, 2), (5, 1)],
}


def analytic_extents(ops, length):
    """Exact `(start, stop)` arrays of every feature line along one axis, from the layers' arithmetic.

    Each op is `(kernel, stride)` with TensorFlow's SAME padding: output `j` reads inputs
    `j * stride - pad_before + [0, kernel)`, clipped, where `pad_before = pad_total // 2`.
    """
    start, stop = np.arange(length), np.arange(length) + 1
    for kernel, stride in ops:
        size = len(start)
        out = -(-size // stride)
        pad_before = max((out - 1) * stride + kernel - size, 0) // 2
        first = np.clip(np.arange(out) * stride - pad_before, 0, size - 1)
        last = np.clip(np.arange(out) * stride - pad_before + kernel - 1, 0, size - 1)
        start, stop = start[first], stop[last]
    return start, stop


def analytic_recfield(name, height, width):
    """The exact `[feat_h, feat_w, 4]` boxes of layer `name` of `build_conv_part`."""
    y1, y2 = analytic_extents(RF_LAYER_OPS[name], height)
    x1, x2 = analytic_extents(RF_LAYER_OPS[name], width)
    shape = (len(y1), len(x1))
    return np.stack([np.broadcast_to(y1[:, None], shape), np.broadcast_to(x1[None, :], shape),
                     np.broadcast_to(y2[:, None], shape), np.broadcast_to(x2[None, :], shape)], axis=-1)


def benchmark_recfield(args):
    """Part 2: ReceptiveField row by row vs multiplexed for conv2, pool2, conv3; returns the table as text."""
    imshape = (args.rf_batch_size, args.rf_size, args.rf_size, 3)
    placeholder = {}

    def build():
        placeholder['images'] = tf1.placeholder(tf.float32, imshape, name='images')
        return build_conv_part(placeholder['images'], channels=args.rf_channels, with_conv3=True)

    sess, layers = make_session(build, args.seed)
    rows = []
    with sess:
        warm = np.zeros(imshape, np.float32)
        for name in args.rf_layers:
            layer = layers[name]

            def forward(batch, layer=layer):
                return sess.run([layer], feed_dict={placeholder['images']: batch})

            forward(warm)  # warm-up: first run of this fetch
            start = time.perf_counter()
            forward(warm)
            one_batch = time.perf_counter() - start
            logger.info('%s %s: one forward batch of %d takes %.3f s', layer.name, layer.shape,
                        args.rf_batch_size, one_batch)
            result = {}
            for multiplex in (False, True):
                logger.info('%s: ReceptiveField(multiplex=%s) ...', name, multiplex)
                start = time.perf_counter()
                rf = ReceptiveField(imshape, forward, multiplex=multiplex)
                seconds = time.perf_counter() - start
                logger.info('%s: multiplex=%s took %.2f s, %d probe images, size %s stride %s padding %s',
                            name, multiplex, seconds, rf.num_probe_images, rf.size, rf.stride, rf.padding)
                result[multiplex] = (rf, seconds)
            if not np.array_equal(result[False][0].recfield, result[True][0].recfield):
                differ = np.argwhere((result[False][0].recfield != result[True][0].recfield).any(axis=-1))
                raise CheckFailed(f'{name}: recfield differs between multiplex=False and True at '
                                  f'{len(differ)} feature pixels, first {differ[:3].tolist()}')
            expected = analytic_recfield(name, args.rf_size, args.rf_size)
            exact = np.array_equal(result[True][0].recfield, expected)
            if not exact:
                wrong = np.argwhere((result[True][0].recfield != expected).any(axis=-1))
                logger.warning('%s: measured boxes differ from the analytic ones at %d feature pixels (a masked '
                               'probe?), e.g. %s', name, len(wrong), '; '.join(
                                   f'{tuple(p)}: measured {result[True][0].recfield[tuple(p)].tolist()} analytic '
                                   f'{expected[tuple(p)].tolist()}' for p in wrong[:3]))
            rows.append((name, tuple(layer.shape[1:3]), one_batch, result, exact))
    return format_rf_table(args, rows)


def format_rf_table(args, rows):
    """The part-2 table from `(layer, feature size, forward seconds, {multiplex: (rf, seconds)})` rows."""
    lines = [
        f'Part 2: ReceptiveField on {args.rf_size}x{args.rf_size}x3 input, batch {args.rf_batch_size}, '
        f'{args.rf_channels} channels per layer; row-by-row (multiplex=False) vs multiplexed (multiplex=True)',
        'Statistic: one run of each (wall time of the ReceptiveField constructor, after a warm-up forward).',
        '',
        f'{"layer":<7}{"feature":>10}{"size":>10}{"stride":>8}{"padding":>9}{"fwd s/batch":>13}'
        f'{"probes row":>12}{"probes mux":>12}{"ratio":>8}{"s row":>9}{"s mux":>8}{"ratio":>8}{"identical":>11}'
        f'{"= analytic":>12}',
    ]
    for name, feature, one_batch, result, exact in rows:
        (rf_row, s_row), (rf_mux, s_mux) = result[False], result[True]
        fmt = lambda pair: 'None' if pair is None else f'{pair[0]},{pair[1]}'  # noqa: E731
        lines.append(
            f'{name:<7}{fmt(feature):>10}{fmt(rf_mux.size):>10}{fmt(rf_mux.stride):>8}{fmt(rf_mux.padding):>9}'
            f'{one_batch:>13.3f}{rf_row.num_probe_images:>12}{rf_mux.num_probe_images:>12}'
            f'{rf_row.num_probe_images / rf_mux.num_probe_images:>7.1f}x{s_row:>9.2f}{s_mux:>8.2f}'
            f'{s_row / s_mux:>7.1f}x{"yes":>11}{"yes" if exact else "NO":>12}')
    lines += ['',
              'size/stride/padding are (y, x) as measured (google-research receptive_field convention); probes '
              'exclude references; ratio = row-by-row / multiplexed; identical: both recfield arrays are equal '
              '(checked, exit 1 otherwise); = analytic: they equal the boxes computed from the layers\' '
              'kernel/stride/SAME padding.']
    return '\n'.join(lines)


# -- part 3: shards -------------------------------------------------------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARD_MODES = {
    'single': '1 process',
    'shards': '2 local shards at once, merged',
    'dask': 'Dask LocalCluster, 2 workers, 2 shards',
}


def run_together(commands):
    """Starts Python scripts of the repository at once (argument lists) and waits for all; returns the seconds.

    Raises:
        CheckFailed: a script failed (the message has its last error line).
    """
    start = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, *map(str, command)], cwd=REPO, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for command in commands]
    errors = [(command, process.communicate()[1], process.returncode) for command, process in zip(commands, processes)]
    for command, stderr, status in errors:
        if status:
            raise CheckFailed(f'{" ".join(map(str, command))} failed: {stderr.strip().splitlines()[-1:]}')
    return time.perf_counter() - start


def benchmark_shards(args):
    """Part 3: the VGG16 example in 1 process, 2 shards merged, and on a Dask LocalCluster; returns the table."""
    from utils import images

    flags = ['--image_size', args.shards_image_size, '--max_images', args.shards_max_images]
    flags += ['--layers', ','.join(args.shards_layers)] if args.shards_layers else []
    num_images = len(images.load_photo_tiles(None, args.shards_image_size, args.shards_max_images)[2])
    script = 'vgg16_activations.py'
    seconds = {}
    with tempfile.TemporaryDirectory() as folder:
        out = {mode: os.path.join(folder, mode) for mode in SHARD_MODES}
        logger.info('%s on %d tiles, %s: one process', script, num_images, ' '.join(map(str, flags)))
        seconds['single'] = run_together([[script, *flags, '--out_dir', out['single']]])
        logger.info('2 shards at once, then the merge')
        states = os.path.join(folder, 'states')
        scan = run_together([[script, *flags, '--num_shards', 2, '--shard_index', index, '--out_dir', states]
                             for index in range(2)])
        merge = run_together([[os.path.join('utils', 'merge_activations.py'), '--out_dir', out['shards'],
                               '--states', *sorted(glob.glob(os.path.join(states, 'state-*.npz')))]])
        seconds['shards'] = scan + merge
        logger.info('Dask LocalCluster')
        seconds['dask'] = run_together([[script, *flags, '--dask_scheduler', 'local', '--dask_workers', 2,
                                         '--num_shards', 2, '--out_dir', out['dask']]])
        pictures = sorted(name for name in os.listdir(out['single']) if name.endswith('.jpg'))
        for mode in ('shards', 'dask'):
            for name in pictures:
                if _read(out['single'], name) != _read(out[mode], name):
                    raise CheckFailed(f'{SHARD_MODES[mode]}: {name} differs from the single process\'s')
    return format_shards_table(args, num_images, seconds, merge, len(pictures))


def _read(folder, name):
    with open(os.path.join(folder, name), 'rb') as stream:
        return stream.read()


def format_shards_table(args, num_images, seconds, merge, num_pictures):
    """The part-3 table from the wall seconds of each mode."""
    layers = ','.join(args.shards_layers) if args.shards_layers else 'the 5 default layers'
    lines = [
        f'Part 3: vgg16_activations.py on {num_images} tiles of {args.shards_image_size}x{args.shards_image_size}, '
        f'{layers}; os.cpu_count() = {os.cpu_count()}',
        'Statistic: wall time of one run of each, start of the processes to pictures written (start-up, graph, '
        'weights, scan, receptive fields, pictures).',
        '',
        f'{"mode":<42}{"wall s":>9}{"images/s":>10}{"x 1 process":>13}',
    ]
    for mode, label in SHARD_MODES.items():
        lines.append(f'{label:<42}{seconds[mode]:>9.1f}{num_images / seconds[mode]:>10.2f}'
                     f'{seconds["single"] / seconds[mode]:>13.2f}')
    lines += ['',
              f'the merge (utils/merge_activations.py, in the 2-shard time) took {merge:.1f} s',
              f'check: the three ways wrote byte-identical pictures ({num_pictures} files): OK']
    return '\n'.join(lines)


# -- command line ---------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--part', choices=('top', 'rf', 'both', 'shards'), default='both',
                        help='which part to run: both is parts 1 and 2, shards part 3')
    parser.add_argument('--num_batches', type=int, default=20, help='part 1: timed batches (plus 1 warm-up)')
    parser.add_argument('--batch_size', type=int, default=128, help='part 1: images per batch')
    parser.add_argument('--num_samples', type=int, default=5, help='part 1: images kept per channel')
    parser.add_argument('--rf_size', type=int, default=512, help='part 2: input height and width')
    parser.add_argument('--rf_batch_size', type=int, default=16, help='part 2: batch size of the probes')
    parser.add_argument('--rf_channels', type=int, default=8,
                        help='part 2: channels of conv1/conv2/conv3 (receptive fields do not depend on it)')
    parser.add_argument('--rf_layers', nargs='+', choices=('conv2', 'pool2', 'conv3'),
                        default=['conv2', 'pool2', 'conv3'], help='part 2: layers to measure')
    parser.add_argument('--shards_image_size', type=int, default=128, help='part 3: side of the VGG16 tiles')
    parser.add_argument('--shards_max_images', type=int, default=0, help='part 3: tiles to use; 0 for all')
    parser.add_argument('--shards_layers', nargs='+', help='part 3: layers (default: the example\'s)')
    parser.add_argument('--seed', type=int, default=0, help='seed of images and weights')
    parser.add_argument('--verbose', '-v', action='store_true', help='debug logging')
    args = parser.parse_args(argv)
    for name in ('num_batches', 'batch_size', 'num_samples', 'rf_size', 'rf_batch_size', 'rf_channels'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be at least 1')
    return args


def main(argv=None):
    """Runs the benchmark and prints the tables; returns the exit status (1 when a check fails)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    if not args.verbose:
        logging.getLogger('recfield').setLevel(logging.INFO)
    start = time.perf_counter()
    parts = {'top': [benchmark_top], 'rf': [benchmark_recfield], 'both': [benchmark_top, benchmark_recfield],
             'shards': [benchmark_shards]}[args.part]
    try:
        for number, part in enumerate(parts):
            table = part(args)
            print(('\n' if number else '') + table, flush=True)
    except CheckFailed as error:
        logger.error('sanity check failed, the timings do not compare equal work: %s', error)
        return 1
    logger.info('benchmark took %.1f s', time.perf_counter() - start)
    return 0


if __name__ == '__main__':
    sys.exit(main())
