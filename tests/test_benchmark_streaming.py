"""Tests of utils/benchmarks/benchmark_streaming.py: a run on tiny photos, its photos, and how it measures a
run's memory."""

import logging
import os
import re
import threading

import cv2
import numpy as np
import pytest

from conftest import run_script
from utils.base import progress
from utils.base.prefetch import num_threads
from utils.benchmarks import benchmark_streaming
from utils.data import images

# Tiny sizes: batches of 2, so that shard 9 of 10 over 12 photos is their last batch.
TINY = dict(small=6, large=12, photo_size=(64, 48), keras_size=32, vgg16_size=32, throughput_photos=12,
            vgg16_photos=1, batch_size=2, runs_at_once=2)
TINY_FLAGS = ['--small', 6, '--large', 12, '--photo_size', 64, 48, '--keras_size', 32, '--vgg16_size', 32,
              '--throughput_photos', 12, '--vgg16_photos', 1, '--batch_size', 2, '--runs_at_once', 2]
THROUGHPUT_ROWS = ('listing 12 photos (open_dataset), ms', 'to the first batch, listing included, ms',
                   'decoding, 1 worker thread, images/s', 'forward pass alone on decoded batches, images/s',
                   'forward + top lists on decoded batches, images/s',
                   'scan (decoding overlaps the forward pass), images/s', 'decoding (', 'scan / min(decoding on ',
                   'scan / (decoding then forward, one after the other)')
# (run, photos, images scanned) of the memory table: each script over one batch of photos, the small folder and the
# large one; shard 9 of 10 scans the last batch; the VGG16 runs scan --max_images 64 tiles.
MEMORY_RUNS = [('keras_activations.py', 2, 2), ('keras_activations.py', 6, 6), ('keras_activations.py', 12, 12),
               ('keras_activations.py --num_shards 10 --shard_index 9', 12, 2),
               ('vgg16_activations.py --max_images 64', 2, 64), ('vgg16_activations.py --max_images 64', 6, 64),
               ('vgg16_activations.py --max_images 64', 12, 64)]


def check_table(table, runs=MEMORY_RUNS):
    """Asserts that a printed table has every row, with positive figures, the memory `runs` `(run, photos, images
    scanned)`, and the five goal lines."""
    assert 'photos 64x48 JPEG quality 90' in table and 'os.cpu_count() = ' in table
    assert re.search(r'^photos \(images\) timed +12 \(12\) +1 \(48\)$', table, re.MULTILINE)
    for label in THROUGHPUT_ROWS:
        rows = [line for line in table.splitlines() if line.startswith(label)]
        assert len(rows) == 1, label
        assert all(float(value) > 0 for value in rows[0].split()[-2:]), rows[0]
    rows = [line for line in table.splitlines() if line.startswith(('keras_activations.py', 'vgg16_activations.py'))]
    assert [(row[:56].strip(), int(row.split()[-8]), int(row.split()[-7])) for row in rows] == runs
    for row in rows:
        _, wall_s, cpu_s, peak_mb, times_small, _ = map(float, row.split()[-6:])
        assert wall_s > 0 and cpu_s > 0 and peak_mb > 0 and times_small > 0, row
    assert [float(rows[number].split()[-2]) for number in (1, 5)] == [1.0, 1.0]  # x small of the small runs
    assert [float(rows[number].split()[-1]) for number in (0, 4)] == [0.0, 0.0]  # MB over the runs on one batch
    busy = re.search(r'^cores busy \(CPU time / wall time\): decoding, forward, scan +(\S+) +(\S+)$', table,
                     re.MULTILINE)
    assert busy and all(float(value) > 0 for part in busy.groups() for value in part.split('/')), busy
    goals = re.findall(r'^goal: (.*): (met|missed)$', table, re.MULTILINE)
    assert [what.split(':')[0] for what, _ in goals] == [
        'keras_activations.py over 12 photos within 15% of its peak memory over 6',
        'keras_activations.py --num_shards 10 --shard_index 9 over 12 photos no bigger than keras_activations.py '
        'over 6 (within 1%, the noise of peak RSS)',
        'vgg16_activations.py --max_images 64 over 12 photos no bigger than over 6 (within 1%)',
        *(f'{name} scan at least 90% of the slower of decoding ({num_threads()} threads) and the forward pass'
          for name in ('keras', 'vgg16')),
    ]


# In this process, the scripts' runs stubbed (the test below runs them): a run in a subprocess takes 5 s, this
# one about 4 s of photos and timing, so it is left out of the quick loop too.
@pytest.mark.slow
def test_benchmark_prints_every_row_and_goal(tmp_path, monkeypatch):
    commands = []

    def run_measured(command):
        commands.append(command)
        photos = len(os.listdir(command[command.index('--images_dir') + 1]))
        return dict(wall_s=5.0, cpu_s=4.0, peak_mb=600.0 + photos, scan_images=photos, scan_s=0.1, probe_images=0)

    monkeypatch.setattr(benchmark_streaming, 'run_measured', run_measured)
    level = logging.getLogger().level
    table = benchmark_streaming.benchmark(work_dir=str(tmp_path), **TINY)
    check_table(table, [(run, photos, photos) for run, photos, _ in MEMORY_RUNS])
    assert 'keras_activations.py over 12 photos within 15% of its peak memory over 6: 612.0 MB against 606.0 MB, ' \
           '1.010 x (+6.0 MB): met' in table
    # Every run reads the receptive fields that this process stored, and prints only results.
    cache = str(tmp_path / 'recfield_cache')
    assert len(commands) == len(MEMORY_RUNS) and all(
        command[command.index('--recfield_cache') + 1] == cache and '--quiet' in command
               for command in commands)
    assert len(os.listdir(cache)) >= 2
    # The large folder holds the small one's photos (the same files) and more.
    small, large = (sorted(os.listdir(tmp_path / f'64x48-{count}')) for count in (6, 12))
    assert small == large[:6] and len(large) == 12
    assert os.path.samefile(tmp_path / '64x48-6' / small[0], tmp_path / '64x48-12' / small[0])
    # The scripts' flags (--quiet) turned bars and logging down in this process only while it ran.
    assert progress.enabled and logging.getLogger().level == level


@pytest.mark.slow
def test_script_prints_the_table():
    result = run_script('utils/benchmarks/benchmark_streaming.py', *TINY_FLAGS)
    assert result.returncode == 0, result.stderr
    check_table(result.stdout)


def test_help_says_what_it_measures(capsys):
    with pytest.raises(SystemExit, match='^0$'):
        benchmark_streaming.parse_args(['--help'])
    assert 'peak memory' in capsys.readouterr().out


def test_photos_are_seeded_jpegs_of_a_photograph_s_size(tmp_path):
    paths = benchmark_streaming.write_photos(tmp_path / 'a', 2, (640, 480), seed=3)
    assert [os.path.basename(path) for path in paths] == ['photo-00000.jpg', 'photo-00001.jpg']
    assert all(cv2.imread(str(path)).shape == (480, 640, 3) for path in paths)
    # Smooth fields with grain compress like a photograph: neither like noise (600 KB and more) nor flat colour.
    assert all(60_000 < os.path.getsize(path) < 250_000 for path in paths)
    again = benchmark_streaming.write_photos(tmp_path / 'b', 2, (640, 480), seed=3)
    assert [open(path, 'rb').read() for path in paths] == [open(path, 'rb').read() for path in again]
    assert open(paths[0], 'rb').read() != open(paths[1], 'rb').read()
    os.utime(paths[0], (0, 0))
    benchmark_streaming.write_photos(tmp_path / 'a', 3, (640, 480), seed=3)  # keeps the two, adds one
    assert os.path.getmtime(paths[0]) == 0 and len(os.listdir(tmp_path / 'a')) == 3


def test_link_folder_holds_exactly_the_paths(tmp_path):
    sources = [tmp_path / name for name in ('a.jpg', 'b.jpg')]
    for source in sources:
        source.write_bytes(b'photo')
    folder = tmp_path / 'linked'
    folder.mkdir()
    (folder / 'stale.jpg').write_bytes(b'old')
    benchmark_streaming.link_folder(str(folder), [str(source) for source in sources])
    assert sorted(os.listdir(folder)) == ['a.jpg', 'b.jpg']


def test_run_measured_reports_the_run_s_peak_not_this_process_s():
    # This process holds TensorFlow (hundreds of MB): a child started from it would report that much at least.
    result = benchmark_streaming.run_measured([
        '-c', 'import numpy; numpy.ones(200_000_000, numpy.uint8); print("receptive fields: 2 layers, 5 probe images, '
        '0.1 s"); print("scan: 7 images, 0.3 s")'])
    assert 200 < result['peak_mb'] < 300
    assert (result['scan_images'], result['scan_s'], result['probe_images']) == (7, 0.3, 5)
    assert result['wall_s'] > 0 and result['cpu_s'] > 0


def test_run_measured_and_memory_runs_refuse_what_they_cannot_measure():
    with pytest.raises(benchmark_streaming.CheckFailed, match=r'failed \(status 3\).*broken'):
        benchmark_streaming.run_measured(['-c', 'import sys; print("broken", file=sys.stderr); sys.exit(3)'])
    with pytest.raises(benchmark_streaming.CheckFailed, match='printed no scan line'):
        benchmark_streaming.run_measured(['-c', 'print("done")'])
    probed = ['-c', 'print("receptive fields: 3 layers, 10 probe images, 0.2 s"); print("scan: 1 images, 0.1 s")']
    with pytest.raises(benchmark_streaming.CheckFailed, match='run over 1 photos probed receptive fields'):
        benchmark_streaming.memory_runs([('run', 1, probed)])
    assert issubclass(benchmark_streaming.CheckFailed, ValueError)  # utils.running.cli.run_main prints it as `error:`


def test_decoding_threads_sets_the_worker_threads_of_the_image_reader(tmp_path):
    paths = benchmark_streaming.write_photos(tmp_path, 4, (64, 48))
    threads = set()

    def prepare(image):
        threads.add(threading.current_thread().name)
        return image

    with benchmark_streaming.decoding_threads(1):
        batches = list(images.decoded_batches(paths, prepare, 2))
    assert len(threads) == 1 and sum(len(batch) for batch, _ in batches) == 4
    np.testing.assert_array_equal(np.concatenate([indices for _, indices in batches]), np.arange(4))
