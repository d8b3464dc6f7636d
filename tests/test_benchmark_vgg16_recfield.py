"""Tests of utils/benchmarks/benchmark_vgg16_recfield.py: a run at 32 pixels on two shallow layers, and its check."""

import numpy as np
import pytest

from recfield import ReceptiveField
from utils.benchmarks import benchmark_vgg16_recfield
from utils.examples import vgg16
from utils.running import cli

CONV1_2, CONV2_2, CONV3_3 = (vgg16.relu_tensor_name(block, index) for block, index in ((1, 2), (2, 2), (3, 3)))


def table_rows(out, label):
    """The words after `label` of each printed line that starts with it, in order."""
    return [line[len(label):].split() for line in out.splitlines() if line.startswith(label)]


@pytest.mark.slow  # seconds: left out of the quick loop
def test_main_measures_every_way_and_checks_them(capsys):
    benchmark_vgg16_recfield.main(['--image_size', '32', '--batch_size', '8', '--layers', f'{CONV1_2},{CONV2_2}',
                                   '--single_layer', CONV3_3])
    out = capsys.readouterr().out
    assert 'VGG16 receptive fields on 32x32x3 input, probe batch 8' in out
    # feature, size, stride, padding (VGG16's published geometry)
    [conv1_2], [conv2_2] = table_rows(out, CONV1_2), table_rows(out, CONV2_2)
    assert conv1_2 == ['32,32', '5,5', '1,1', '2,2'] and conv2_2 == ['16,16', '14,14', '2,2', '6,6']
    # Per way: probe images, seconds, and both against (a); first the two layers, then conv3_3 alone.
    (line_by_line, single_line_by_line), (now, single_now) = (
        [[float(word) for word in row[-4:]] for row in table_rows(out, way)] for way in ('(a)', '(b)'))
    [without_extremes] = [[float(word) for word in row[-4:]] for row in table_rows(out, '(c)')]
    # Line by line: every row and column, four runs each (two grey references, two extreme ones).
    assert line_by_line[0] == single_line_by_line[0] == 4 * (32 + 32) and line_by_line[2:] == [1, 1]
    assert without_extremes[0] < now[0] < line_by_line[0] and now[2] == round(now[0] / line_by_line[0], 2)
    # conv3_3's field (40) is larger than the 32-pixel image: the edge search needs a fraction of the probes.
    assert f'{CONV3_3} alone' in out and single_now[0] < line_by_line[0] / 2
    assert 'check: all ways gave identical boxes for every layer: OK' in out


def test_check_same_boxes_names_the_way_and_the_pixels_that_differ():
    boxes = np.array([[[0, 0, 3, 3], [0, 0, 3, 4]]])
    field = ReceptiveField.from_arrays(boxes, (4, 4))
    benchmark_vgg16_recfield.check_same_boxes('conv', {'(a)': field, '(b)': field, '(c)': field})
    other = ReceptiveField.from_arrays(boxes + [0, 0, 0, -1], (4, 4))
    message = (r'conv: \(c\) gave other boxes than \(a\) at 2 feature pixels, '
               r'e\.g\. \[0, 0\]: \[0, 0, 3, 2\] vs \[0, 0, 3, 3\]')
    with pytest.raises(benchmark_vgg16_recfield.CheckFailed, match=message):
        benchmark_vgg16_recfield.check_same_boxes('conv', {'(a)': field, '(b)': field, '(c)': other})
    smaller = ReceptiveField.from_arrays(boxes[:, :1], (4, 4))
    message = r'conv: \(b\) gave \(1, 1, 4\) boxes, \(a\) \(1, 2, 4\)'
    with pytest.raises(benchmark_vgg16_recfield.CheckFailed, match=message):
        benchmark_vgg16_recfield.check_same_boxes('conv', {'(a)': field, '(b)': smaller})


def test_boxes_that_differ_end_the_script_with_an_error(monkeypatch, capsys):
    measure = benchmark_vgg16_recfield.measure_receptive_fields

    def one_box_short_without_extremes(*args, extreme_references=True, **kwargs):
        fields = measure(*args, extreme_references=extreme_references, **kwargs)
        if not extreme_references:  # way (c): a box one column short, as a missed unit would leave it
            fields[0].recfield[2, 3, 3] -= 1
        return fields
    monkeypatch.setattr(benchmark_vgg16_recfield, 'measure_receptive_fields', one_box_short_without_extremes)
    argv = ['--image_size', '32', '--batch_size', '8', '--layers', CONV1_2, '--single_layer', CONV1_2]
    assert cli.run_main(benchmark_vgg16_recfield.main, argv) == 2
    captured = capsys.readouterr()
    assert f'error: {CONV1_2}: (c) gave other boxes than (a) at 1 feature pixels, e.g. [2, 3]: [0, 1, 5, 5] vs ' \
           '[0, 1, 5, 6]' in captured.err
    assert 'check:' not in captured.out


def test_help_says_what_it_compares(capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark_vgg16_recfield.main(['--help'])
    help_text = capsys.readouterr().out
    assert exit_info.value.code == 0 and 'extreme references' in help_text and '--single_layer' in help_text
