"""What streaming image folders costs and gives: peak memory of runs over a small and a large folder of photos, the
time to the first batch, and the images per second of decoding, of the forward pass and of the scan.

    python utils/benchmarks/benchmark_streaming.py   # 200 and 2,000 photos of 640x480: about 3 minutes on 2 CPU cores
    python utils/benchmarks/benchmark_streaming.py --help

Writes seeded JPEG photos (smooth random colour fields with grain, quality 90: they compress like photographs),
folders of hard links to the first N of them (one batch, --small, --large, the photos timed), and a small Keras
model (two 3x3 stride-2 convolutions and a max-pool on --keras_size inputs: decoding dominates its runs; in the
VGG16 example the network dominates). Then:

1. Throughput, in this process, for each example: the time from opening its dataset over the large folder (the
   listing of every header) to the first batch; then, over the first photos, images per second (the Keras model's
   inputs, VGG16's tiles) of decoding alone (the dataset's batches with no network, on 1 worker thread and on
   one per core), of the forward pass alone on the decoded batches (`Model.run_with_maxima`, as the scan calls
   it; also with the top lists kept, `TopActivations.update`), and of the scan (`pipeline.scan`, where decoding
   overlaps the forward pass), with the cores each kept busy. Each example's receptive fields then go to a cache
   that every run below reuses.
2. Peak memory, each run a subprocess whose peak resident set size a small process that starts it reads with
   `os.wait4` (`LAUNCHER`): `keras_activations.py` over one batch of photos, --small and --large photos, and as
   shard 9 of 10 over --large; `vgg16_activations.py --max_images 64` over one batch of photos, --small and
   --large photos. A run that measured a receptive field (which takes more memory than the scan) or printed no
   scan line ends the benchmark with an `error:` line and exit status 2.

It ends with a line per goal of the issue that asked for streaming, met or missed. Times are of one run each:
compare ratios.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import functools  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from unittest import mock  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import keras_activations  # noqa: E402
import vgg16_activations  # noqa: E402
from activations import TopActivations  # noqa: E402
from utils.base import prefetch, progress  # noqa: E402
from utils.core import pipeline  # noqa: E402
from utils.data import images  # noqa: E402
from utils.examples import keras_model, vgg16  # noqa: E402
from utils.running import cli  # noqa: E402

import keras  # noqa: E402,I100 (after utils.examples.keras_model: importing keras imports TensorFlow)

logger = logging.getLogger('benchmark_streaming')

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KERAS, VGG16 = 'keras_activations.py', 'vgg16_activations.py'
EXAMPLES = {'keras': (KERAS, keras_activations.parse_args, keras_model.EXAMPLE),
            'vgg16': (VGG16, vgg16_activations.parse_args, vgg16.EXAMPLE)}
SHARD = ('--num_shards', 10, '--shard_index', 9)
JPEG_QUALITY = 90
# The goals: the large folder's peak memory against the small one's; "no bigger" allows for the few MB by which
# the peak RSS of the same run differs from one run to the next; the scan's images per second against the slower
# of decoding and the forward pass.
MEMORY_GOAL = 1.15
SAME_PEAK_TOLERANCE = 0.01
SCAN_GOAL = 0.90
# Linux starts a process's peak RSS at that of the process it was started from (the high-water mark of the memory
# that `exec` replaces): a run started from this process, which holds TensorFlow, would report this one's memory.
# So a small Python process forks each run, waits for it and writes its peak RSS (KiB) and CPU seconds to a file.
LAUNCHER = """import os, sys
pid = os.fork()
if not pid:
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], 'w') as stream:
    stream.write(f'{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}')
sys.exit(os.waitstatus_to_exitcode(status))
"""


class CheckFailed(ValueError):
    """A run failed, measured receptive fields, or printed no scan line.

    A ValueError, so that `cli.run_main` ends the script with a one-line error and exit status 2.
    """


# --- photos and the Keras model

def write_photos(folder, count, size, seed=0):
    """Writes `count` seeded JPEG photos `photo-00000.jpg`, ... of `size` (width, height) into `folder`, keeping
    those already there (give each size and seed its own folder).

    Each is a smooth random colour field (random values on a grid 32 pixels apart and on one 4 pixels apart,
    enlarged with cubic interpolation) plus grain, at JPEG quality 90: about as large as a photograph's file.

    Returns:
        the paths, in order.
    """
    width, height = size
    os.makedirs(folder, exist_ok=True)
    grain = np.random.default_rng(seed).standard_normal((height + 64, width + 64, 3), dtype=np.float32) * 6
    paths = [os.path.join(folder, f'photo-{number:05d}.jpg') for number in range(count)]

    def write(number):
        rng = np.random.default_rng([seed, number])
        coarse = rng.uniform(0, 255, (height // 32 + 2, width // 32 + 2, 3)).astype(np.float32)
        photo = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        fine = rng.standard_normal((height // 4 + 2, width // 4 + 2, 3), dtype=np.float32) * 30
        photo += cv2.resize(fine, (width, height), interpolation=cv2.INTER_CUBIC)
        top, left = rng.integers(0, 64, 2)
        photo += grain[top:top + height, left:left + width]
        partial = paths[number] + '.part'  # renamed once whole: an interrupted run leaves no broken photo
        cv2.imencode('.jpg', cv2.convertScaleAbs(photo), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tofile(partial)
        os.replace(partial, paths[number])

    missing = [number for number, path in enumerate(paths) if not os.path.isfile(path)]
    with contextlib.closing(prefetch.ordered_map(write, missing, ahead=2 * prefetch.num_threads())) as written:
        for _ in written:
            pass
    return paths


def link_folder(folder, paths):
    """Makes `folder` hold exactly `paths` (hard links, or copies where the file system has none); returns it."""
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for path in paths:
        target = os.path.join(folder, os.path.basename(path))
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    return folder


def save_keras_model(path, size):
    """Saves a small seeded Keras model: `size`x`size` RGB -> conv1 (16 channels, 3x3, stride 2, ReLU) -> conv2 (32,
    3x3, stride 2, ReLU) -> pool (2x2 max); returns `path`."""
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((size, size, 3)),
        layers.Conv2D(16, 3, strides=2, activation='relu', kernel_initializer=keras.initializers.GlorotUniform(1),
                      name='conv1'),
        layers.Conv2D(32, 3, strides=2, activation='relu', kernel_initializer=keras.initializers.GlorotUniform(2),
                      name='conv2'),
        layers.MaxPooling2D(2, name='pool'),
    ], name='small_cnn')
    model.save(path)
    return path


# --- throughput, in this process

def script_args(parse_args, flags):
    """A script's flags as its `parse_args` gives them, with `--quiet`, leaving this process's logging level as it
    was (the progress bars stay off until `benchmark` ends)."""
    level = logging.getLogger().level
    args = parse_args([*map(str, flags), '--quiet'])
    logging.getLogger().setLevel(level)
    return args


@contextlib.contextmanager
def decoding_threads(count):
    """Decodes on `count` worker threads in the block, instead of one per core.

    `utils.data.images.decoded_batches` and `tile_batches` take no thread count: their `ordered_map` is replaced.
    """
    with mock.patch.object(images, 'ordered_map', functools.partial(prefetch.ordered_map, threads=count)):
        yield


def read_all(dataset):
    """Reads every batch of a dataset with no network.

    Returns:
        `(seconds, CPU seconds of this process's threads)`.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in dataset.read(0, len(dataset)):
        pass
    return time.perf_counter() - started, time.process_time() - cpu_started


def time_to_first_batch(example, args, model):
    """Opens an example's dataset (`args`' images) and reads its first batch.

    Returns:
        `(number of images, seconds to open it: the listing, seconds to the first batch, listing included)`.
    """
    started = time.perf_counter()
    dataset = example.open_dataset(args, model)
    listed = time.perf_counter() - started
    batches = dataset.read(0, len(dataset))
    next(batches)
    first = time.perf_counter() - started
    batches.close()  # stops the decoding ahead
    return len(dataset), listed, first


def time_forward(model, batches, num_samples):
    """Times the forward pass alone over decoded batches (`Model.run_with_maxima`, as the scan calls it), and
    keeping the top lists from its maps (`TopActivations.update`, as `pipeline.track_top_activations` does).

    Returns:
        `(seconds, CPU seconds of the forward pass; seconds of the top lists)`.
    """
    trackers = [TopActivations(num_samples) for _ in model.layers]
    forward = forward_cpu = bookkeeping = 0.0
    for inputs, display_images, indices in batches:
        started, cpu_started = time.perf_counter(), time.process_time()
        pairs = model.run_with_maxima(inputs)
        computed = time.perf_counter()
        forward_cpu += time.process_time() - cpu_started
        for tracker, (feature_map, maxima) in zip(trackers, pairs):
            tracker.update(display_images, feature_map, indices, maxima=maxima)
        forward += computed - started
        bookkeeping += time.perf_counter() - computed
    return forward, forward_cpu, bookkeeping


def throughput(example, args, large_args, num_samples):
    """Times an example in this process, then stores its receptive fields in `args`' `--recfield_cache`.

    Args:
        example: its `utils.core.model.Example`.
        args: its script's flags over the photos to time.
        large_args: the same over the large folder, for the time to the first batch.
        num_samples: images kept per channel.

    Returns:
        dict: `images` timed, `listed` (the large folder's photos), `listing_s` and `first_batch_s`; images per
        second of `decoding` ({worker threads: rate}), `forward`, `tracked` (forward and top lists) and `scan`;
        `busy`: the cores busy (CPU time over wall time) while decoding on every thread, in the forward pass alone
        and in the scan.
    """
    with example.open_model(args) as model:
        listed, listing, first_batch = time_to_first_batch(example, large_args, model)
        dataset = example.open_dataset(args, model)
        decoding, busy = {}, []
        for threads in sorted({1, prefetch.num_threads()}):
            with decoding_threads(threads):
                seconds, cpu = read_all(dataset)
            decoding[threads] = len(dataset) / seconds
        busy.append(cpu / seconds)
        batches = list(dataset.read(0, len(dataset)))
        for inputs, _, _ in (batches[0], batches[-1]):  # traced or warmed up before it is timed (a short last batch)
            model.run_with_maxima(inputs)
        forward, forward_cpu, bookkeeping = time_forward(model, batches, num_samples)
        busy.append(forward_cpu / forward)
        del batches
        started, cpu_started = time.perf_counter(), time.process_time()
        pipeline.scan(model, dataset, num_samples, print_line=False)
        scan = time.perf_counter() - started
        busy.append((time.process_time() - cpu_started) / scan)
        pipeline.measure_receptive_fields(model, cache=cli.recfield_cache(args), print_lines=False)
    return dict(images=len(dataset), listed=listed, listing_s=listing, first_batch_s=first_batch, decoding=decoding,
                forward=len(dataset) / forward, tracked=len(dataset) / (forward + bookkeeping),
                scan=len(dataset) / scan, busy=busy)


# --- peak memory, in subprocesses

def run_measured(command):
    """Runs a Python script of the repository (an argument list) from `LAUNCHER`, which reports its resources.

    Returns:
        dict: `wall_s`, `cpu_s` (user and system), `peak_mb` (its peak resident set size, 10^6 bytes), and what
        it printed: `scan_images`, `scan_s` and `probe_images` (None without a receptive-fields line).

    Raises:
        CheckFailed: the script failed or printed no scan line.
    """
    text = ' '.join(map(str, command))
    with tempfile.TemporaryDirectory(prefix='benchmark_streaming-') as folder:
        usage_path = os.path.join(folder, 'usage')
        started = time.perf_counter()
        result = subprocess.run([sys.executable, '-c', LAUNCHER, usage_path, *map(str, command)], cwd=REPO,
                                capture_output=True, text=True)
        wall = time.perf_counter() - started
        if result.returncode:
            raise CheckFailed(f'{text} failed (status {result.returncode}): '
                              f'{result.stderr.strip().splitlines()[-1:]}')
        with open(usage_path) as stream:
            peak_kib, cpu = stream.read().split()
    scan = re.search(r'^scan: (\d+) images, ([\d.]+) s$', result.stdout, re.MULTILINE)
    if not scan:
        raise CheckFailed(f'{text} printed no scan line: {result.stdout.strip().splitlines()[-3:]}')
    fields = re.search(r'^receptive fields: \d+ layers?, (\d+) probe images', result.stdout, re.MULTILINE)
    return dict(wall_s=wall, cpu_s=float(cpu), peak_mb=int(peak_kib) * 1024 / 1e6, scan_images=int(scan[1]),
                scan_s=float(scan[2]), probe_images=int(fields[1]) if fields else None)


def memory_runs(runs, runs_at_once=1):
    """Runs `[(label, photos, command)]` (`run_measured`), `runs_at_once` at a time (peak memory is per process;
    wall times compare only when 1).

    Returns:
        a `run_measured` dict per run, in order, with its `label` and `photos`.

    Raises:
        CheckFailed: see `run_measured`; or a run measured receptive fields (the cache was not warmed).
    """
    def run(entry):
        label, photos, command = entry
        logger.info('%s over %d photos', label, photos)
        return dict(run_measured(command), label=label, photos=photos)

    with contextlib.closing(prefetch.ordered_map(run, runs, ahead=runs_at_once, threads=runs_at_once)) as measured:
        results = list(measured)
    for result in results:
        if result['probe_images']:
            raise CheckFailed(f'{result["label"]} over {result["photos"]} photos probed receptive fields '
                              f'({result["probe_images"]} images): their memory is not what is measured')
    return results


# --- the table

def format_table(facts, throughputs, runs, small, large):
    """The result table from the machine and data `facts` (a dict), the `throughput` dict of each example and the
    `memory_runs` results, ending with the goal lines."""
    cores = prefetch.num_threads()
    lines = [
        f'Streaming image folders: {cores} cores (utils.base.prefetch.num_threads(); '
        f'os.cpu_count() = {os.cpu_count()}), '
        f'{facts["memory_gb"]:.1f} GB memory; photos {facts["photo_size"][0]}x{facts["photo_size"][1]} JPEG quality '
        f'{JPEG_QUALITY} ({facts["photo_kb"]:.0f} KB on average); Keras model on {facts["keras_size"]}x'
        f'{facts["keras_size"]} (conv1, conv2, pool), VGG16 tiles of {facts["vgg16_size"]}x{facts["vgg16_size"]} (its '
        f'5 default layers); batches of {facts["batch_size"]}',
        f'Statistic: one run of each; load average (1 min) before {facts["loads"][0]:.2f}, after '
        f'{facts["loads"][1]:.2f}.',
        '',
        'Throughput, in this process (images: the Keras model\'s inputs, VGG16\'s tiles):',
        f'{"":<66}{"keras":>12}{"vgg16":>12}',
    ]

    def row(label, values, spec='.1f'):
        lines.append(f'{label:<66}' + ''.join(f'{value:>12{spec}}' if not isinstance(value, str) else f'{value:>12}'
                                              for value in values))

    both = (throughputs['keras'], throughputs['vgg16'])
    row('photos (images) timed', [f'{facts["photos"][name]} ({rates["images"]})'
                                  for name, rates in throughputs.items()])
    row(f'listing {large} photos (open_dataset), ms', [rates['listing_s'] * 1e3 for rates in both])
    row('to the first batch, listing included, ms', [rates['first_batch_s'] * 1e3 for rates in both])
    for threads in both[0]['decoding']:
        row(f'decoding, {threads} worker thread{"s" if threads != 1 else ""}, images/s',
            [rates['decoding'][threads] for rates in both])
    row('forward pass alone on decoded batches, images/s', [rates['forward'] for rates in both])
    row('forward + top lists on decoded batches, images/s', [rates['tracked'] for rates in both])
    row('scan (decoding overlaps the forward pass), images/s', [rates['scan'] for rates in both])
    serial = [1 / (1 / rates['decoding'][cores] + 1 / rates['forward']) for rates in both]
    row(f'decoding ({cores} threads) then forward, one after the other, images/s', serial)
    row('cores busy (CPU time / wall time): decoding, forward, scan',
        ['/'.join(f'{value:.1f}' for value in rates['busy']) for rates in both])
    ratios = [rates['scan'] / min(rates['decoding'][cores], rates['forward']) for rates in both]
    row(f'scan / min(decoding on {cores} threads, forward pass)', ratios, '.2f')
    row('scan / (decoding then forward, one after the other)', [rates['scan'] / rate for rates, rate in
                                                                zip(both, serial)], '.2f')

    lines += [
        '',
        'Peak memory of each run (its peak resident set size, os.wait4; receptive fields from the cache, not probed; '
        f'MB over 1 batch: over the run on one batch of photos, {facts["batch_size"]}):',
        f'{"run":<56}{"photos":>7}{"images":>7}{"scan s":>8}{"wall s":>8}{"CPU s":>8}{"peak MB":>9}{"x small":>8}'
        f'{"MB over 1 batch":>16}',
    ]
    peaks = {(result['label'], result['photos']): result['peak_mb'] for result in runs}
    base = {}  # each script's first run: its flags without a shard's
    for result in runs:
        script = result['label'].split()[0]
        label = base.setdefault(script, result['label'])
        lines.append(f'{result["label"]:<56}{result["photos"]:>7}{result["scan_images"]:>7}{result["scan_s"]:>8.1f}'
                     f'{result["wall_s"]:>8.1f}{result["cpu_s"]:>8.1f}{result["peak_mb"]:>9.1f}'
                     f'{result["peak_mb"] / peaks[label, small]:>8.2f}'
                     f'{result["peak_mb"] - peaks[label, facts["batch_size"]]:>+16.1f}')

    def memory_goal(what, label, reference_label, limit):
        peak, reference = peaks[label, large], peaks[reference_label, small]
        return (f'goal: {what}: {peak:.1f} MB against {reference:.1f} MB, {peak / reference:.3f} x '
                f'({peak - reference:+.1f} MB): {"met" if peak <= reference * limit else "missed"}')

    shard_label = next(result['label'] for result in runs if result['label'] not in base.values())
    lines += [
        '',
        memory_goal(f'{base[KERAS]} over {large} photos within {MEMORY_GOAL - 1:.0%} of its peak memory over {small}',
                    base[KERAS], base[KERAS], MEMORY_GOAL),
        memory_goal(f'{shard_label} over {large} photos no bigger than {base[KERAS]} over {small} (within '
                    f'{SAME_PEAK_TOLERANCE:.0%}, the noise of peak RSS)', shard_label, base[KERAS],
                    1 + SAME_PEAK_TOLERANCE),
        memory_goal(f'{base[VGG16]} over {large} photos no bigger than over {small} (within '
                    f'{SAME_PEAK_TOLERANCE:.0%})', base[VGG16], base[VGG16], 1 + SAME_PEAK_TOLERANCE),
    ]
    for name, ratio in zip(throughputs, ratios):
        lines.append(f'goal: {name} scan at least {SCAN_GOAL:.0%} of the slower of decoding ({cores} threads) and '
                     f'the forward pass: {ratio:.2f}: {"met" if ratio >= SCAN_GOAL else "missed"}')
    return '\n'.join(lines)


def benchmark(work_dir=None, small=200, large=2000, photo_size=(640, 480), keras_size=224, vgg16_size=128,
              throughput_photos=400, vgg16_photos=4, max_images=64, batch_size=16, num_samples=5, runs_at_once=1,
              seed=0):
    """Writes the photos and the Keras model, times both examples in this process and measures the peak memory of
    their runs; returns the table as text.

    Args:
        work_dir: where the photos, the model, the receptive-field cache and the runs' outputs go; None for a
            temporary folder, removed at the end. Photos already there are used again.
        small, large: photos of the two folders compared.
        photo_size: `(width, height)` of the photos.
        keras_size, vgg16_size: the Keras model's input side; VGG16's tile side (`--image_size`).
        throughput_photos, vgg16_photos: the photos timed in this process, for the Keras model and for VGG16.
        max_images: `--max_images` of the VGG16 runs.
        batch_size, num_samples: the scripts' `--batch_size` and `--num_samples`.
        runs_at_once: subprocesses run at a time (peak memory is per process; wall times compare only when 1).
        seed: seed of the photos.

    Raises:
        CheckFailed: see `memory_runs`.
    """
    loads = [os.getloadavg()[0]]
    enabled = progress.enabled
    counts = {'keras': throughput_photos, 'vgg16': vgg16_photos}
    with contextlib.ExitStack() as stack:
        folder = work_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix='benchmark_streaming-'))
        stack.callback(setattr, progress, 'enabled', enabled)
        progress.enabled = False  # no progress bars in this process's timings
        width, height = photo_size
        all_counts = {batch_size, small, large, *counts.values()}
        logger.info('writing %d photos of %dx%d', max(all_counts), width, height)
        photos = write_photos(os.path.join(folder, f'photos-{width}x{height}-seed{seed}'), max(all_counts),
                              photo_size, seed)
        folders = {count: link_folder(os.path.join(folder, f'{width}x{height}-{count}'), photos[:count])
                   for count in all_counts}
        model_path = save_keras_model(os.path.join(folder, f'small_cnn_{keras_size}.keras'), keras_size)
        common = ['--batch_size', batch_size, '--num_samples', num_samples,
                  '--recfield_cache', os.path.join(folder, 'recfield_cache')]
        flags = {'keras': ['--model', model_path, *common], 'vgg16': ['--image_size', vgg16_size, *common]}

        throughputs = {}
        for name, (script, parse_args, example) in EXAMPLES.items():
            logger.info('%s in this process: %d photos, and the first batch of %d', script, counts[name], large)
            args, large_args = (script_args(parse_args, [*flags[name], '--images_dir', folders[count]])
                                for count in (counts[name], large))
            throughputs[name] = throughput(example, args, large_args, num_samples)

        runs = []
        for name, extra, photo_counts in (('keras', [], (batch_size, small, large)), ('keras', SHARD, (large,)),
                                          ('vgg16', ['--max_images', max_images], (batch_size, small, large))):
            script = EXAMPLES[name][0]
            for count in photo_counts:
                out_dir = os.path.join(folder, 'out', str(len(runs)))
                runs.append((' '.join(map(str, [script, *extra])), count,
                             [script, *flags[name], *extra, '--images_dir', folders[count], '--out_dir', out_dir,
                              '--quiet']))
        results = memory_runs(runs, runs_at_once)
        photo_kb = np.mean([os.path.getsize(path) for path in photos]) / 1e3
    loads.append(os.getloadavg()[0])
    facts = dict(memory_gb=os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1e9, photo_size=photo_size,
                 photo_kb=photo_kb, keras_size=keras_size, vgg16_size=vgg16_size, batch_size=batch_size, loads=loads,
                 photos=counts)
    return format_table(facts, throughputs, results, small, large)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--work_dir', help='folder for the photos, the Keras model and the runs\' outputs, kept and '
                                           'used again; by default a temporary folder, removed at the end')
    parser.add_argument('--small', type=cli.positive_int, default=200, help='photos of the small folder')
    parser.add_argument('--large', type=cli.positive_int, default=2000, help='photos of the large folder')
    parser.add_argument('--photo_size', type=cli.positive_int, nargs=2, default=(640, 480), metavar=('W', 'H'),
                        help='width and height of the photos')
    parser.add_argument('--keras_size', type=cli.positive_int, default=224, help='input side of the Keras model')
    parser.add_argument('--vgg16_size', type=cli.positive_int, default=128,
                        help='side of the VGG16 tiles (its --image_size, at least 32)')
    parser.add_argument('--throughput_photos', type=cli.positive_int, default=400,
                        help='photos timed in this process with the Keras model')
    parser.add_argument('--vgg16_photos', type=cli.positive_int, default=4,
                        help='photos timed in this process with VGG16 (each gives dozens of tiles)')
    parser.add_argument('--max_images', type=cli.positive_int, default=64, help='--max_images of the VGG16 runs')
    parser.add_argument('--batch_size', type=cli.positive_int, default=16, help='the scripts\' --batch_size')
    parser.add_argument('--num_samples', type=cli.positive_int, default=5, help='the scripts\' --num_samples')
    parser.add_argument('--runs_at_once', type=cli.positive_int, default=1,
                        help='subprocesses run at a time: peak memory is per process, but wall times compare only '
                             'when 1')
    parser.add_argument('--seed', type=int, default=0, help='seed of the photos')
    parser.add_argument('--verbose', '-v', action='store_true', help='debug logging')
    return parser.parse_args(argv)


def main(argv=None):
    """Prints the table; raises CheckFailed when a run fails, probes receptive fields or prints no scan line."""
    args = parse_args(argv)
    cli.setup_logging('DEBUG' if args.verbose else 'INFO')  # this script's own progress; the runs' logs are not shown
    print(benchmark(args.work_dir, args.small, args.large, tuple(args.photo_size), args.keras_size, args.vgg16_size,
                    args.throughput_photos, args.vgg16_photos, args.max_images, args.batch_size, args.num_samples,
                    args.runs_at_once, args.seed), flush=True)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
