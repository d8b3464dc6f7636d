"""What sharding buys on this machine: the VGG16 example in one process, as 2 shards merged, and on Dask.

    python utils/benchmark_shards.py          # the example's 360 tiles of 128x128, 5 layers: about 4 minutes
    python utils/benchmark_shards.py --help

Runs `vgg16_activations.py` on the same tiles three ways, one after the other: (1) one process; (2) the 2
shards of `--num_shards 2` as two processes at once, then `utils/merge_activations.py`; (3) `--dask_scheduler
local --dask_workers 2 --num_shards 2`. The statistic is the wall time of one run of each, from starting the
processes to the pictures written, so it includes what every process pays once (Python, TensorFlow, the
graph, the weights, a Dask cluster) and the receptive fields. Unless the three ways write byte-identical
pictures, it ends with an `error:` line and exit status 2.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import glob  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from utils import cli, images  # noqa: E402

logger = logging.getLogger('benchmark_shards')

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


def run_together(commands):
    """Starts Python scripts of the repository at once (argument lists) and waits for all; returns the seconds.

    Raises:
        CheckFailed: a script failed (the message has its last error line).
    """
    start = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, *map(str, command)], cwd=REPO, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for command in commands]
    outcomes = [(command, process.communicate()[1], process.returncode)
                for command, process in zip(commands, processes)]
    for command, stderr, status in outcomes:
        if status:
            raise CheckFailed(f'{" ".join(map(str, command))} failed: {stderr.strip().splitlines()[-1:]}')
    return time.perf_counter() - start


def run_three_ways(flags, folder):
    """Runs the example the three ways, writing pictures to `folder/<mode>`.

    Returns:
        `({mode: wall seconds}, seconds of the merge alone)`.
    """
    seconds = {}
    logger.info('one process')
    seconds['single'] = run_together([[SCRIPT, *flags, '--out_dir', os.path.join(folder, 'single')]])
    logger.info('2 shards at once, then the merge')
    states = os.path.join(folder, 'states')
    scan = run_together([[SCRIPT, *flags, '--num_shards', 2, '--shard_index', index, '--out_dir', states]
                         for index in range(2)])
    merge = run_together([[os.path.join('utils', 'merge_activations.py'), '--out_dir', os.path.join(folder, 'shards'),
                           '--states', *sorted(glob.glob(os.path.join(states, 'state-*.npz')))]])
    seconds['shards'] = scan + merge
    logger.info('Dask LocalCluster')
    seconds['dask'] = run_together([[SCRIPT, *flags, '--dask_scheduler', 'local', '--dask_workers', 2,
                                     '--num_shards', 2, '--out_dir', os.path.join(folder, 'dask')]])
    return seconds, merge


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


def format_table(image_size, layers, num_images, seconds, merge, num_pictures):
    """The result table from the wall seconds of each mode."""
    layers = ','.join(layers) if layers else 'the example\'s default layers'
    lines = [
        f'{SCRIPT} on {num_images} tiles of {image_size}x{image_size}, {layers}; '
        f'os.cpu_count() = {os.cpu_count()}',
        'Statistic: wall time of one run of each, start of the processes to pictures written (start-up, graph, '
        'weights, scan, receptive fields, pictures).',
        '',
        f'{"mode":<42}{"wall s":>9}{"images/s":>10}{"x 1 process":>13}',
    ]
    for mode, label in MODES.items():
        lines.append(f'{label:<42}{seconds[mode]:>9.1f}{num_images / seconds[mode]:>10.2f}'
                     f'{seconds["single"] / seconds[mode]:>13.2f}')
    lines += ['',
              f'the merge (utils/merge_activations.py, in the 2-shard time) took {merge:.1f} s',
              f'check: the three ways wrote byte-identical pictures ({num_pictures} files): OK']
    return '\n'.join(lines)


def benchmark(image_size=128, max_images=0, layers=None):
    """Runs and checks the three ways (`layers`: a list of tensor names, None for the example's); returns the table
    as text."""
    flags = ['--image_size', image_size, '--max_images', max_images]
    flags += ['--layers', ','.join(layers)] if layers else []
    num_images = len(images.load_photo_tiles(None, image_size, max_images)[2])
    logger.info('%s on %d tiles: %s', SCRIPT, num_images, ' '.join(map(str, flags)))
    with tempfile.TemporaryDirectory() as folder:
        seconds, merge = run_three_ways(flags, folder)
        num_pictures = check_same_pictures(folder)
    return format_table(image_size, layers, num_images, seconds, merge, num_pictures)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--image_size', type=cli.positive_int, default=128, help='side of the VGG16 tiles')
    parser.add_argument('--max_images', type=cli.count_or_all, default=0, help='tiles to use; 0 or all for all')
    parser.add_argument('--layers', nargs='+', metavar='NAME',
                        help='tensor names of the layers to scan; None for the example\'s default layers')
    return parser.parse_args(argv)


def main(argv=None):
    """Prints the three ways' wall times; raises CheckFailed when a run fails or their pictures differ."""
    args = parse_args(argv)
    cli.setup_logging('INFO')  # this script's own progress; the runs' logs are not shown
    print(benchmark(args.image_size, args.max_images, args.layers), flush=True)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
