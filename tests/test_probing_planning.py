"""The plan of probes per axis (`utils.probing.planning`): which layers to multiplex or search by edges, block
probes, band factors and the cost of an edge search."""

import numpy as np
import pytest

from utils.probing.planning import band_factors, block_probes, plan_axis, search_cost


def test_the_plan_searches_layers_whose_boxes_cover_the_image_and_multiplexes_small_ones():
    length = 128
    # VGG16 at 128: periods from one middle-line probe for conv1_2 ... conv5_3.
    periods, num_lines = [6, 18, 44, 104, 144], [128, 64, 32, 16, 8]
    period, searched = plan_axis(length, periods, num_lines)
    assert period == 44 and searched == [3, 4]
    assert plan_axis(length, [145], [8]) == (None, [0])
    assert plan_axis(length, [7], [128]) == (7, [])
    assert plan_axis(8, [9, 9], [8, 8]) == (None, [])  # a tiny image: line by line is cheapest
    # Costs are probe images: a line-by-line probe runs on every reference, an edge-search probe on one (and
    # one per distinct edge on the others). A field larger than the image on 48 feature lines: its 46 distinct
    # edges cost about 240 images, a line-by-line pass 4 x 96; with one run a probe, line by line (96) is cheaper.
    assert plan_axis(96, [100], [48]) == (None, [0])
    assert plan_axis(96, [100], [48], runs=1) == (None, [])


@pytest.mark.parametrize('ratio, factors', [(2.6, [3]), (4, [4]), (6.7, [3, 3]), (27, [3, 3, 3]), (32, [3, 3, 4])])
def test_band_levels_are_the_fewest_probes_that_span_the_image(ratio, factors):
    assert band_factors(ratio) == factors


def test_block_probes_are_prefix_and_suffix_halves_where_they_are_fewer_else_bands():
    blocks, probes = block_probes(40, 25)  # 2 blocks: one prefix and one suffix, against 3 bands
    assert blocks == ('halves', 2)
    np.testing.assert_array_equal(probes[0], np.arange(25))
    np.testing.assert_array_equal(probes[1], np.arange(25, 40))
    blocks, probes = block_probes(12, 4)  # 3 blocks: 4 halves, against 3 bands of 4 lines
    assert blocks == ('bands', [3])
    assert [probe.tolist() for probe in probes] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_search_cost_is_a_bisection_and_probes_per_distinct_edge():
    # VGG16 conv5_3 at 128 (8 feature lines of stride 16, period 144): 4 lines clipped at each border, so 8
    # distinct edges; a bisection of 7 levels, 2 probes more, and per edge 2 probes and a confirmation per other run.
    assert search_cost(128, 144, 8, runs=4) == 7 + 2 + 8 * (2 + 3)
    assert search_cost(128, 144, 8, runs=1) == 7 + 2 + 8 * 2
