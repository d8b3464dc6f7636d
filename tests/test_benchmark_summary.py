"""Tests of utils/benchmarks/benchmark_summary.py: the large-image part for real on a small image, the parts in
order."""

import pytest

from utils.benchmarks import benchmark_recfield, benchmark_summary
from utils.running import cli


def test_large_image_fields_are_measured_and_checked_against_the_closed_form():
    lines = benchmark_summary.large_image_fields(size=48, batch_size=4).splitlines()
    assert [line.split(' on ')[0] for line in lines] == ['VGG16 conv2_2 (receptive field 14, stride 2)',
                                                         'CIFAR-10 conv2 (receptive field 15, stride 2)']
    for line in lines:
        probes = int(line.split(': ')[1].split()[0])
        assert 0 < probes < 4 * (48 + 48) and 'line by line would take 384' in line
        assert line.endswith('check: boxes equal the closed-form ones: OK')


def test_boxes_other_than_the_closed_form_end_the_script_with_an_error(monkeypatch, capsys):
    closed_form = benchmark_recfield.closed_form_boxes
    monkeypatch.setattr(benchmark_recfield, 'closed_form_boxes', lambda name, size: closed_form(name, size) + 1)
    title, _ = benchmark_summary.PARTS['large_image']
    monkeypatch.setitem(benchmark_summary.PARTS, 'large_image',
                        (title, lambda: benchmark_summary.large_image_field(size=48, batch_size=4)))
    assert cli.run_main(benchmark_summary.main, ['--parts', 'large_image']) == 2
    assert 'error: conv2: the multiplexed boxes differ from the closed-form ones' in capsys.readouterr().err


def test_main_prints_every_part_in_order(monkeypatch, capsys):
    monkeypatch.setattr(benchmark_summary, 'PARTS', {name: (title, lambda name=name: f'table of {name}')
                                                     for name, (title, _) in benchmark_summary.PARTS.items()})
    benchmark_summary.main([])
    out = capsys.readouterr().out
    titles = [line for line in out.splitlines() if line.startswith('== ')]
    assert titles == ['== 1. Receptive fields: VGG16 at 128x128', '== 2. Receptive fields of 14 and 15 on 512x512',
                      "== 3. The scan's bookkeeping", '== 4. Shards and Dask workers, one thread each',
                      '== 5. How often the masking guard misses', '== 6. Streaming image folders']
    assert [line for line in out.splitlines() if line.startswith('table of')] == [
        'table of vgg16_recfield', 'table of large_image', 'table of scan', 'table of shards', 'table of masking',
        'table of streaming']


def test_help_names_the_parts(capsys):
    with pytest.raises(SystemExit, match='^0$'):
        benchmark_summary.parse_args(['--help'])
    assert 'large_image' in capsys.readouterr().out
