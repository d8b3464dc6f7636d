"""The prober (`utils.probing.prober`): its options, and what it runs and measures on a forward pass of known
field (a 3x3 box filter)."""

import dataclasses

import numpy as np
import pytest

from utils.probing.geometry import COLUMNS, ROWS
from utils.probing.prober import ProbeOptions, Prober, check_imshape


def box_filter(batch):
    """A 3x3 box filter: a deterministic forward pass of known field."""
    padded = np.pad(batch.sum(axis=-1), ((0, 0), (1, 1), (1, 1)))
    return sum(padded[:, dy:dy + batch.shape[1], dx:dx + batch.shape[2]]
               for dy in range(3) for dx in range(3))[..., None]


def test_options_have_the_public_defaults_and_are_kept_as_checked():
    options = ProbeOptions()
    assert (options.value_range, options.num_trials, options.multiplex, options.tolerance, options.seed,
            options.extreme_references, options.full_batches) == ((-1.0, 1.0), 2, True, None, 0, True, True)
    options = ProbeOptions(value_range=[0, 255], tolerance=1)
    assert options.value_range == (0.0, 255.0) and options.tolerance == 1.0 and isinstance(options.tolerance, float)
    assert options == ProbeOptions(value_range=(0.0, 255.0), tolerance=1.0) and hash(options)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.seed = 3


@pytest.mark.parametrize('options, words', [
    ({'value_range': (1.0, 1.0)}, r'value_range must be \(low, high\) with high > low, got \(1.0, 1.0\)'),
    ({'num_trials': 0}, 'num_trials must be a whole number, at least 1, got 0'),
    ({'num_trials': 1.5}, 'num_trials must be a whole number, at least 1, got 1.5'),
    ({'tolerance': -1}, r'tolerance must be None \(automatic\) or 0 or more \(how far a value may move unnoticed\), '
                        'got -1'),
])
def test_bad_options_are_refused(options, words):
    with pytest.raises(ValueError, match=words):
        ProbeOptions(**options)


def test_check_imshape():
    assert check_imshape([2, 8.0, 8, 1]) == (2, 8, 8, 1)
    with pytest.raises(ValueError, match=r'imshape \[2, None, 8, 1\]: height is None; every dimension'):
        check_imshape([2, None, 8, 1])


def test_a_lit_row_changes_the_feature_rows_whose_boxes_hold_it_under_every_reference():
    prober = Prober([2, 8, 8, 1], box_filter, None, ProbeOptions())
    assert prober.feature_shapes == [(8, 8)] and prober.num_probe_images == 0
    [changed] = prober.run([(ROWS, [3]), (COLUMNS, [0])])
    assert changed.shape == (2, 8, 8)
    assert changed[0].any(axis=1).tolist() == [False, False, True, True, True, False, False, False]
    assert changed[0].all(axis=1)[2:5].all()
    assert changed[1].any(axis=0).tolist() == [True, True] + [False] * 6
    # Two probes on four references: grey up and down, and from each end of the value range.
    assert prober.num_probe_images == 2 * 4
    prober.run([(ROWS, [3])], trials=[0])
    assert prober.num_probe_images == 2 * 4 + 1


@pytest.mark.parametrize('multiplex', [True, False])
def test_measure_gives_the_box_filters_boxes(multiplex):
    prober = Prober([2, 8, 8, 1], box_filter, None, ProbeOptions(multiplex=multiplex))
    [boxes], mixes_batch = prober.measure()
    lines = np.arange(8)
    start, stop = np.maximum(lines - 1, 0), np.minimum(lines + 2, 8)
    expected = np.stack(np.broadcast_arrays(start[:, None], start[None, :], stop[:, None], stop[None, :]), axis=-1)
    np.testing.assert_array_equal(boxes, expected)
    assert mixes_batch == [False]
    if not multiplex:
        assert prober.num_probe_images == 4 * (8 + 8)  # every line on every reference


def test_layer_names_for_warnings():
    assert Prober([2, 8, 8, 1], box_filter, None, ProbeOptions()).layer_name(0) == 'the layer'
    both = lambda batch: [box_filter(batch), box_filter(batch)]  # noqa: E731
    assert Prober([2, 8, 8, 1], both, 2, ProbeOptions()).layer_name(1) == 'layer 1 of forward_func'
    assert Prober([2, 8, 8, 1], both, 2, ProbeOptions(), layer_names=['a', 'b']).layer_name(1) == 'b'


def test_a_map_whose_size_changes_between_calls_is_refused():
    sizes = iter([8] * 3 + [4] * 100)

    def shrinking(batch):
        return box_filter(batch)[:, :next(sizes)]
    with pytest.raises(ValueError, match=r'feature maps of size \(4, 8\), earlier \(8, 8\); the forward pass must '
                                         'not change between calls'):
        Prober([2, 8, 8, 1], shrinking, None, ProbeOptions()).measure()
