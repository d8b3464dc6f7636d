"""Tests of utils/benchmarks/benchmark_recfield.py: a run on a small input, its closed-form boxes and its check."""

import numpy as np
import pytest

from utils.benchmarks import benchmark_recfield
from utils.running import cli


@pytest.mark.slow  # seconds: left out of the quick loop
def test_main_measures_both_ways_and_checks_them(capsys):
    benchmark_recfield.main(['--size', '40', '--batch_size', '4'])
    out = capsys.readouterr().out
    # Every line 4 times (2 trials on grey, and from each end of the value range) x (40 rows + 40 columns).
    assert 'Row by row runs 320 probe images per layer' in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split() and line.split()[0] in benchmark_recfield.LAYERS}
    assert {name: row[1:5] for name, row in rows.items()} == {
        'conv2': ['20,20', '15,15', '2,2', '6,6'],
        'pool2': ['10,10', '19,19', '4,4', '6,6'],
        'conv3': ['10,10', '35,35', '4,4', '14,14'],
    }
    # conv2's boxes are small next to 40 pixels: multiplexed probes are fewer.
    assert int(rows['conv2'][6]) < 320 and float(rows['conv2'][7].rstrip('x')) > 1
    assert 'check: both ways gave identical boxes, equal to the closed-form ones: OK' in out


def test_help_says_what_it_measures(capsys):
    with pytest.raises(SystemExit, match='^0$'):
        benchmark_recfield.parse_args(['--help'])
    assert 'multiplexed' in capsys.readouterr().out


def test_closed_form_boxes_match_hand_computed_pool2():
    # conv1 5x5, pool1 3/2, conv2 5x5, pool2 3/2 (SAME) on 64 lines: the box of line m is [4m - 6, 4m + 13).
    boxes = benchmark_recfield.closed_form_boxes('pool2', 64)
    m = np.arange(16)
    np.testing.assert_array_equal(boxes[:, 0, 0], np.clip(4 * m - 6, 0, 64))
    np.testing.assert_array_equal(boxes[:, 0, 2], np.clip(4 * m + 13, 0, 64))
    np.testing.assert_array_equal(boxes[0, :, 1::2], boxes[:, 0, 0::2])  # columns as rows: a square input


def test_check_boxes_names_the_pixels_that_differ():
    expected = benchmark_recfield.closed_form_boxes('conv2', 24)
    benchmark_recfield.check_boxes('conv2', expected.copy(), expected, 'closed-form')
    measured = expected.copy()
    measured[3, 5, 2] -= 1  # a box one row short, as a masked probe would leave it
    message = r'closed-form ones at 1 feature pixels, e\.g\. \[3, 5\]: \[0, 4, 14, 19\] vs \[0, 4, 15, 19\]'
    with pytest.raises(benchmark_recfield.CheckFailed, match=message):
        benchmark_recfield.check_boxes('conv2', measured, expected, 'closed-form')
    with pytest.raises(benchmark_recfield.CheckFailed, match='row by row'):
        benchmark_recfield.check_boxes('conv2', measured[:-1], expected, 'row by row')


def test_boxes_off_the_closed_form_end_the_script_with_an_error(monkeypatch, capsys):
    # A closed form with a 3x3 conv2: the measured 5x5 boxes no longer match it.
    conv3x3 = dict(benchmark_recfield.CONV, kernel=3)
    monkeypatch.setitem(benchmark_recfield.LAYERS, 'conv2', ('conv2/conv2:0', [benchmark_recfield.CONV,
                                                                               benchmark_recfield.POOL, conv3x3]))
    assert cli.run_main(benchmark_recfield.main, ['--size', '24', '--batch_size', '4', '--layers', 'conv2']) == 2
    captured = capsys.readouterr()
    assert 'error: conv2: the multiplexed boxes differ from the closed-form ones at 144 feature pixels' in captured.err
    assert 'check:' not in captured.out
