"""Keeping, for each channel of a layer, the images that make it fire the most.

An image's *firing* for a channel is the highest value of that channel's feature map anywhere on the
image; its *coords* are where (the first such pixel in row-major order). For every channel the tracker
keeps the `num_samples` images with the highest firings, ties broken by the earlier image.

`TopActivations` tracks every channel of a layer at once with a few vectorised numpy operations per batch
and stores each kept image once, however many channels keep it; from the same maxima it keeps every channel's
statistics over all images (`utils.base.channel_statistics.ChannelStatistics`). `Activations` is the one-channel
interface of the original tool, built on it.

Images cut from larger photographs, overlapping (the tiles of the VGG16 example), show one place of a photograph
several times. For them a tracker keeps `CANDIDATES_PER_SAMPLE` times more images, and `distinct_top` chooses from
those the top lists of distinct places, after the scan, once the receptive fields are known.

With `bottom_k` a tracker also keeps, in `weakest`, every channel's `bottom_k` images of the lowest firings
(`--bottom_k`), from the same maxima: a `TopActivations` with `lowest=True`. Those lists show every image, places or
not.
"""

import logging

import numpy as np

from utils.base.channel_statistics import PREFIX as STATISTICS_PREFIX, ChannelStatistics
from utils.base.files import load_arrays, save_arrays
from utils.data.images import PLACE_COLUMNS, photo_boxes
from utils.pictures.montage import crop_column, full_column

logger = logging.getLogger(__name__)

# The arrays of a saved tracker (`TopActivations.to_arrays`), and its statistics' under `STATISTICS_PREFIX`.
TRACKER_ARRAYS = ('num_samples', 'next_index', 'num_seen', 'keeps_images', 'firings', 'coords', 'indices',
                  'image_indices', 'images', 'image_labels')
# An entry repeats a place when its box in its photograph overlaps a stronger entry's by more than this share of the
# smaller box (`distinct_top`).
MAX_OVERLAP = 0.5
# The arrays of a tracker's `weakest` in its saved arrays are named with this prefix (`TopActivations.to_arrays`).
WEAKEST_PREFIX = 'weakest_'
# Candidates kept per entry shown, for images with places: one place of a photograph lies in up to 8 tiles of the
# VGG16 example (2 x 2 tiles half a tile apart, each also mirrored); `--candidates_per_sample`.
CANDIDATES_PER_SAMPLE = 8


class TopActivations:
    """The strongest images of every channel of one layer.

    Attributes:
        num_samples: how many images are kept per channel.
        firings: float64 `[channels, n]`, strongest first (`n = min(num_samples, images seen)`).
        coords: int64 `[channels, n, 2]`, feature-map `(y, x)` of each firing.
        indices: int64 `[channels, n]`, global index of each kept image in the dataset.
        num_seen: how many images `update` has seen.
        statistics: the `utils.base.channel_statistics.ChannelStatistics` of every image seen; None for a tracker of the
            lowest firings (`lowest`), whose statistics are those of the tracker it belongs to.
        class_names: the dataset's classes (`statistics.class_names`), or ().
        lowest: whether the tracker keeps the lowest firings instead, weakest first (still with the coordinates
            of each image's maximum, where the channel fires most on it).
        weakest: None, or the `lowest` tracker of each channel's `bottom_k` weakest images.
        lengths: None, or int64 `[channels]` for top lists of distinct places (`distinct_top`): how many of its
            `n` entries each channel holds (the rest fill the arrays); `channel` gives only those.
    """

    def __init__(self, num_samples=10, first_index=0, class_names=(), bottom_k=0, lowest=False):
        """Creates an empty tracker.

        Args:
            num_samples: images to keep per channel.
            first_index: global index of the first image this tracker will see. Trackers that scan different
                parts of a dataset and are merged later need the parts' true offsets, so that ties are broken
                by the earlier image of the whole dataset.
            class_names: the dataset's classes, if its images have some: `update` then takes each image's label.
            bottom_k: also keep each channel's `bottom_k` images of the lowest firings, in `weakest` (0: not).
            lowest: keep the `num_samples` images of the lowest firings instead, and no statistics (see `weakest`).
        """
        if not _is_whole_number(num_samples) or int(num_samples) < 1:
            raise ValueError(f'num_samples must be a whole number, at least 1, got {num_samples!r}.')
        self.num_samples = int(num_samples)
        self.next_index = int(first_index)
        self.num_seen = 0
        self.firings = np.zeros((0, 0), np.float64)
        self.coords = np.zeros((0, 0, 2), np.int64)
        self.indices = np.zeros((0, 0), np.int64)
        self._images = {}  # global image index -> uint8 image, only for images some channel keeps
        self.keeps_images = None  # whether updates come with images; fixed by the first one
        self._labels = {}  # global image index -> class label, for the images in `_images`
        self.class_names, self.lowest = tuple(str(name) for name in class_names), bool(lowest)
        self.statistics = None if self.lowest else ChannelStatistics(0, self.class_names)
        self.lengths = None
        if not _is_whole_number(bottom_k) or int(bottom_k) < 0:
            raise ValueError(f'bottom_k must be a whole number, 0 or more, got {bottom_k!r}.')
        self.weakest = TopActivations(int(bottom_k), first_index, self.class_names, lowest=True) if bottom_k else None

    @property
    def num_channels(self):
        return self.firings.shape[0]

    def update(self, images, features, indices=None, maxima=None, labels=None):
        """Takes one batch into account.

        Args:
            images: the batch's images for display (uint8 `[batch, h, w(, c)]`), or None to keep only
                indices, firings and coordinates.
            features: the layer's feature maps `[batch, feat_h, feat_w, channels]`.
            indices: global image indices of the batch; by default they continue from the previous batch.
            maxima: the maps' maxima `[batch, channels]` where the network computed them already
                (`utils.models.tf_session.channel_maxima`), or None to compute them here; they must be the exact maxima.
                Coordinates always come from `features`, for the images that enter a top list only.
            labels: int `[batch]`, each image's class (an index into `statistics.class_names`) where there are classes.

        Returns:
            self.

        Raises:
            ValueError: wrong shapes, a changed channel count, a channel's maximum that is NaN or infinite, or
                labels missing where there are classes.
        """
        self._check_not_distinct()
        features = np.asarray(features)
        if features.ndim != 4:
            raise ValueError(f'features must be [batch, height, width, channels], got shape {features.shape}.')
        _check_numbers(features, 'features')
        if maxima is None:
            # Maximum over rows first, then over columns: long contiguous inner loops, about twice as fast as
            # one reduction over all pixels.
            maxima = features.max(axis=1).max(axis=1) if len(features) else np.zeros((0, features.shape[3]))
        else:
            maxima = np.asarray(maxima)
            if maxima.shape != (features.shape[0], features.shape[3]):
                raise ValueError(f'maxima must be [batch, channels] of the features, {list(features.shape[::3])}; '
                                 f'got shape {maxima.shape}.')
            _check_numbers(maxima, 'maxima')
        batch_size, num_channels = maxima.shape
        if not batch_size:
            return self
        if images is not None and len(images) != batch_size:
            raise ValueError(f'{len(images)} images for {batch_size} feature maps.')
        if self.num_seen and num_channels != self.num_channels:
            raise ValueError(f'features have {num_channels} channels, earlier batches had {self.num_channels}.')
        if indices is None:
            indices = np.arange(self.next_index, self.next_index + batch_size)
        try:
            indices = np.asarray(indices, np.int64)
        except (OverflowError, TypeError, ValueError) as error:
            raise ValueError(f'indices must be whole numbers of at most 64 bits: {error}.') from error
        if indices.shape != (batch_size,):
            raise ValueError(f'indices must have one entry per image ({batch_size}), got shape {indices.shape}.')
        # An image counted twice would take two places in a channel's top list. Indices rising above every
        # kept one (the usual case) are distinct and new; others are checked in full.
        rising = (np.diff(indices) > 0).all() and (not self.indices.size or indices[0] > self.indices.max())
        if not rising and (len(np.unique(indices)) != batch_size or np.isin(indices, self.indices).any()):
            raise ValueError('indices must be distinct and new: each image is given to update once, under one '
                             'index.')

        batch_firings = maxima.T  # [channels, batch]
        if not np.isfinite(batch_firings).all():  # one rule everywhere: states and activations.json hold numbers
            channel, position = np.argwhere(~np.isfinite(batch_firings))[0]
            raise ValueError(f'features contain NaN or infinite values (image {indices[position]}, channel {channel}: '
                             f'{batch_firings[channel, position]}); check the network and its input.')
        self._check_keeps_images(images is not None)
        if not self.num_seen:
            self._set_empty(num_channels)
        if not self.lowest:
            self.statistics.update(maxima, labels)
        if self.weakest is not None:  # from the same maxima: no second pass over the maps
            self.weakest.update(images, features, indices, maxima, labels)

        # Once a channel keeps num_samples images, only images reaching its last firing can change it.
        columns = np.arange(batch_size)  # the batch's images that may enter some channel's list
        if self.firings.shape[1] == self.num_samples:
            last = self.firings[:, -1:]
            reaching = batch_firings <= last if self.lowest else batch_firings >= last
            changing, columns = np.flatnonzero(reaching.any(axis=1)), np.flatnonzero(reaching.any(axis=0))
        else:
            changing = np.arange(num_channels)
        if len(changing):
            self._take_batch(changing, columns, batch_firings[np.ix_(changing, columns)], features, images, indices,
                             labels)
        self.num_seen += batch_size
        self.next_index = int(indices.max()) + 1
        return self

    def _take_batch(self, channels, columns, batch_firings, features, images, indices, labels):
        """Updates the kept images of `channels` with the images `columns` of a batch, whose maxima there are
        `batch_firings`."""
        # Candidates per channel: the kept images, then the batch. Ordering by (-firing, index) keeps the
        # strongest and, among equal firings, the earlier image (by (firing, index) the weakest: `_order`).
        kept_firings, kept_indices, kept_coords = self.firings[channels], self.indices[channels], self.coords[channels]
        num_kept = kept_firings.shape[1]
        candidate_firings = np.concatenate([kept_firings, batch_firings.astype(np.float64)], axis=1)
        candidate_indices = np.concatenate([kept_indices, np.broadcast_to(indices[columns], batch_firings.shape)],
                                           axis=1)
        order = self._order(candidate_firings, candidate_indices)

        # Coordinates: kept ones are known; for images entering the top, find the argmax only there.
        coords = np.zeros(order.shape + (2,), np.int64)
        if num_kept:
            coords = np.take_along_axis(kept_coords, np.minimum(order, num_kept - 1)[..., None], axis=1)
        rows, slots = np.nonzero(order >= num_kept)
        positions = columns[order[rows, slots] - num_kept]
        if len(positions):
            width = features.shape[2]
            flat = features[positions, :, :, channels[rows]].reshape(len(positions), -1).argmax(axis=1)
            coords[rows, slots] = np.stack([flat // width, flat % width], axis=1)

        new_firings = np.take_along_axis(candidate_firings, order, axis=1)
        new_indices = np.take_along_axis(candidate_indices, order, axis=1)
        if new_firings.shape[1] == self.firings.shape[1]:
            self.firings[channels], self.indices[channels], self.coords[channels] = new_firings, new_indices, coords
        else:  # still filling up: every channel is in `channels`
            self.firings, self.indices, self.coords = new_firings, new_indices, coords
        if images is not None and len(positions):
            for position in np.unique(positions):
                self._images[int(indices[position])] = np.array(images[position], copy=True)
                if labels is not None:
                    self._labels[int(indices[position])] = int(labels[position])
            self._forget_unkept_images()

    def merge(self, other):
        """Adds the results of a tracker that scanned a disjoint part of the dataset.

        The result equals one tracker's scan of both parts, provided both used global image indices.

        Args:
            other: a `TopActivations` with the same `num_samples`, channel count and `weakest` lists.

        Returns:
            self.

        Raises:
            ValueError: different `num_samples` or channel counts, one with `weakest` lists and one without, or both
                keep the same image index.
        """
        self._check_not_distinct()
        other._check_not_distinct()
        if other.lowest != self.lowest:
            raise ValueError('cannot merge a tracker of the strongest images with one of the weakest.')
        if other.num_samples != self.num_samples:
            raise ValueError(f'cannot merge trackers keeping {self.num_samples} and {other.num_samples} '
                             'images per channel.')
        if (other.weakest is None) != (self.weakest is None):
            raise ValueError('cannot merge a tracker that keeps the weakest images of every channel (bottom_k) with '
                             'one that does not: scan both parts with the same --bottom_k.')
        if self.weakest is not None and other.weakest.num_samples != self.weakest.num_samples:
            raise ValueError(f'cannot merge trackers keeping the {self.weakest.num_samples} and '
                             f'{other.weakest.num_samples} weakest images per channel: scan both parts with the same '
                             '--bottom_k.')
        if not other.num_seen:
            return self
        if not self.num_seen:
            self._set_empty(other.num_channels)
        if other.num_channels != self.num_channels:
            raise ValueError(f'cannot merge trackers of {self.num_channels} and {other.num_channels} channels '
                             '(different layers?).')
        if np.intersect1d(self.indices, other.indices).size:
            raise ValueError('both trackers kept the same image indices: they scanned overlapping data, or '
                             'were not given first_index/indices that are global over the dataset.')
        self._check_keeps_images(other.keeps_images)
        if self.weakest is not None:
            self.weakest.merge(other.weakest)
        candidate_firings = np.concatenate([self.firings, other.firings], axis=1)
        candidate_indices = np.concatenate([self.indices, other.indices], axis=1)
        candidate_coords = np.concatenate([self.coords, other.coords], axis=1)
        order = self._order(candidate_firings, candidate_indices)
        self.firings = np.take_along_axis(candidate_firings, order, axis=1)
        self.indices = np.take_along_axis(candidate_indices, order, axis=1)
        self.coords = np.take_along_axis(candidate_coords, order[..., None], axis=1)
        self._images.update(other._images)
        self._labels.update(other._labels)
        self._forget_unkept_images()
        if not self.lowest:
            self.statistics.merge(other.statistics)
            self.class_names = self.statistics.class_names
        self.num_seen += other.num_seen
        self.next_index = max(self.next_index, other.next_index)
        return self

    def channel(self, channel):
        """Returns `(firings, coords, indices, images)` of one channel, strongest first (weakest first if `lowest`).

        `images` is a list of the kept images, or None if the tracker was updated without images.
        """
        stop = None if self.lengths is None else int(self.lengths[channel])
        indices = self.indices[channel, :stop]
        images = [self._images[int(index)] for index in indices] if self.keeps_images is not False else None
        return self.firings[channel, :stop], self.coords[channel, :stop], indices, images

    def entry_classes(self, channel):
        """The class names of one channel's kept images, strongest first, or None without classes or images."""
        names = self.class_names
        if not names or not self.keeps_images:
            return None
        return [names[self._labels[int(index)]] for index in self.channel(channel)[2]]

    @property
    def kept_image_indices(self):
        """Sorted global indices of the distinct images stored (each once, whatever channels keep it)."""
        return np.array(sorted(self._images), np.int64)

    @property
    def all_kept_image_indices(self):
        """Sorted global indices of the distinct images stored here and in `weakest`."""
        if self.weakest is None:
            return self.kept_image_indices
        return np.union1d(self.kept_image_indices, self.weakest.kept_image_indices)

    @property
    def kept_image_kinds(self):
        """The distinct `(shape, dtype)` of the images stored here and in `weakest`: one for a tracker updated with
        images of one kind, none without images."""
        kinds = {(image.shape, image.dtype) for image in self._images.values()}
        return kinds if self.weakest is None else kinds | self.weakest.kept_image_kinds

    def without_images(self):
        """A tracker with the same firings, coordinates and indices, and no images nor `weakest` lists: what says
        which images to read again (attributions on a Dask worker), small to send."""
        tracker = TopActivations(self.num_samples, self.next_index, self.class_names)
        tracker.num_seen, tracker.keeps_images, tracker.lengths = self.num_seen, False, self.lengths
        tracker.firings, tracker.coords, tracker.indices = self.firings, self.coords, self.indices
        tracker.statistics = self.statistics
        return tracker

    def to_arrays(self):
        """The tracker as named arrays (no objects): what `from_arrays` takes and `save` writes. The statistics' are
        named `STATISTICS_PREFIX...`, those of `weakest` (where kept) `WEAKEST_PREFIX...`."""
        self._check_not_distinct()
        kept = self.kept_image_indices
        images = np.stack([self._images[int(index)] for index in kept]) if len(kept) else np.zeros((0,), np.uint8)
        labels = np.array([self._labels.get(int(index), -1) for index in kept], np.int64)
        weakest = {} if self.weakest is None else {
            WEAKEST_PREFIX + name: value for name, value in self.weakest.to_arrays().items()}
        return dict(num_samples=np.int64(self.num_samples), next_index=np.int64(self.next_index),
                    num_seen=np.int64(self.num_seen),
                    keeps_images=np.int64(-1 if self.keeps_images is None else int(self.keeps_images)),
                    firings=self.firings, coords=self.coords, indices=self.indices, image_indices=kept,
                    images=images, image_labels=labels, **({} if self.lowest else self.statistics.to_arrays()),
                    **weakest)

    @classmethod
    def from_arrays(cls, num_samples, next_index, num_seen, keeps_images, firings, coords, indices, image_indices,
                    images, image_labels, lowest=False, class_names=(), **others):
        """A tracker from the arrays of `to_arrays` (a saved one: see `load`).

        Args:
            lowest, class_names: for the tracker of the lowest firings, which keeps no statistics to name the
                classes: those of the tracker it belongs to.

        Raises:
            ValueError, TypeError: an array that is not a number where one is expected.
        """
        tracker = cls(int(num_samples), int(next_index), class_names, lowest=lowest)
        tracker.num_seen = int(num_seen)
        tracker.keeps_images = None if int(keeps_images) < 0 else bool(int(keeps_images))
        tracker.firings, tracker.coords, tracker.indices = firings, coords, indices
        tracker._images = {int(index): image for index, image in zip(image_indices, images)}
        tracker._labels = {int(index): int(label) for index, label in zip(image_indices, image_labels) if label >= 0}
        if not lowest:
            tracker.statistics = ChannelStatistics.from_arrays(others)
            tracker.class_names = tracker.statistics.class_names
        weakest = {name[len(WEAKEST_PREFIX):]: value for name, value in others.items()
                   if name.startswith(WEAKEST_PREFIX)}
        if weakest:
            tracker.weakest = cls.from_arrays(**{name: weakest[name] for name in TRACKER_ARRAYS}, lowest=True,
                                              class_names=tracker.class_names)
        return tracker

    def save(self, path, **extra_arrays):
        """Writes the tracker to an `.npz` file (no pickle), atomically (`utils.base.files.save_arrays`).

        Args:
            path: the file.
            **extra_arrays: more arrays to store beside the tracker's (names must not clash with them), for
                callers that keep metadata in the same file; `load` ignores them, `np.load` reads them.
        """
        arrays = self.to_arrays()
        clashes = sorted(set(arrays) & set(extra_arrays))
        if clashes:
            raise ValueError(f'extra arrays {clashes} would replace the tracker\'s own; rename them.')
        save_arrays(path, {**arrays, **extra_arrays})

    @classmethod
    def load(cls, path):
        """Reads a tracker written by `save` (`utils.base.files.load_arrays`; other arrays in the file are left).

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not a saved tracker.
        """
        what = 'a file written by TopActivations.save'
        arrays = load_arrays(path, what)
        return cls.from_saved(arrays, path, what)

    @classmethod
    def from_saved(cls, arrays, path, what):
        """`from_arrays` of the tracker's arrays among `arrays` (read from `path`), or a ValueError saying that
        the file is not `what`."""
        try:
            return cls.from_arrays(**{name: arrays[name] for name in TRACKER_ARRAYS},
                                   **{name: arrays[name] for name in arrays
                                      if name.startswith((STATISTICS_PREFIX, WEAKEST_PREFIX))})
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(f'{path} is not {what}: {error}') from error

    def _check_keeps_images(self, keeps_images):
        if keeps_images is None:
            return
        if self.keeps_images is None:
            self.keeps_images = keeps_images
        elif keeps_images != self.keeps_images:
            had = 'with' if self.keeps_images else 'without'
            raise ValueError(f'this tracker was updated {had} images; pass images always or never, so that '
                             'every kept image can be drawn.')

    def _check_not_distinct(self):
        if self.lengths is not None:
            raise ValueError('this tracker holds top lists of distinct places, chosen for drawing (distinct_top); '
                             'update, merge and save the tracker they were chosen from.')

    def _set_empty(self, num_channels):
        self.firings = np.zeros((num_channels, 0), np.float64)
        self.coords = np.zeros((num_channels, 0, 2), np.int64)
        self.indices = np.zeros((num_channels, 0), np.int64)
        if not self.lowest:
            self.statistics = ChannelStatistics(num_channels, self.class_names)

    def _order(self, firings, indices):
        """Per row, the positions of the `num_samples` first entries by (-firing, index), or by (firing, index) where
        `lowest`: ties go to the earlier image either way."""
        return np.lexsort((indices, firings if self.lowest else -firings), axis=-1)[:, :self.num_samples]

    def _forget_unkept_images(self):
        # A set from the list of a few hundred indices: several times faster than np.unique, on every batch.
        kept = set(self.indices.ravel().tolist())
        for index in [index for index in self._images if index not in kept]:
            del self._images[index]
            self._labels.pop(index, None)


def distinct_top(tracker, field, places, num_samples):
    """Each channel's top list of distinct places, chosen from the candidates a tracker kept.

    An entry repeats a place when its box (its receptive field, `field.recfield[y, x]`), mapped into its photograph
    (`utils.data.images.photo_boxes`), overlaps the box of any stronger entry of the same photograph by more than
    `MAX_OVERLAP` of the smaller box's area, whether that stronger entry repeats a place itself or not. So whether an
    entry repeats depends on the stronger entries alone, which a tracker that keeps the entry keeps too: the lists
    are those of all images of the dataset wherever the candidates hold `num_samples` distinct entries, or every
    image seen. Trackers merged from shards give the lists of one scan.

    Args:
        tracker: a `TopActivations` whose lists are the candidates, strongest first.
        field: the layer's `recfield.ReceptiveField`.
        places: the places (`utils.data.images.PLACE_COLUMNS` rows) of the kept images by dataset index: an array
            `[images, 6]` or a dict.
        num_samples: entries to keep per channel.

    Returns:
        `(distinct, short)`: a `TopActivations` of at most `num_samples` entries per channel, strongest first, whose
        `lengths` say how many each holds; and the channels whose lists came out shorter than `num_samples` although
        the tracker saw images it did not keep (more candidates could give them more entries).
    """
    num_channels, num_kept = tracker.indices.shape
    rows = np.array([places[index] for index in tracker.indices.ravel().tolist()], np.int64)
    rows = rows.reshape(num_channels, num_kept, len(PLACE_COLUMNS))
    boxes = photo_boxes(field.recfield[tracker.coords[..., 0], tracker.coords[..., 1]], rows,
                        (field.height, field.width))
    keep = _not_repeating(rows[..., 0], boxes)
    keep &= np.cumsum(keep, axis=1) <= num_samples
    lengths = keep.sum(axis=1)
    order = np.argsort(~keep, axis=1, kind='stable')[:, :lengths.max(initial=0)]  # the kept entries, in order
    filler = np.arange(order.shape[1]) >= lengths[:, None]
    distinct = TopActivations(num_samples, tracker.next_index)
    distinct.num_seen, distinct.keeps_images, distinct.lengths = tracker.num_seen, tracker.keeps_images, lengths
    distinct.firings = np.where(filler, 0.0, np.take_along_axis(tracker.firings, order, axis=1))
    distinct.coords = np.where(filler[..., None], 0, np.take_along_axis(tracker.coords, order[..., None], axis=1))
    distinct.indices = np.where(filler, -1, np.take_along_axis(tracker.indices, order, axis=1))
    kept = set(distinct.indices[~filler].tolist())
    distinct._images = {index: image for index, image in tracker._images.items() if index in kept}
    distinct._labels = {index: label for index, label in tracker._labels.items() if index in kept}
    distinct.statistics = tracker.statistics  # of every image seen, whichever the lists show
    distinct.class_names, distinct.weakest = tracker.class_names, tracker.weakest  # the weakest show every image
    return distinct, np.flatnonzero((lengths < num_samples) & (tracker.num_seen > num_kept))


def _not_repeating(photos, boxes):
    """Which entries repeat no stronger entry's place (`distinct_top`): bool `[channels, n]` of the photographs
    `[channels, n]` and boxes in them `[channels, n, 4]` of lists ordered strongest first."""
    num_channels, num_kept = photos.shape
    areas = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    stronger = np.tri(num_kept, k=-1, dtype=bool)  # [i, j]: entry j comes before entry i
    keep = np.ones(photos.shape, bool)
    step = max(1, (1 << 20) // max(1, num_kept * num_kept))  # channels at a time: about a million pairs
    for start in range(0, num_channels, step):
        part = slice(start, start + step)
        sides = [np.clip(np.minimum(boxes[part, :, None, axis + 2], boxes[part, None, :, axis + 2])
                         - np.maximum(boxes[part, :, None, axis], boxes[part, None, :, axis]), 0, None)
                 for axis in (0, 1)]
        smaller = np.minimum(areas[part, :, None], areas[part, None, :])
        repeats = (sides[0] * sides[1] > MAX_OVERLAP * smaller) & (photos[part, :, None] == photos[part, None, :])
        keep[part] = ~(repeats & stronger).any(axis=2)
    return keep


class Activations:
    """The strongest images of one channel, with the interface of the original tool.

    Attributes:
        firings: float64 `[n]`, strongest first.
        coords: int64 `[n, 2]`, feature-map `(y, x)` of each firing.
        images: list of the kept images.
    """

    def __init__(self, num_samples=10):
        self._top = TopActivations(num_samples)

    def update(self, images, features):
        """Takes one batch into account.

        Args:
            images: uint8 images `[batch, h, w(, c)]` for display.
            features: this channel's feature maps `[batch, feat_h, feat_w]`.
        """
        features = np.asarray(features)
        if features.ndim != 3:
            raise ValueError(f'features must be one channel\'s maps [batch, height, width], got shape '
                             f'{features.shape}; use TopActivations for all channels of a layer.')
        self._top.update(images, features[..., None])

    @property
    def firings(self):
        return self._top.firings[0] if self._top.num_seen else np.zeros(0)

    @property
    def coords(self):
        return self._top.coords[0] if self._top.num_seen else np.zeros((0, 2), np.int64)

    @property
    def images(self):
        return self._top.channel(0)[3] if self._top.num_seen else []

    def retrieve(self, recfield):
        """Pictures of the kept images.

        Args:
            recfield: the layer's `recfield.ReceptiveField`.

        Returns:
            `(full_column, crop_column)`: the kept images stacked vertically with the receptive field of the
            firing drawn, and those receptive fields cropped and padded with black to the layer's largest box.

        Raises:
            ValueError: nothing kept yet, or a field of a smaller feature map than the channel's.
        """
        if not len(self.coords):
            raise ValueError('no images kept yet: call update with a batch before retrieve.')
        if (self.coords >= np.array(recfield.feature_shape)).any():
            raise ValueError(f'the receptive field is of a {recfield.feature_shape} feature map, smaller than this '
                             f'channel\'s (it fires at {tuple(self.coords.max(axis=0).tolist())}): give the field '
                             'of the same layer, measured on images of the same size.')
        boxes = [recfield.recfield[y, x] for y, x in self.coords]
        return full_column(self.images, boxes), crop_column(self.images, boxes, recfield.max())


def _check_numbers(array, name):
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f'{name} must be numbers (a feature map), got dtype {array.dtype}.')


def _is_whole_number(value):
    """True for an int, or a float with no fractional part (not for bools or strings)."""
    if isinstance(value, (bool, str, bytes)):
        return False
    try:
        return float(value).is_integer()
    except (TypeError, ValueError):
        return False


def distinct_layers(layers, places, num_samples):
    """The layers with their top lists of distinct places (`distinct_top`); warns, once per layer, about
    lists that came out short while more images were seen.

    Args:
        layers: iterable of `(name, field, tracker)`, the trackers holding the candidates.
        places, num_samples: see `distinct_top`.

    Returns:
        `(layers, record)`: the layers with their distinct trackers, and the `distinct_places` entry of
        `activations.json`: the overlap that makes a repeat, the candidates per channel, and per layer the short
        channels, where there are any.
    """
    chosen, short, candidates = [], {}, None
    for name, field, tracker in layers:
        candidates = tracker.num_samples
        distinct, short_channels = distinct_top(tracker, field, places, num_samples)
        if len(short_channels):
            logger.warning('%d of the %d channels of %s show fewer than %d distinct places (the first: channel %d): '
                           'their %d candidates repeat places. Scan with a larger --candidates_per_sample to find '
                           'more, or with --allow_repeats to show the strongest images whatever their place.',
                           len(short_channels), tracker.num_channels, name, num_samples, short_channels[0],
                           tracker.num_samples)
            short[name] = short_channels.tolist()
        chosen.append((name, field, distinct))
    return chosen, {'distinct_places': {'max_overlap': MAX_OVERLAP, 'candidates': candidates, 'short_channels': short}}
