"""Size, stride and padding from boxes, the hull of single-line probes, and the channels-first check
(`utils.probing.geometry`), on boxes built from the closed form."""

import numpy as np

from probing_fixtures import boxes_of
from utils.probing.geometry import COLUMNS, ROWS, geometry, hull, transposed


def field_of(height, width, rows, columns):
    """Boxes `[feat_h, feat_w, 4]` of a regular field: `rows` and `columns` are `(num_lines, size, stride, padding)`."""
    y1, y2 = boxes_of(height, *rows, other=columns[0], axis=ROWS)
    x1, x2 = boxes_of(width, *columns, other=rows[0], axis=COLUMNS)
    return np.stack([y1, x1, y2, x2], axis=-1)


def test_geometry_of_a_clipped_box_grid_is_the_closed_form():
    # Rows: 7 lines long, stride 2, padding 3 on 32; columns: 5, stride 1, padding 2 on 20. The border boxes are
    # clipped, and the geometry comes from the edges that nothing clips.
    boxes = field_of(32, 20, (16, 7, 2, 3), (20, 5, 1, 2))
    assert boxes[0, 0].tolist() == [0, 0, 4, 3]  # clipped at the top and at the left
    assert geometry(boxes) == ((7, 5), (2, 1), (3, 2))


def test_geometry_is_none_where_every_box_covers_the_image_or_boxes_differ_across_the_other_axis():
    whole = np.tile(np.array([0, 0, 10, 10]), (4, 4, 1))
    assert geometry(whole) == (None, None, None)
    boxes = field_of(32, 20, (16, 7, 2, 3), (20, 5, 1, 2))
    boxes[:, 5, 2] += 1  # one feature column's boxes reach a row further: no single rule along the rows
    assert geometry(boxes) == (None, None, None)


def test_geometry_of_a_dilated_border_comes_from_the_interior():
    # Irregular edges near the border (dilated taps skip lines), a regular run of 6 lines in the middle.
    starts = np.array([0, 0, 1, 3, 5, 7, 9, 11, 14, 16])
    stops = starts + 6
    stops[-2:] = [18, 18]
    boxes = np.stack(np.broadcast_arrays(starts[:, None], starts[None, :], stops[:, None], stops[None, :]), axis=-1)
    size, stride, padding = geometry(boxes)
    assert (size, stride, padding) == ((6, 6), (2, 2), (3, 3))


def test_hull_spans_the_lines_whose_probes_changed_a_pixel():
    changed = np.zeros((6, 1, 3), bool)  # one probe per line, three feature pixels
    changed[[1, 3], 0, 0] = True  # a dilated tap: lines 1 and 3, not 2
    changed[5, 0, 1] = True
    start, stop = hull(changed)  # the third pixel: nothing changes it, an empty extent
    assert start.tolist() == [[1, 5, 0]] and stop.tolist() == [[4, 6, 0]]


def test_boxes_that_move_down_the_image_with_the_feature_column_are_transposed():
    boxes = field_of(16, 16, (8, 3, 2, 1), (8, 3, 2, 1))
    assert not transposed(boxes)
    # What a channels-first map read channels-last gives: the "columns" are the real rows, the "rows" channels.
    read_wrongly = np.broadcast_to(boxes[:, :1].transpose(1, 0, 2), (6, 8, 4))
    assert transposed(read_wrongly)
    assert not transposed(boxes[:1])  # one feature row: nothing to tell
