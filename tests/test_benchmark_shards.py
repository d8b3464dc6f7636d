"""Tests of utils/benchmarks/benchmark_shards.py: a run on a few small tiles (slow), and its checks."""

import pytest

from utils.benchmarks import benchmark_shards


@pytest.mark.slow
def test_main_times_the_three_ways_and_checks_their_pictures(capsys):
    benchmark_shards.main(['--max_images', '8', '--image_size', '64', '--layers', 'vgg_16/conv1/conv1_2/Relu:0'])
    out = capsys.readouterr().out
    assert 'on 8 tiles of 64x64' in out and 'os.cpu_count() = ' in out
    rows = [line for line in out.splitlines() if line.startswith(tuple(benchmark_shards.MODES.values()))]
    assert len(rows) == 3 and rows[0].split()[-1] == '1.00'
    assert 'byte-identical pictures (2 files): OK' in out


def test_help_says_what_it_measures(capsys):
    with pytest.raises(SystemExit, match='^0$'):
        benchmark_shards.parse_args(['--help'])
    assert 'Dask' in capsys.readouterr().out


def write_pictures(folder, contents):
    """Writes `{mode: {file name: bytes}}` as the three ways' picture folders under `folder`."""
    for mode, pictures in contents.items():
        (folder / mode).mkdir(parents=True)
        for name, data in pictures.items():
            (folder / mode / name).write_bytes(data)


def test_check_same_pictures_counts_them_and_names_a_difference(tmp_path):
    same = {'conv1-full.jpg': b'full', 'conv1-crop.jpg': b'crop'}
    write_pictures(tmp_path / 'equal', {mode: same for mode in benchmark_shards.MODES})
    assert benchmark_shards.check_same_pictures(tmp_path / 'equal') == 2
    write_pictures(tmp_path / 'other', {'single': same, 'shards': same, 'dask': {**same, 'conv1-crop.jpg': b'x'}})
    with pytest.raises(benchmark_shards.CheckFailed, match='Dask LocalCluster.*conv1-crop.jpg differs'):
        benchmark_shards.check_same_pictures(tmp_path / 'other')
    write_pictures(tmp_path / 'missing', {'single': same, 'shards': {}, 'dask': same})
    with pytest.raises(benchmark_shards.CheckFailed, match='2 local shards.*no conv1-crop.jpg'):
        benchmark_shards.check_same_pictures(tmp_path / 'missing')


def test_run_together_reports_a_failing_script(tmp_path):
    with pytest.raises(benchmark_shards.CheckFailed, match='merge_activations.py.*failed.*no-such-state.npz'):
        benchmark_shards.run_together([['utils/merge_activations.py', '--states', tmp_path / 'no-such-state.npz',
                                        '--out_dir', tmp_path / 'pictures']])
