"""Tests of `activations.py`: TopActivations (all channels of a layer), Activations (one channel), and the top lists
of distinct places chosen from a tracker's candidates (`distinct_top`).

Everything is checked against a brute-force reference written independently of the implementation (plain
Python loops and sorts), on small numpy data: random maps, and the box-filter network on tiles of photographs
(`shard_fixtures.TILED_EXAMPLE`); no TensorFlow is needed.
"""

import os

import numpy as np
import pytest

from conftest import arrays_read, grid_field, set_zip_directory_field, write_npz_with_a_lying_header
from activations import Activations, TopActivations, distinct_top
from recfield import ReceptiveField
from shard_fixtures import box_filter_args, open_box_filter_model, open_tiled_dataset
from utils.core import pipeline

NUM_IMAGES, IMAGE_SIZE = 40, 12
FEAT_H, FEAT_W, CHANNELS = 5, 6, 7
BATCHES = (7, 1, 13, 2, 17)  # uneven batch sizes, 40 images in all


# -- reference -------------------------------------------------------------------------------------------

def first_argmax(feature_map):
    """(firing, (y, x)) of a 2-D map: its maximum and the first position holding it, row-major."""
    best, where = None, None
    for y in range(feature_map.shape[0]):
        for x in range(feature_map.shape[1]):
            if best is None or feature_map[y, x] > best:
                best, where = feature_map[y, x], (y, x)
    return float(best), where


def brute_force(features, num_samples, indices=None, lowest=False):
    """(firings [C, n], coords [C, n, 2], indices [C, n]) computed the slow, obvious way.

    Each image's firing is its map's maximum; the kept images are the first `num_samples` after sorting by
    (-firing, global index), or by (firing, global index) for the `lowest` firings (the coordinates are still those
    of each map's maximum).
    """
    features = np.asarray(features)
    num_images, _, _, num_channels = features.shape
    indices = list(range(num_images)) if indices is None else [int(i) for i in indices]
    firings, coords, kept = [], [], []
    for channel in range(num_channels):
        scored = [first_argmax(features[i, :, :, channel]) + (indices[i],) for i in range(num_images)]
        scored.sort(key=lambda item: (item[0] if lowest else -item[0], item[2]))
        scored = scored[:num_samples]
        firings.append([item[0] for item in scored])
        coords.append([item[1] for item in scored])
        kept.append([item[2] for item in scored])
    return (np.array(firings, np.float64), np.array(coords, np.int64).reshape(num_channels, -1, 2),
            np.array(kept, np.int64))


def make_data(kind, seed=0, num_images=NUM_IMAGES, channels=CHANNELS):
    """Random uint8 images `[n, 12, 12, 3]` and float32 features `[n, 5, 6, channels]`.

    kind: 'quantised' (values 0..3: many equal firings across images and equal maxima inside a map),
    'continuous' (no ties), 'negative' (all values negative, so a tracker that starts from zeros would be
    wrong), or 'constant' (every map is constant: every firing ties, coords are always (0, 0)).
    """
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num_images, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    shape = (num_images, FEAT_H, FEAT_W, channels)
    if kind == 'quantised':
        features = rng.integers(0, 4, shape).astype(np.float32)
    elif kind == 'continuous':
        features = rng.standard_normal(shape).astype(np.float32)
    elif kind == 'negative':
        features = -1.0 - rng.random(shape).astype(np.float32)
    elif kind == 'constant':
        features = np.broadcast_to(rng.integers(0, 3, (num_images, 1, 1, channels)), shape).astype(np.float32)
    else:
        raise AssertionError(kind)
    return images, features


def batches(sizes=BATCHES):
    """Slices cutting the dataset into batches of the given sizes."""
    start = 0
    for size in sizes:
        yield slice(start, start + size)
        start += size


def scan(images, features, num_samples, sizes=BATCHES, **kwargs):
    """A TopActivations fed the data batch by batch."""
    tracker = TopActivations(num_samples, **kwargs)
    for part in batches(sizes):
        tracker.update(None if images is None else images[part], features[part])
    return tracker


def assert_same_tracker(actual, expected):
    """Equal firings, coords, indices, num_seen and stored images (channel by channel)."""
    np.testing.assert_array_equal(actual.firings, expected.firings)
    np.testing.assert_array_equal(actual.coords, expected.coords)
    np.testing.assert_array_equal(actual.indices, expected.indices)
    assert actual.num_seen == expected.num_seen
    np.testing.assert_array_equal(actual.kept_image_indices, expected.kept_image_indices)
    for channel in range(expected.num_channels):
        expected_images, actual_images = expected.channel(channel)[3], actual.channel(channel)[3]
        if expected_images is None:
            assert actual_images is None
            continue
        assert len(actual_images) == len(expected_images)
        for got, want in zip(actual_images, expected_images):
            np.testing.assert_array_equal(got, want)


def assert_matches_reference(tracker, images, features, num_samples, indices=None):
    """The tracker equals brute force, and channel(c) hands back the source images of the kept indices."""
    firings, coords, kept = brute_force(features, num_samples, indices)
    np.testing.assert_array_equal(tracker.firings, firings)
    np.testing.assert_array_equal(tracker.coords, coords)
    np.testing.assert_array_equal(tracker.indices, kept)
    assert tracker.firings.dtype == np.float64
    assert tracker.coords.dtype == np.int64 and tracker.indices.dtype == np.int64
    position_of = {int(index): position for position, index in
                   enumerate(range(len(features)) if indices is None else indices)}
    for channel in range(features.shape[-1]):
        channel_firings, channel_coords, channel_indices, channel_images = tracker.channel(channel)
        np.testing.assert_array_equal(channel_firings, firings[channel])
        np.testing.assert_array_equal(channel_coords, coords[channel])
        np.testing.assert_array_equal(channel_indices, kept[channel])
        assert len(channel_images) == len(kept[channel])
        for index, image in zip(kept[channel], channel_images):
            np.testing.assert_array_equal(image, images[position_of[int(index)]])


# -- the reference itself ---------------------------------------------------------------------------------

def test_reference_breaks_ties_as_specified():
    """Sanity check of `brute_force` on a hand-made case, so the tests below compare against the right thing."""
    features = np.zeros((4, 2, 3, 1), np.float32)
    features[0, 1, 2, 0] = 5      # image 0: firing 5 at (1, 2)
    features[1, 0, 1, 0] = 7      # image 1: firing 7 at (0, 1) and also at (1, 0): first in row-major order
    features[1, 1, 0, 0] = 7
    features[2, 0, 0, 0] = 5      # image 2: firing 5, ties with image 0, which comes first
    features[3] = -1              # image 3: firing -1
    firings, coords, kept = brute_force(features, 3)
    np.testing.assert_array_equal(firings, [[7, 5, 5]])
    np.testing.assert_array_equal(coords, [[[0, 1], [1, 2], [0, 0]]])
    np.testing.assert_array_equal(kept, [[1, 0, 2]])


# -- TopActivations: correctness --------------------------------------------------------------------------

@pytest.mark.parametrize('kind', ['quantised', 'continuous', 'negative', 'constant'])
@pytest.mark.parametrize('num_samples', [1, 5, 12])
def test_top_activations_match_brute_force(kind, num_samples):
    """Uneven batches: firings, coords, indices and channel() images equal the brute-force result."""
    images, features = make_data(kind)
    tracker = scan(images, features, num_samples)
    assert tracker.num_seen == NUM_IMAGES and tracker.num_channels == CHANNELS
    assert tracker.firings.shape == (CHANNELS, num_samples)
    assert tracker.coords.shape == (CHANNELS, num_samples, 2)
    assert_matches_reference(tracker, images, features, num_samples)


def test_quantised_data_really_has_ties():
    """The tie cases the tests rely on actually occur in the 'quantised' data (guards the test data)."""
    _, features = make_data('quantised')
    per_image = features.reshape(NUM_IMAGES, -1, CHANNELS).max(axis=1)
    # Many images share the top firing of a channel, more than num_samples=5 of them.
    assert (per_image == per_image.max(axis=0)).sum(axis=0).min() > 5
    # Many maps hold their maximum at several positions.
    flat = features.reshape(NUM_IMAGES, -1, CHANNELS)
    assert ((flat == flat.max(axis=1, keepdims=True)).sum(axis=1) > 1).mean() > 0.5


def test_ties_broken_by_earlier_image_across_batches():
    """Equal firings in different batches: the image with the smaller index wins, whichever batch it is in.

    Image 3 (second batch) and image 1 (first batch) tie with firing 2; image 1 is kept first. Image 4
    (third batch) ties too but comes last, so with num_samples=2 it is not kept. The equal maxima of
    image 3 at (0, 1) and (2, 0) give coords (0, 1).
    """
    features = np.zeros((5, 3, 2, 1), np.float32)
    features[1, 2, 1, 0] = 2
    features[3, 0, 1, 0] = features[3, 2, 0, 0] = 2
    features[4, 1, 1, 0] = 2
    features[0, 0, 0, 0] = 1
    images = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((5, 2, 2, 3), np.uint8)
    tracker = scan(images, features, 2, sizes=(2, 2, 1))
    np.testing.assert_array_equal(tracker.indices, [[1, 3]])
    np.testing.assert_array_equal(tracker.firings, [[2, 2]])
    np.testing.assert_array_equal(tracker.coords, [[[2, 1], [0, 1]]])
    assert [int(image[0, 0, 0]) for image in tracker.channel(0)[3]] == [1, 3]


@pytest.mark.parametrize('sizes', [(40,), (1,) * 40, (3, 37), (20, 20), (39, 1)])
def test_result_does_not_depend_on_batching(sizes):
    """Any batch split gives the brute-force result (quantised data, so with many ties)."""
    images, features = make_data('quantised', seed=3)
    tracker = scan(images, features, 6, sizes=sizes)
    assert_matches_reference(tracker, images, features, 6)


def test_integer_features():
    """Integer feature maps work like float ones (firings stored as float64)."""
    images, features = make_data('quantised', seed=5)
    tracker = scan(images, features.astype(np.int32), 4)
    assert_matches_reference(tracker, images, features, 4)


def test_fewer_images_than_num_samples():
    """With n < num_samples images seen, every channel keeps all n, shapes [C, n]."""
    images, features = make_data('quantised', seed=1, num_images=6)
    tracker = scan(images, features, 10, sizes=(4, 2))
    assert tracker.firings.shape == (CHANNELS, 6)
    assert tracker.coords.shape == (CHANNELS, 6, 2)
    assert tracker.indices.shape == (CHANNELS, 6)
    assert_matches_reference(tracker, images, features, 10)
    for channel in range(CHANNELS):
        assert sorted(tracker.indices[channel].tolist()) == list(range(6))


def test_first_index_and_explicit_indices():
    """first_index shifts the global indices; explicit indices are used as given (here descending)."""
    images, features = make_data('quantised', seed=2)
    tracker = scan(images, features, 5, first_index=100)
    assert_matches_reference(tracker, images, features, 5, indices=np.arange(100, 140))
    assert tracker.next_index == 140

    reverse = np.arange(NUM_IMAGES)[::-1] + 1000
    tracker = TopActivations(5)
    for part in batches():
        tracker.update(images[part], features[part], indices=reverse[part])
    assert_matches_reference(tracker, images, features, 5, indices=reverse)


def test_single_channel_slice_views_and_float16():
    """Non-contiguous feature views and float16 maps give the brute-force result as well."""
    images, features = make_data('continuous', seed=8)
    wide = np.concatenate([features, features], axis=-1)[..., ::2]  # a strided view
    tracker = scan(images, wide, 3)
    assert_matches_reference(tracker, images, np.ascontiguousarray(wide), 3)
    half = features.astype(np.float16)
    tracker = scan(images, half, 3)
    assert_matches_reference(tracker, images, half.astype(np.float32), 3)


# -- the weakest images (bottom_k) ------------------------------------------------------------------------------

@pytest.mark.parametrize('kind', ['quantised', 'continuous', 'negative', 'constant'])
@pytest.mark.parametrize('bottom_k', [1, 4, 12])
def test_weakest_lists_are_the_lowest_maxima_with_the_coordinates_of_the_maxima(kind, bottom_k):
    images, features = make_data(kind, seed=3)
    tracker = scan(images, features, 5, bottom_k=bottom_k)
    assert_matches_reference(tracker, images, features, 5)  # the top lists are as without bottom_k
    weakest = tracker.weakest
    assert weakest.lowest and weakest.statistics is None and weakest.num_seen == NUM_IMAGES
    firings, coords, kept = brute_force(features, bottom_k, lowest=True)
    np.testing.assert_array_equal(weakest.firings, firings)
    np.testing.assert_array_equal(weakest.coords, coords)
    np.testing.assert_array_equal(weakest.indices, kept)
    for channel in range(CHANNELS):
        for index, image in zip(kept[channel], weakest.channel(channel)[3]):
            np.testing.assert_array_equal(image, images[index])
    assert scan(images, features, 5).weakest is None  # none without bottom_k


@pytest.mark.parametrize('split', [1, 17, 39])
def test_weakest_lists_of_parts_merge_and_save_into_those_of_one_scan(split, tmp_path):
    images, features = make_data('quantised', seed=split)
    whole = scan(images, features, 3, bottom_k=4)
    first = scan(images[:split], features[:split], 3, sizes=(split,), bottom_k=4)
    second = scan(images[split:], features[split:], 3, sizes=(NUM_IMAGES - split,), first_index=split, bottom_k=4)
    first.save(tmp_path / 'first.npz')
    merged = second.merge(TopActivations.load(tmp_path / 'first.npz'))
    assert_same_tracker(merged, whole)
    assert_same_tracker(merged.weakest, whole.weakest)
    np.testing.assert_array_equal(merged.all_kept_image_indices,
                                  np.union1d(whole.kept_image_indices, whole.weakest.kept_image_indices))


def test_trackers_with_other_weakest_lists_are_not_merged_and_bottom_k_is_a_count():
    images, features = make_data('continuous')
    with_weakest = scan(images[:20], features[:20], 3, sizes=(20,), bottom_k=2)
    for other, words in ((scan(images[20:], features[20:], 3, sizes=(20,), first_index=20), 'same --bottom_k'),
                         (scan(images[20:], features[20:], 3, sizes=(20,), first_index=20, bottom_k=3),
                          'the [23] and [23] weakest images')):
        with pytest.raises(ValueError, match=words):
            with_weakest.merge(other)
        with pytest.raises(ValueError, match=words):
            other.merge(with_weakest)
    assert with_weakest.weakest.num_seen == 20  # unchanged
    for bad in (-1, 1.5, 'two'):
        with pytest.raises(ValueError, match='bottom_k must be a whole number, 0 or more'):
            TopActivations(3, bottom_k=bad)


# -- merge --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('kind', ['quantised', 'continuous'])
@pytest.mark.parametrize('split', [1, 17, 39])
def test_merge_of_contiguous_parts_equals_one_scan(kind, split):
    """Two trackers over [0, split) and [split, 40) (first_index), merged either way, equal one scan."""
    images, features = make_data(kind, seed=split)
    whole = scan(images, features, 5)
    for order in ('first+second', 'second+first'):
        first = scan(images[:split], features[:split], 5, sizes=(split,))
        second = scan(images[split:], features[split:], 5, sizes=(3, NUM_IMAGES - split - 3)
                      if NUM_IMAGES - split > 3 else (NUM_IMAGES - split,), first_index=split)
        merged = first.merge(second) if order == 'first+second' else second.merge(first)
        assert_same_tracker(merged, whole)
        assert_matches_reference(merged, images, features, 5)
        assert merged.next_index == NUM_IMAGES


def test_merge_of_interleaved_parts_equals_one_scan():
    """Even and odd images scanned by two trackers (indices=...), merged both ways, equal one scan."""
    images, features = make_data('quantised', seed=11)
    whole = scan(images, features, 7)
    for swap in (False, True):
        parts = []
        for parity in (0, 1):
            tracker = TopActivations(7)
            selected = np.arange(parity, NUM_IMAGES, 2)
            for chunk in np.array_split(selected, 3):
                tracker.update(images[chunk], features[chunk], indices=chunk)
            parts.append(tracker)
        left, right = parts[::-1] if swap else parts
        merged = left.merge(right)
        assert_same_tracker(merged, whole)
        assert len(merged._images) == len(np.unique(merged.indices))


def test_merge_with_empty_tracker():
    """Merging into an empty tracker, or merging an empty one in, changes nothing."""
    images, features = make_data('quantised', seed=4)
    whole = scan(images, features, 5)
    assert_same_tracker(TopActivations(5).merge(scan(images, features, 5)), whole)
    assert_same_tracker(scan(images, features, 5).merge(TopActivations(5)), whole)


def test_merge_of_three_parts():
    """Three parts merged in a chain equal one scan (the merged tracker is itself mergeable)."""
    images, features = make_data('continuous', seed=6)
    whole = scan(images, features, 4)
    a = scan(images[:10], features[:10], 4, sizes=(10,))
    b = scan(images[10:25], features[10:25], 4, sizes=(15,), first_index=10)
    c = scan(images[25:], features[25:], 4, sizes=(15,), first_index=25)
    assert_same_tracker(c.merge(a).merge(b), whole)


def test_merge_errors():
    """Different num_samples, different channel counts, or overlapping indices raise ValueError."""
    images, features = make_data('quantised', seed=7)
    with pytest.raises(ValueError):
        scan(images, features, 5).merge(scan(images, features, 6))
    with pytest.raises(ValueError):
        scan(images, features, 5).merge(scan(images, features[..., :3], 5))
    with pytest.raises(ValueError):  # both without global offsets: indices 0.. in both
        scan(images[:20], features[:20], 5, sizes=(20,)).merge(scan(images[20:], features[20:], 5, sizes=(20,)))
    with pytest.raises(ValueError):  # literally the same data twice
        scan(images, features, 5).merge(scan(images, features, 5))


def test_failed_merge_leaves_tracker_unchanged():
    """A merge that raises does not modify the tracker it was called on."""
    images, features = make_data('quantised', seed=9)
    tracker = scan(images, features, 5)
    reference = scan(images, features, 5)
    for other in (scan(images, features, 6), scan(images, features[..., :2], 5), scan(images, features, 5)):
        with pytest.raises(ValueError):
            tracker.merge(other)
        assert_same_tracker(tracker, reference)


# -- memory -------------------------------------------------------------------------------------------------

def test_each_kept_image_stored_once():
    """After every batch, the stored images are exactly the distinct kept indices."""
    images, features = make_data('quantised', seed=12)
    tracker = TopActivations(4)
    for part in batches():
        tracker.update(images[part], features[part])
        distinct = np.unique(tracker.indices)
        np.testing.assert_array_equal(tracker.kept_image_indices, distinct)
        assert len(tracker._images) == len(distinct)
        assert len(distinct) < tracker.indices.size  # channels share images here, so sharing is exercised
        for index in distinct:
            np.testing.assert_array_equal(tracker._images[int(index)], images[int(index)])


def test_images_no_longer_kept_are_dropped():
    """When a later batch beats every kept image, the earlier images are forgotten."""
    images, features = make_data('continuous', seed=13, num_images=10)
    features[5:] += 100.0  # the second batch beats the first in every channel
    tracker = TopActivations(3)
    tracker.update(images[:5], features[:5])
    assert set(tracker.kept_image_indices.tolist()) <= set(range(5))
    tracker.update(images[5:], features[5:])
    assert set(tracker.kept_image_indices.tolist()) <= set(range(5, 10))
    assert len(tracker._images) == len(np.unique(tracker.indices))


def test_stored_images_are_copies():
    """Overwriting the caller's batch buffer afterwards does not change the kept images."""
    images, features = make_data('quantised', seed=14)
    expected = images.copy()
    tracker = TopActivations(3)
    for part in batches():
        tracker.update(images[part], features[part])
        images[part] = 0
    assert_matches_reference(tracker, expected, features, 3)


def test_update_without_images_keeps_no_images():
    """images=None: correct firings/coords/indices, no stored images, channel() gives None."""
    images, features = make_data('quantised', seed=15)
    tracker = scan(None, features, 5)
    firings, coords, kept = brute_force(features, 5)
    np.testing.assert_array_equal(tracker.firings, firings)
    np.testing.assert_array_equal(tracker.coords, coords)
    np.testing.assert_array_equal(tracker.indices, kept)
    assert tracker.kept_image_indices.size == 0
    assert tracker._images == {}
    assert tracker.channel(0)[3] is None


def test_empty_batch_changes_nothing():
    images, features = make_data('continuous', seed=21)
    tracker = scan(images, features, 3)
    before = (tracker.firings.copy(), tracker.indices.copy(), tracker.num_seen, tracker.next_index)
    tracker.update(images[:0], features[:0])
    np.testing.assert_array_equal(tracker.firings, before[0])
    np.testing.assert_array_equal(tracker.indices, before[1])
    assert (tracker.num_seen, tracker.next_index) == before[2:]


def test_images_must_be_passed_always_or_never():
    """A tracker fed with images refuses a batch without, and the other way round (and so does merge)."""
    images, features = make_data('continuous', seed=22)
    with_images = TopActivations(3).update(images[:10], features[:10])
    with pytest.raises(ValueError, match='always or never'):
        with_images.update(None, features[10:20], indices=np.arange(10, 20))
    without_images = TopActivations(3).update(None, features[20:30], indices=np.arange(20, 30))
    with pytest.raises(ValueError, match='always or never'):
        without_images.update(images[30:], features[30:], indices=np.arange(30, len(features)))
    with pytest.raises(ValueError, match='always or never'):
        with_images.merge(without_images)
    assert with_images.num_seen == 10 and without_images.num_seen == 10


# -- save / load --------------------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    """The loaded tracker is identical, the file is a pickle-free .npz, and no temporary file is left."""
    images, features = make_data('quantised', seed=16)
    tracker = scan(images[:30], features[:30], 5, sizes=(10, 20))
    path = tmp_path / 'layer.npz'
    tracker.save(str(path))
    assert os.listdir(tmp_path) == ['layer.npz']
    with np.load(path, allow_pickle=False) as data:
        np.testing.assert_array_equal(data['firings'], tracker.firings)
        np.testing.assert_array_equal(data['indices'], tracker.indices)
    loaded = TopActivations.load(str(path))
    assert_same_tracker(loaded, tracker)
    assert loaded.num_samples == 5 and loaded.next_index == 30
    assert loaded.firings.dtype == np.float64 and loaded.coords.dtype == np.int64
    for index in loaded.kept_image_indices:
        assert loaded._images[int(index)].dtype == np.uint8

    # A loaded tracker goes on exactly like the original.
    loaded.update(images[30:], features[30:])
    assert_same_tracker(loaded, scan(images, features, 5))


def test_save_load_without_images_and_grey_images(tmp_path):
    """Round trips of a tracker without images, and of one with grey [h, w] images."""
    _, features = make_data('continuous', seed=17)
    tracker = scan(None, features, 3)
    tracker.save(str(tmp_path / 'none.npz'))
    loaded = TopActivations.load(str(tmp_path / 'none.npz'))
    assert_same_tracker(loaded, tracker)
    assert loaded.channel(0)[3] is None

    grey = np.random.default_rng(0).integers(0, 256, (NUM_IMAGES, 9, 11), dtype=np.uint8)
    tracker = scan(grey, features, 3)
    tracker.save(str(tmp_path / 'grey.npz'))
    assert_same_tracker(TopActivations.load(str(tmp_path / 'grey.npz')), tracker)
    assert sorted(os.listdir(tmp_path)) == ['grey.npz', 'none.npz']


def test_save_load_empty_tracker(tmp_path):
    """A tracker that saw nothing round-trips and can then be updated."""
    TopActivations(4, first_index=7).save(str(tmp_path / 'empty.npz'))
    loaded = TopActivations.load(str(tmp_path / 'empty.npz'))
    assert loaded.num_seen == 0 and loaded.num_samples == 4 and loaded.next_index == 7
    images, features = make_data('quantised', seed=18)
    loaded.update(images, features)
    assert_matches_reference(loaded, images, features, 4, indices=np.arange(7, 47))


def test_save_overwrites_existing_file(tmp_path):
    """Saving onto an existing file replaces it."""
    images, features = make_data('continuous', seed=19)
    path = str(tmp_path / 't.npz')
    scan(images[:10], features[:10], 3, sizes=(10,)).save(path)
    tracker = scan(images, features, 3)
    tracker.save(path)
    assert_same_tracker(TopActivations.load(path), tracker)
    assert os.listdir(tmp_path) == ['t.npz']


def test_saved_file_has_ordinary_permissions(tmp_path):
    """Not the 0600 of a temporary file: other users may read results as with any file written by open()."""
    images, features = make_data('continuous', seed=23)
    path = tmp_path / 'state.npz'
    scan(images, features, 2).save(str(path))
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        TopActivations.load(str(tmp_path / 'nothing.npz'))


@pytest.mark.parametrize('kind', ['other_npz', 'empty', 'npy', 'broken_zip', 'text', 'truncated', 'encrypted'])
def test_load_of_a_file_that_is_not_a_tracker(tmp_path, kind):
    """Any file that is not a saved tracker raises ValueError (not KeyError, EOFError, TypeError...)."""
    path = tmp_path / 'x.npz'
    if kind == 'other_npz':
        np.savez(path, a=np.arange(3))
    elif kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'npy':
        with open(path, 'wb') as stream:
            np.save(stream, np.arange(3))
    elif kind == 'broken_zip':
        path.write_bytes(b'PK\x03\x04' + b'\x00' * 40)
    elif kind == 'text':
        path.write_text('not numpy at all\n')
    elif kind == 'truncated':
        images, features = make_data('quantised')
        scan(images, features, 3).save(str(path))
        path.write_bytes(path.read_bytes()[:200])
    elif kind == 'encrypted':  # zipfile asks for a password: a RuntimeError
        scan(None, make_data('quantised')[1], 3).save(str(path))
        set_zip_directory_field(path, 8, 1)
    with pytest.raises(ValueError):
        TopActivations.load(str(path))


@pytest.mark.parametrize('liar', ['firings', 'images', 'image_indices'])
def test_load_refuses_a_file_whose_header_declares_a_huge_array_before_reading_it(tmp_path, monkeypatch, liar):
    images, features = make_data('quantised', seed=24)
    path = str(tmp_path / 'layer.npz')
    scan(images, features, 3).save(path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    write_npz_with_a_lying_header(path, arrays, liar)  # 40 TB declared in a file of a few KB
    read = arrays_read(monkeypatch)
    with pytest.raises(ValueError) as error:
        TopActivations.load(path)
    assert str(error.value).startswith(f'{path} is not a file written by TopActivations.save: array {liar!r} '
                                       'declares float32 of shape (1000000000, 10000)'), error.value
    assert read == []  # refused from the headers, before any array was read or allocated


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    """If writing fails, no destination file appears and no temporary file remains."""
    images, features = make_data('quantised', seed=20)
    tracker = scan(images, features, 3)

    def failing_savez(*args, **kwargs):
        raise OSError('disk full')

    monkeypatch.setattr(np, 'savez', failing_savez)
    with pytest.raises(OSError, match='disk full'):
        tracker.save(str(tmp_path / 'layer.npz'))
    assert os.listdir(tmp_path) == []


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    """If writing fails halfway, an existing file at the destination keeps its previous content."""
    images, features = make_data('quantised', seed=21)
    path = str(tmp_path / 'layer.npz')
    old = scan(images[:10], features[:10], 3, sizes=(10,))
    old.save(path)
    before = open(path, 'rb').read()
    real_savez = np.savez

    def savez_then_fail(stream, **arrays):
        real_savez(stream, **arrays)  # some bytes really reach the temporary file
        raise KeyboardInterrupt

    monkeypatch.setattr(np, 'savez', savez_then_fail)
    with pytest.raises(KeyboardInterrupt):
        scan(images, features, 3).save(path)
    assert open(path, 'rb').read() == before
    assert os.listdir(tmp_path) == ['layer.npz']
    assert_same_tracker(TopActivations.load(path), old)


# -- bad input ------------------------------------------------------------------------------------------------

def test_num_samples_must_be_positive():
    for bad in (0, -3):
        with pytest.raises(ValueError):
            TopActivations(bad)
        with pytest.raises(ValueError):
            Activations(bad)


def test_bad_input_is_rejected_and_leaves_tracker_unchanged():
    """Wrong feature rank, image count, channel count, index count, or NaN: ValueError, state unchanged."""
    images, features = make_data('quantised', seed=22)
    tracker = scan(images[:20], features[:20], 4, sizes=(20,))
    reference = scan(images[:20], features[:20], 4, sizes=(20,))
    nan_features = features[20:30].copy()
    nan_features[3, 2, 1, 4] = np.nan
    bad_calls = [
        (images[20:30], features[20:30, :, :, 0]),       # 3-D features
        (images[20:30], features[20:30, None]),           # 5-D features
        (images[20:29], features[20:30]),                 # 9 images for 10 maps
        (images[20:30], features[20:30, :, :, :5]),       # 5 channels after 7
        (images[20:30], nan_features),                    # NaN
    ]
    for batch_images, batch_features in bad_calls:
        with pytest.raises(ValueError):
            tracker.update(batch_images, batch_features)
        assert_same_tracker(tracker, reference)
    with pytest.raises(ValueError):
        tracker.update(images[20:30], features[20:30], indices=np.arange(9))
    assert_same_tracker(tracker, reference)


def test_nan_in_first_batch_and_not_at_the_maximum():
    """NaN anywhere in a map is rejected, also in the first batch and where it is not the map's maximum."""
    images, features = make_data('quantised', seed=23, num_images=4)
    features[2, 0, 0, 1] = np.nan
    with pytest.raises(ValueError):
        TopActivations(3).update(images, features)
    tracker = TopActivations(3)
    features = np.full((2, 3, 3, 2), 5.0)
    features[1, 2, 2, 0] = np.nan
    with pytest.raises(ValueError):
        tracker.update(None, features)
    assert tracker.num_seen == 0


# -- Activations (one channel) ------------------------------------------------------------------------------

def grid_recfield():
    """Feature pixel (y, x) sees the 5x5 box centred on image pixel (2y, 2x) of a 12x12 image, clipped: row 0
    and column 0 are clipped at the top/left, column 5 at the right."""
    return grid_field(FEAT_H, FEAT_W, IMAGE_SIZE)


def test_activations_match_brute_force():
    """Activations.update with [batch, h, w] maps: firings, coords and images equal brute force."""
    images, features = make_data('quantised', seed=24)
    for channel in (0, 3):
        single = Activations(6)
        for part in batches():
            single.update(images[part], features[part, :, :, channel])
        firings, coords, kept = brute_force(features[..., channel:channel + 1], 6)
        np.testing.assert_array_equal(single.firings, firings[0])
        np.testing.assert_array_equal(single.coords, coords[0])
        assert len(single.images) == 6
        for index, image in zip(kept[0], single.images):
            np.testing.assert_array_equal(image, images[index])


def test_activations_empty_and_bad_input():
    """Before any update: empty results. 4-D (or 2-D) features raise ValueError."""
    single = Activations(3)
    assert single.firings.shape == (0,) and single.coords.shape == (0, 2) and single.images == []
    images, features = make_data('quantised', seed=25, num_images=5)
    with pytest.raises(ValueError):
        single.update(images, features)
    with pytest.raises(ValueError):
        single.update(images, features[:, :, :, 0].reshape(5, -1))
    with pytest.raises(ValueError):
        single.update(images[:4], features[..., 0])


def planted_activations():
    """Activations whose 4 kept images fire at chosen feature pixels, strongest first.

    (0, 0): box [0, 0, 3, 3], clipped top and left; (4, 5): box [6, 8, 11, 12], clipped right;
    (2, 3): box [2, 4, 7, 9], unclipped; (1, 0): box [0, 0, 5, 3], starts at row 0 but is full height.
    """
    rng = np.random.default_rng(26)
    images = rng.integers(0, 256, (9, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    features = rng.random((9, FEAT_H, FEAT_W)).astype(np.float32)  # everything below 1
    for image, (y, x), firing in zip((6, 2, 8, 0), ((0, 0), (4, 5), (2, 3), (1, 0)), (9, 8, 7, 6)):
        features[image, y, x] = firing
    single = Activations(4)
    single.update(images[:5], features[:5])
    single.update(images[5:], features[5:])
    np.testing.assert_array_equal(single.firings, [9, 8, 7, 6])
    np.testing.assert_array_equal(single.coords, [[0, 0], [4, 5], [2, 3], [1, 0]])
    return single, images[[6, 2, 8, 0]]


def test_retrieve_full_column():
    """Full column: (n*(H+2), W+2, 3), each image in its bordered cell with its box outlined in green."""
    single, kept_images = planted_activations()
    full, _ = single.retrieve(grid_recfield())
    assert full.dtype == np.uint8 and full.shape == (4 * (IMAGE_SIZE + 2), IMAGE_SIZE + 2, 3)
    boxes = [[0, 0, 3, 3], [6, 8, 11, 12], [2, 4, 7, 9], [0, 0, 5, 3]]
    for number, (image, (y1, x1, y2, x2)) in enumerate(zip(kept_images, boxes)):
        cell = full[number * (IMAGE_SIZE + 2):(number + 1) * (IMAGE_SIZE + 2)]
        expected = image.copy()
        outline = np.zeros(image.shape[:2], bool)
        outline[y1:y2, x1:x2] = True
        outline[y1 + 1:y2 - 1, x1 + 1:x2 - 1] = False
        expected[outline] = (0, 255, 0)
        np.testing.assert_array_equal(cell[1:-1, 1:-1], expected)
        assert not cell[[0, -1]].any() and not cell[:, [0, -1]].any()  # black border


def test_retrieve_crop_column():
    """Crop column: (n*(maxh+2), maxw+2, 3); each cell holds its box's pixels, clipped boxes padded above/left."""
    single, kept_images = planted_activations()
    _, crop = single.retrieve(grid_recfield())
    assert grid_recfield().max() == (5, 5)
    assert crop.dtype == np.uint8 and crop.shape == (4 * 7, 7, 3)
    cells = [crop[number * 7:(number + 1) * 7] for number in range(4)]
    for cell in cells:
        assert not cell[[0, -1]].any() and not cell[:, [0, -1]].any()
    inner = [cell[1:-1, 1:-1] for cell in cells]
    # Box [0, 0, 3, 3] is clipped at the top and the left: its 3x3 pixels sit bottom-right, black above/left.
    np.testing.assert_array_equal(inner[0][2:, 2:], kept_images[0][0:3, 0:3])
    assert not inner[0][:2].any() and not inner[0][:, :2].any()
    # Box [6, 8, 11, 12] is clipped at the right: 5x4 pixels at the left, a black column at the right.
    np.testing.assert_array_equal(inner[1][:, :4], kept_images[1][6:11, 8:12])
    assert not inner[1][:, 4:].any()
    # Box [2, 4, 7, 9] is whole.
    np.testing.assert_array_equal(inner[2], kept_images[2][2:7, 4:9])
    # Box [0, 0, 5, 3]: full height from row 0, clipped on the left only: padded on the left.
    np.testing.assert_array_equal(inner[3][:, 2:], kept_images[3][0:5, 0:3])
    assert not inner[3][:, :2].any()


def test_save_with_extra_arrays(tmp_path):
    """Extra arrays go in the same file; load ignores them; a clash with the tracker's names is refused."""
    images, features = make_data('continuous', seed=31)
    tracker = scan(images, features, 2)
    path = str(tmp_path / 'state.npz')
    tracker.save(path, run_layer=np.str_('conv1/conv1:0'), run_ids=np.array(['a', 'b']))
    with np.load(path, allow_pickle=False) as data:
        assert str(data['run_layer']) == 'conv1/conv1:0' and data['run_ids'].tolist() == ['a', 'b']
    assert_same_tracker(TopActivations.load(path), tracker)
    with pytest.raises(ValueError, match='firings'):
        tracker.save(path, firings=np.zeros(3))


# -- bad arguments (issue 14) ------------------------------------------------------------------------------------

@pytest.mark.parametrize('num_samples', [2.7, '3', True, 0, None])
def test_num_samples_must_be_a_whole_number(num_samples):
    with pytest.raises(ValueError, match='num_samples must be a whole number'):
        TopActivations(num_samples)


def test_num_samples_may_be_a_whole_float():
    assert TopActivations(3.0).num_samples == 3


def test_an_image_given_twice_is_refused(rng):
    features = rng.normal(size=(3, 2, 2, 4))
    top = TopActivations(5)
    with pytest.raises(ValueError, match='indices must be distinct and new'):
        top.update(None, features, indices=[5, 5, 5])
    top.update(None, features, indices=[0, 1, 2])
    with pytest.raises(ValueError, match='indices must be distinct and new'):
        top.update(None, features, indices=[2, 3, 4])  # image 2 again
    assert sorted(set(top.indices.ravel().tolist())) == [0, 1, 2]


def test_features_must_be_numbers():
    with pytest.raises(ValueError, match='features must be numbers'):
        TopActivations(2).update(None, np.full((1, 2, 2, 1), 'a'))


# -- maxima computed by the network ---------------------------------------------------------------------

@pytest.mark.parametrize('kind', ['quantised', 'continuous', 'negative', 'constant'])
@pytest.mark.parametrize('num_samples', [1, 5, 12])
def test_maxima_given_with_the_maps_give_the_state_of_maps_alone(kind, num_samples):
    images, features = make_data(kind)
    features = np.maximum(features, 0) if kind == 'continuous' else features  # ReLU zeros: ties everywhere
    given = TopActivations(num_samples)
    for part in batches():
        given.update(images[part], features[part], maxima=features[part].max(axis=(1, 2)))
    assert_same_tracker(given, scan(images, features, num_samples))
    assert_matches_reference(given, images, features, num_samples)


def test_maxima_of_another_shape_or_with_nan_are_refused():
    features = np.zeros((3, 2, 2, 4))
    with pytest.raises(ValueError, match=r'maxima must be \[batch, channels\] of the features, \[3, 4\]; got shape '
                                         r'\(4, 3\)'):
        TopActivations(2).update(None, features, maxima=np.zeros((4, 3)))
    with pytest.raises(ValueError, match='features contain NaN'):
        TopActivations(2).update(None, features, maxima=np.full((3, 4), np.nan))


@pytest.mark.parametrize('value', [np.inf, -np.inf])
def test_infinite_firings_are_refused_like_nan(value):
    features = np.ones((3, 2, 2, 4), np.float32)
    features[2, :, :, 1] = value  # -inf counts only where it is the whole map's maximum
    tracker = TopActivations(2)
    with pytest.raises(ValueError, match=r'features contain NaN or infinite values \(image 7, channel 1: -?inf\)'):
        tracker.update(None, features, indices=[5, 6, 7])
    assert tracker.num_seen == 0
    features[2, 0, 0, 1] = 3.0  # a finite maximum: the -inf elsewhere in the map does not fire
    if value < 0:
        assert tracker.update(None, features, indices=[5, 6, 7]).firings[1].tolist() == [3.0, 1.0]


def test_an_index_kept_earlier_is_refused_after_lower_ones():
    features = np.ones((2, 1, 1, 1))
    top = TopActivations(5).update(None, features, indices=[100, 101]).update(None, features, indices=[0, 1])
    with pytest.raises(ValueError, match='indices must be distinct and new'):
        top.update(None, features, indices=[100, 102])  # rising, but 100 is kept


def test_indices_beyond_64_bits_are_a_clear_error():
    with pytest.raises(ValueError, match='indices must be whole numbers of at most 64 bits'):
        TopActivations(2).update(None, np.ones((1, 2, 2, 1)), indices=[2 ** 70])


def test_retrieve_before_any_update_or_with_the_field_of_a_smaller_map_is_a_clear_error():
    field = ReceptiveField([2, 8, 8, 1], lambda batch: batch[:, ::2, ::2, :])  # a 4x4 map
    channel = Activations(2)
    with pytest.raises(ValueError, match='no images kept yet: call update'):
        channel.retrieve(field)
    features = np.zeros((3, 6, 6))
    features[1, 5, 4] = 1.0  # fires at (5, 4): outside the field's 4x4 map
    channel.update(np.zeros((3, 8, 8), np.uint8), features)
    with pytest.raises(ValueError, match=r'field is of a \(4, 4\) feature map, smaller than this channel\'s \(it fires '
                                         r'at \(5, 4\)\)'):
        channel.retrieve(field)


# -- top lists of distinct places -----------------------------------------------------------------------------

@pytest.fixture(scope='module')
def tiled(tmp_path_factory):
    """`(model, dataset, fields, maps)` of the box-filter network on the tiles of `shard_fixtures.tiled_photos`: the
    dataset with places, in batches of 5; every tile's feature maps, by layer."""
    args = box_filter_args(tmp_path_factory.mktemp('unused'), batch_size=5)
    model = open_box_filter_model(args)
    dataset = open_tiled_dataset(args)
    fields = pipeline.measure_receptive_fields(model, print_lines=False)
    maps = [np.concatenate(layer_maps) for layer_maps in
            zip(*(model.run(inputs) for inputs, _, _ in dataset.read(0, len(dataset))))]
    return model, dataset, fields, maps


def box_in_photo(box, place):
    """`(photo, (y1, x1, y2, x2))`: a box of a tile in its photograph, by hand (tiles are not scaled)."""
    photo, top, left, _, width, mirrored = (int(value) for value in place)
    y1, x1, y2, x2 = (int(value) for value in box)
    if mirrored:
        x1, x2 = width - x2, width - x1
    return photo, (top + y1, left + x1, top + y2, left + x2)


def repeats_place(entry, stronger):
    """Whether two `box_in_photo` boxes are of one photograph and overlap by more than half of the smaller one."""
    (photo, (y1, x1, y2, x2)), (other_photo, (oy1, ox1, oy2, ox2)) = entry, stronger
    overlap = max(0, min(y2, oy2) - max(y1, oy1)) * max(0, min(x2, ox2) - max(x1, ox1))
    return photo == other_photo and 2 * overlap > min((y2 - y1) * (x2 - x1), (oy2 - oy1) * (ox2 - ox1))


def distinct_brute_force(feature_maps, field, places):
    """Per channel, every `(firing, (y, x), index)` of all images, strongest first (ties: the earlier image), that
    repeats the place of no stronger one (kept or not), the slow, obvious way."""
    lists = []
    for channel in range(feature_maps.shape[-1]):
        entries = sorted((first_argmax(feature_maps[index, :, :, channel]) + (index,)
                          for index in range(len(feature_maps))), key=lambda entry: (-entry[0], entry[2]))
        boxes = [box_in_photo(field.recfield[y, x], places[index]) for _, (y, x), index in entries]
        lists.append([entry for number, entry in enumerate(entries)
                      if not any(repeats_place(boxes[number], boxes[earlier]) for earlier in range(number))])
    return lists


def entries_of(tracker, channel):
    firings, coords, indices, _ = tracker.channel(channel)
    return [(firing, (y, x), index) for firing, (y, x), index in zip(firings.tolist(), coords.tolist(),
                                                                       indices.tolist())]


def test_plain_top_lists_of_the_tiles_repeat_places(tiled):
    _, dataset, fields, maps = tiled
    for layer, feature_maps in enumerate(maps):
        plain, distinct = brute_force(feature_maps, 3), distinct_brute_force(feature_maps, fields[layer],
                                                                             dataset.places)
        assert any(plain[2][channel].tolist() != [index for *_, index in distinct[channel][:3]]
                   for channel in range(feature_maps.shape[-1])), layer


@pytest.mark.parametrize('num_samples', [1, 3, 6])
@pytest.mark.parametrize('candidates_per_sample', [1, 2, 8, 100])
def test_distinct_top_lists_are_those_of_all_images_wherever_the_candidates_hold_them(tiled, num_samples,
                                                                                     candidates_per_sample):
    model, dataset, fields, maps = tiled
    trackers = pipeline.scan(model, dataset, num_samples, print_line=False,
                             candidates_per_sample=candidates_per_sample)
    tiles = np.concatenate([display for _, display, _ in dataset.read(0, len(dataset))])
    for layer, (tracker, feature_maps) in enumerate(zip(trackers, maps)):
        assert tracker.num_samples == num_samples * candidates_per_sample
        distinct, short = distinct_top(tracker, fields[layer], dataset.places, num_samples)
        assert distinct.num_samples == num_samples and distinct.num_seen == len(dataset)
        expected = distinct_brute_force(feature_maps, fields[layer], dataset.places)
        for channel in range(tracker.num_channels):
            got = entries_of(distinct, channel)
            # Whether an entry repeats a place depends on stronger entries only: the lists are always the start
            # of the true ones, and all of them unless the candidates ran out (then the channel is short).
            assert got == expected[channel][:len(got)], (layer, channel)
            if len(got) < min(num_samples, len(expected[channel])):
                assert channel in short, (layer, channel)
            if channel in short:
                assert len(got) < num_samples
            for (*_, index), image in zip(got, distinct.channel(channel)[3]):
                np.testing.assert_array_equal(image, tiles[index])
        if num_samples * candidates_per_sample >= len(dataset):  # the candidates are every image: exact, never short
            assert not len(short)
    assert distinct.kept_image_indices.tolist() == sorted({index for channel in range(distinct.num_channels)
                                                          for *_, index in entries_of(distinct, channel)})


def test_the_default_candidates_give_these_tiles_their_true_distinct_lists_and_fewer_give_short_ones(tiled):
    model, dataset, fields, _ = tiled
    shorts = []
    for candidates_per_sample in (1, 8):
        [tracker, _] = pipeline.scan(model, dataset, 3, print_line=False, candidates_per_sample=candidates_per_sample)
        distinct, short = distinct_top(tracker, fields[0], dataset.places, 3)
        shorts.append(short.tolist())
    assert shorts[0] and not shorts[1]
    assert (distinct.lengths == 3).all()


def test_an_entry_that_repeats_only_a_stronger_repeat_is_dropped_too():
    # Four entries of one channel, strongest first, each firing at feature pixel (0, 0), whose box is the image's
    # 4x4 corner: A, B and C in tiles of one photograph 1 pixel apart, D in another photograph.
    field = grid_field(4, 4, 12, before=(0, 0), after=(4, 4))
    features = np.zeros((4, 4, 4, 1))
    features[:, 0, 0, 0] = [4, 3, 2, 1]
    tracker = TopActivations(4).update(np.zeros((4, 12, 12), np.uint8), features)
    places = {0: (0, 0, 0, 12, 12, 0), 1: (0, 0, 1, 12, 12, 0), 2: (0, 0, 2, 12, 12, 0), 3: (1, 0, 0, 12, 12, 0)}
    # In the photograph A's box spans columns 0..4, B's 1..5 (3/4 of A: a repeat), C's 2..6: 3/4 of B, only half of A.
    distinct, short = distinct_top(tracker, field, places, 4)
    assert distinct.channel(0)[2].tolist() == [0, 3] and not len(short)
    places[2] = (0, 0, 3, 12, 12, 0)  # C at 3..7: half of B, a quarter of A
    assert distinct_top(tracker, field, places, 4)[0].channel(0)[2].tolist() == [0, 2, 3]


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('num_kept', [3, 12, 40])
def test_distinct_top_lists_of_random_places_are_the_start_of_brute_force_ones(seed, num_kept):
    rng = np.random.default_rng(seed)
    images, features = make_data('quantised', seed)
    # Boxes of 7x7 two pixels apart, in tiles placed at random in two photographs, some mirrored, some
    # overlapping: repeats of repeats abound.
    field = grid_field(FEAT_H, FEAT_W, IMAGE_SIZE, before=(3, 3), after=(4, 4))
    places = np.stack([rng.integers(0, 2, NUM_IMAGES), rng.integers(0, 3, NUM_IMAGES) * 3,
                       rng.integers(0, 3, NUM_IMAGES) * 3, np.full(NUM_IMAGES, IMAGE_SIZE),
                       np.full(NUM_IMAGES, IMAGE_SIZE), rng.integers(0, 2, NUM_IMAGES)], axis=1)
    distinct, short = distinct_top(scan(images, features, num_kept), field, places, 4)
    expected = distinct_brute_force(features, field, places)
    for channel in range(CHANNELS):
        got = entries_of(distinct, channel)
        assert got == expected[channel][:len(got)], channel
        assert (len(got) < min(4, len(expected[channel]))) <= (channel in short)
        for (*_, index), image in zip(got, distinct.channel(channel)[3]):
            np.testing.assert_array_equal(image, images[index])
    if num_kept == NUM_IMAGES:
        assert not len(short)


def test_merged_shards_give_the_distinct_lists_of_one_scan(tiled):
    model, dataset, fields, _ = tiled
    single = pipeline.scan(model, dataset, 2, print_line=False, candidates_per_sample=2)
    merged = pipeline.scan(model, dataset, 2, 2, 3, print_line=False, candidates_per_sample=2)
    for shard_index in (0, 1):
        for tracker, other in zip(merged, pipeline.scan(model, dataset, 2, shard_index, 3, print_line=False,
                                                        candidates_per_sample=2)):
            tracker.merge(other)
    for layer, (tracker, expected) in enumerate(zip(merged, single)):
        got, want = (distinct_top(each, fields[layer], dataset.places, 2) for each in (tracker, expected))
        assert_same_tracker(got[0], want[0])
        np.testing.assert_array_equal(got[0].lengths, want[0].lengths)
        np.testing.assert_array_equal(got[1], want[1])


def test_a_tracker_of_distinct_lists_gives_each_channel_its_own_length_and_is_not_updated_merged_or_saved(tiled):
    model, dataset, fields, _ = tiled
    [tracker, _] = pipeline.scan(model, dataset, 6, print_line=False, candidates_per_sample=1)
    distinct, short = distinct_top(tracker, fields[0], dataset.places, 6)
    assert distinct.lengths.tolist() == [len(distinct.channel(channel)[2]) for channel in range(2)]
    assert distinct.firings.shape == (2, distinct.lengths.max()) and distinct.lengths.min() < 6
    assert (distinct.indices[distinct.indices < 0].size == (distinct.lengths.max() - distinct.lengths).sum())
    slim = distinct.without_images()
    assert slim.lengths is distinct.lengths and slim.channel(0)[2].tolist() == distinct.channel(0)[2].tolist()
    for refused in (lambda: distinct.update(None, np.zeros((1, 12, 12, 2))), lambda: distinct.merge(tracker),
                    lambda: tracker.merge(distinct), distinct.to_arrays):
        with pytest.raises(ValueError, match='top lists of distinct places, chosen for drawing'):
            refused()


def test_the_weakest_lists_of_tiles_keep_every_image_whatever_its_place(tiled):
    model, dataset, fields, maps = tiled
    for layer, (tracker, feature_maps) in enumerate(zip(pipeline.scan(model, dataset, 3, print_line=False,
                                                                      bottom_k=4), maps)):
        distinct, _ = distinct_top(tracker, fields[layer], dataset.places, 3)
        assert distinct.weakest is tracker.weakest
        np.testing.assert_array_equal(distinct.weakest.indices, brute_force(feature_maps, 4, lowest=True)[2])
