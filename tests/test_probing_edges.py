"""The edge search (`utils.probing.edges`) against exact answers: regular fields, irregular edges, empty boxes,
contradictions, and confirmation on the other references."""

import numpy as np
import pytest

from probing_fixtures import boxes_of
from utils.probing.edges import EdgeSearch, edge_lines
from utils.probing.geometry import COLUMNS, ROWS


def search_simulated(starts, stops, length, axis=ROWS):
    """Runs an `EdgeSearch` against exact answers for boxes `[starts, stops)` (int arrays `[feat_h, feat_w]`);
    returns the search and the number of probes it asked for."""
    search = EdgeSearch(axis, length, starts.shape, layer=0)

    def answer(lines):
        lit = np.zeros(length + 1, np.int64)
        lit[1:] = np.cumsum(np.isin(np.arange(length), lines))
        return lit[stops] - lit[starts] > 0  # some lit line inside each box

    search.observe(np.arange(length), answer(np.arange(length)))
    num_probes = 1
    while thresholds := search.thresholds():
        for kind, threshold in sorted(thresholds):
            search.observe(edge_lines(kind, threshold, length), answer(edge_lines(kind, threshold, length)))
        num_probes += len(thresholds)
    return search, num_probes


@pytest.mark.parametrize('length, num_lines, size, stride, padding', [
    (128, 8, 196, 16, 90),    # VGG16 conv5_3 at 128: three distinct starts, three stops
    (128, 16, 92, 8, 42),     # conv4_3
    (128, 32, 40, 4, 18),     # conv3_3: many distinct edges, still exact
    (61, 4, 85, 16, 40),      # odd size, boxes longer than the image
    (40, 19, 11, 2, 4),       # VALID stride 2 then SAME: the last boxes stop short of the border
    (30, 30, 1, 1, 0),        # 1x1 boxes
])
@pytest.mark.parametrize('axis', [ROWS, COLUMNS])
def test_edge_search_finds_every_box_of_a_regular_field(length, num_lines, size, stride, padding, axis):
    starts, stops = boxes_of(length, num_lines, size, stride, padding, axis=axis)
    search, num_probes = search_simulated(starts, stops, length, axis)
    assert not search.failed
    found_starts, found_stops = search.extents()
    np.testing.assert_array_equal(found_starts, starts)
    np.testing.assert_array_equal(found_stops, stops)
    distinct_edges = len(np.unique(starts)) + len(np.unique(stops))
    assert num_probes <= 2 + 2 * np.ceil(np.log2(length)) + 2 * distinct_edges


def test_edge_search_cost_grows_with_distinct_edges_not_with_the_image():
    """conv5_3's geometry at 128 and 1024 pixels with the same number of feature lines per box."""
    _, small = search_simulated(*boxes_of(128, 8, 196, 16, 90), 128)
    _, large = search_simulated(*boxes_of(1024, 8, 1568, 128, 720), 1024)
    assert large <= small + 2 * 3  # a bisection three levels deeper, nothing more


def test_edge_search_is_exact_on_irregular_edges(rng):
    """Edges that follow no rule (dilated taps near the border, unaligned branches, boxes that differ across
    the other axis) cost more probes but come out exact."""
    length = 50
    starts = np.sort(rng.integers(0, 30, (12, 5)), axis=0)
    stops = starts + rng.integers(1, 21, (12, 5))
    search, _ = search_simulated(starts, stops, length)
    assert not search.failed
    found_starts, found_stops = search.extents()
    np.testing.assert_array_equal(found_starts, starts)
    np.testing.assert_array_equal(found_stops, stops)


def test_edge_search_gives_empty_boxes_to_pixels_that_nothing_changes():
    starts, stops = boxes_of(32, 8, 12, 4, 4)
    starts[2], stops[2] = 0, 0  # a dead feature line
    search, _ = search_simulated(starts, stops, 32)
    found_starts, found_stops = search.extents()
    np.testing.assert_array_equal(found_starts, starts)
    np.testing.assert_array_equal(found_stops, stops)


def test_contradicting_observations_fail_the_search():
    search = EdgeSearch(ROWS, 20, (4, 2), layer=0)
    search.observe(np.arange(20), np.ones((4, 2), bool))
    search.observe(np.arange(10), np.zeros((4, 2), bool))  # every box starts at 10 or later ...
    assert not search.failed
    search.observe(np.array([3]), np.ones((4, 2), bool))  # ... yet line 3 changes them all
    assert search.failed and not search.thresholds()


def test_edge_search_confirms_on_every_reference_what_grey_ones_left_unchanged():
    """Grey references that miss each box's first and last line (units dead at grey) mislead the search; the
    confirmation on the other references catches every such edge and the search ends exact, on all of them."""
    length = 64
    starts, stops = boxes_of(length, 8, 40, 8, 12)
    search = EdgeSearch(ROWS, length, starts.shape, layer=0)
    search.full = False

    def answer(lines, first, last):
        lit = np.zeros(length + 1, np.int64)
        lit[1:] = np.cumsum(np.isin(np.arange(length), lines))
        return lit[last] - lit[first] > 0

    truth = lambda lines: answer(lines, starts, stops)  # noqa: E731
    grey = lambda lines: answer(lines, np.minimum(starts + 1, stops), np.maximum(stops - 1, starts + 1))  # noqa: E731
    search.observe(np.arange(length), truth(np.arange(length)))
    confirmations = 0
    for _ in range(200):
        if thresholds := search.thresholds():
            for kind, t in sorted(thresholds):
                lines = edge_lines(kind, t, length)
                search.observe(lines, truth(lines) if search.full else grey(lines), confirmed=search.full)
        elif unconfirmed := search.unconfirmed():
            for kind, t in sorted(unconfirmed):
                search.confirm(kind, t, truth(edge_lines(kind, t, length)))
                confirmations += 1
        else:
            break
    assert confirmations and search.full and not search.failed
    found_starts, found_stops = search.extents()
    np.testing.assert_array_equal(found_starts, starts)
    np.testing.assert_array_equal(found_stops, stops)
