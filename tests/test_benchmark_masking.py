"""Tests of utils/benchmarks/benchmark_masking.py: a small run for real, and its check failing."""

import numpy as np

from recfield import ReceptiveField
from utils.benchmarks import benchmark_masking
from utils.running import cli


def table_rows(text):
    """`{way: (networks wrong, pixels wrong, of)}` from the printed table."""
    rows = {}
    for line in text.splitlines():
        if line.startswith(('multiplexed', 'line by line')):
            label, numbers = line[:46].strip(), [int(value) for value in line[46:].split()]
            rows[label] = tuple(numbers)
    return rows


def test_a_small_run_counts_the_boxes_the_closed_form_disagrees_with(capsys):
    assert cli.run_main(benchmark_masking.main, ['--num_networks', '2', '--size', '16']) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert list(rows) == ['multiplexed, num_trials=2 (4 runs a probe)', 'multiplexed, num_trials=4 (6 runs a probe)',
                          'line by line, num_trials=2']
    assert all(of == 2 * 16 * 16 and networks <= 2 and pixels <= of for networks, pixels, of in rows.values())
    # Same boxes multiplexed and line by line: the same counts.
    assert rows['multiplexed, num_trials=2 (4 runs a probe)'] == rows['line by line, num_trials=2']
    assert out.rstrip().endswith('check: multiplexed and line-by-line boxes are the same for every network: OK')


def test_the_networks_are_the_same_every_run():
    session, forward_func, expected = benchmark_masking.build_network(3, 16)
    with session:
        batch = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
        first = forward_func(batch)[0]
    again_session, again, _ = benchmark_masking.build_network(3, 16)
    with again_session:
        np.testing.assert_array_equal(again(batch)[0], first)
    assert expected.shape == (16, 16, 4)


def test_multiplexed_boxes_other_than_line_by_line_end_the_script_with_an_error(monkeypatch, capsys):
    def shifted_when_multiplexed(*args, multiplex=True, **options):
        field = ReceptiveField(*args, multiplex=multiplex, **options)
        if multiplex:
            field.recfield = field.recfield + 1
        return field
    monkeypatch.setattr(benchmark_masking, 'ReceptiveField', shifted_when_multiplexed)
    assert cli.run_main(benchmark_masking.main, ['--num_networks', '1', '--size', '16']) == 2
    assert 'error: network 0: the multiplexed boxes differ from the line-by-line ones' in capsys.readouterr().err
