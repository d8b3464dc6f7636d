"""What sharding buys on this machine: the VGG16 example in one process, as 2 shards merged, and on Dask.

    python utils/benchmarks/benchmark_shards.py          # the example's 360 tiles of 128x128, 5 layers: about 4 minutes
    python utils/benchmarks/benchmark_shards.py --help

Runs `vgg16_activations.py` on the same tiles three ways, one after the other, every process or Dask worker with
TensorFlow on one thread (`--threads`; `utils.models.tf_session.session_config`): (1) one process; (2) the 2 shards of
`--num_shards 2` as two processes at once, then `utils/merge_activations.py`; (3) `--dask_scheduler local
--dask_workers 2 --num_shards 2`. Every run measures the receptive fields (`--no_recfield_cache`). The statistics
are the wall time of one run of each, from starting the processes to the pictures written, so it includes what
every process pays once (Python, TensorFlow, the graph, the weights, a Dask cluster, the receptive fields), and
the scan alone: the `scan:` line of the process, and of the slower of the two shards, giving the parallel
efficiency of the scan, (1) / (2 x (2)). It prints the load average before and after. Unless the three ways write
byte-identical pictures, it ends with an `error:` line and exit status 2.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import argparse  # noqa: E402
import glob  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from utils.base.threads import THREAD_VARIABLES  # noqa: E402
from utils.data import images  # noqa: E402
from utils.running import cli  # noqa: E402

logger = logging.getLogger('benchmark_shards')

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = 'vgg16_activations.py'
MODES = {
    'single': '1 process',
    'shards': '2 local shards at once, merged',
    'dask': 'Dask LocalCluster, 2 workers, 2 shards',
}


class CheckFailed(ValueError):
    """A run failed, or the ways wrote different pictures.

    A ValueError, so that `cli.run_main` ends the script with a one-line error and exit status 2.
    """


def run_together(commands, threads=None):
    """Starts Python scripts of the repository at once (argument lists) and waits for all.

    Args:
        commands: the scripts' argument lists.
        threads: TensorFlow threads of each process (`utils.base.threads.THREAD_VARIABLES`), or None to leave them.

    Returns:
        `(wall seconds, [each script's standard output])`.

    Raises:
        CheckFailed: a script failed (the message has its last error line).
    """
    env = dict(os.environ, **({variable: str(threads) for variable in THREAD_VARIABLES} if threads else {}))
    start = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, *map(str, command)], cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env) for command in commands]
    outcomes = [(command, *process.communicate(), process.returncode) for command, process in zip(commands, processes)]
    seconds = time.perf_counter() - start
    for command, _, stderr, status in outcomes:
        if status:
            raise CheckFailed(f'{" ".join(map(str, command))} failed: {stderr.strip().splitlines()[-1:]}')
    return seconds, [stdout for _, stdout, _, _ in outcomes]


def scan_seconds(stdout):
    """The seconds of the `scan: <n> images, <t> s` line a script printed.

    Raises:
        CheckFailed: no such line.
    """
    found = re.search(r'^scan: \d+ images, ([\d.]+) s$', stdout, re.MULTILINE)
    if not found:
        raise CheckFailed(f'{SCRIPT} printed no scan line: {stdout.strip().splitlines()[-3:]}')
    return float(found[1])


def run_three_ways(flags, folder, threads=1):
    """Runs the example the three ways, writing pictures to `folder/<mode>`, TensorFlow on `threads` threads per
    process or worker.

    Returns:
        `({mode: wall seconds}, seconds of the merge alone, {'single': scan seconds, 'shards': the slower shard's})`.
    """
    seconds, scans = {}, {}
    logger.info('one process')
    seconds['single'], (output,) = run_together([[SCRIPT, *flags, '--out_dir', os.path.join(folder, 'single')]],
                                                threads)
    scans['single'] = scan_seconds(output)
    logger.info('2 shards at once, then the merge')
    states = os.path.join(folder, 'states')
    scan, outputs = run_together([[SCRIPT, *flags, '--num_shards', 2, '--shard_index', index, '--out_dir', states]
                                  for index in range(2)], threads)
    scans['shards'] = max(map(scan_seconds, outputs))
    merge, _ = run_together([[os.path.join('utils', 'merge_activations.py'), '--out_dir',
                              os.path.join(folder, 'shards'),
                              '--states', *sorted(glob.glob(os.path.join(states, 'state-*.npz')))]])
    seconds['shards'] = scan + merge
    logger.info('Dask LocalCluster')
    seconds['dask'], _ = run_together([[SCRIPT, *flags, '--dask_scheduler', 'local', '--dask_workers', 2,
                                        '--num_shards', 2, '--out_dir', os.path.join(folder, 'dask')]], threads)
    return seconds, merge, scans


def check_same_pictures(folder):
    """Raises CheckFailed unless every mode wrote the single process's pictures, byte for byte; returns their count."""
    pictures = sorted(name for name in os.listdir(os.path.join(folder, 'single')) if name.endswith('.jpg'))
    if not pictures:
        raise CheckFailed('the single process wrote no pictures')
    for mode in MODES:
        for name in pictures:
            path = os.path.join(folder, mode, name)
            if not os.path.isfile(path):
                raise CheckFailed(f'{MODES[mode]}: no {name}')
            if _read(path) != _read(os.path.join(folder, 'single', name)):
                raise CheckFailed(f'{MODES[mode]}: {name} differs from the single process\'s')
    return len(pictures)


def _read(path):
    with open(path, 'rb') as stream:
        return stream.read()


def format_table(image_size, layers, num_images, seconds, merge, num_pictures, scans=None, threads=1, loads=None):
    """The result table from the wall seconds of each mode, the scan seconds (`run_three_ways`) and the load
    averages `(before, after)` (`os.getloadavg()`)."""
    layers = ','.join(layers) if layers else 'the example\'s default layers'
    lines = [
        f'{SCRIPT} on {num_images} tiles of {image_size}x{image_size}, {layers}; '
        f'os.cpu_count() = {os.cpu_count()}; TensorFlow on {threads} thread{"s" if threads != 1 else ""} per process '
        'or worker',
        'Statistic: wall time of one run of each, start of the processes to pictures written (start-up, graph, '
        'weights, scan, receptive fields, pictures).',
        '',
        f'{"mode":<42}{"wall s":>9}{"images/s":>10}{"x 1 process":>13}',
    ]
    for mode, label in MODES.items():
        lines.append(f'{label:<42}{seconds[mode]:>9.1f}{num_images / seconds[mode]:>10.2f}'
                     f'{seconds["single"] / seconds[mode]:>13.2f}')
    lines += ['', f'the merge (utils/merge_activations.py, in the 2-shard time) took {merge:.1f} s']
    if scans:
        speedup = scans['single'] / scans['shards']
        lines.append(f'scan alone (the scan: lines): 1 process {scans["single"]:.1f} s, 2 shards at once '
                     f'{scans["shards"]:.1f} s (the slower): {speedup:.2f} x, parallel efficiency '
                     f'{speedup / 2 * 100:.0f} %')
    if loads:
        lines.append('load average (1, 5, 15 min) before: {}, after: {}'.format(
            *(', '.join(f'{value:.2f}' for value in load) for load in loads)))
    lines.append(f'check: the three ways wrote byte-identical pictures ({num_pictures} files): OK')
    return '\n'.join(lines)


def benchmark(image_size=128, max_images=0, layers=None, threads=1):
    """Runs and checks the three ways (`layers`: a list of tensor names, None for the example's; `threads`:
    TensorFlow's per process or worker); returns the table as text."""
    flags = ['--image_size', image_size, '--max_images', max_images, '--no_recfield_cache']
    flags += ['--layers', ','.join(layers)] if layers else []
    num_images = len(images.load_photo_tiles(None, image_size, max_images)[1])
    logger.info('%s on %d tiles: %s', SCRIPT, num_images, ' '.join(map(str, flags)))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        seconds, merge, scans = run_three_ways(flags, folder, threads)
        num_pictures = check_same_pictures(folder)
    return format_table(image_size, layers, num_images, seconds, merge, num_pictures, scans, threads,
                        (load_before, os.getloadavg()))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--image_size', type=cli.positive_int, default=128, help='side of the VGG16 tiles')
    parser.add_argument('--max_images', type=cli.count_or_all, default=0, help='tiles to use; 0 or all for all')
    parser.add_argument('--layers', nargs='+', metavar='NAME',
                        help='tensor names of the layers to scan; None for the example\'s default layers')
    parser.add_argument('--threads', type=cli.positive_int, default=1,
                        help='TensorFlow threads of every process and Dask worker')
    return parser.parse_args(argv)


def main(argv=None):
    """Prints the three ways' wall times; raises CheckFailed when a run fails or their pictures differ."""
    args = parse_args(argv)
    cli.setup_logging('INFO')  # this script's own progress; the runs' logs are not shown
    print(benchmark(args.image_size, args.max_images, args.layers, args.threads), flush=True)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
