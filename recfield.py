"""Receptive fields of feature-map pixels, measured by probing the network.

`ReceptiveField(imshape, forward_func)` finds, for every pixel of one layer's feature map, the box of input
pixels it depends on. It needs nothing but a function that runs the forward pass: it feeds probe images
(a reference image with some rows, or some columns, changed) and records which feature pixels change.

Rows and columns are measured separately by the same code (columns are rows of the transposed image). For
one axis the measurement is either

* row by row: one probe per input row, so the rows a feature pixel depends on are read off directly; or
* multiplexed: when the receptive field is small next to the image, probe `k` of `S` lights every row
  `y` with `y % S == k` (rows further apart than the receptive field, so a feature pixel sees at most one
  of them), which gives each box modulo `S`; a few "prefix" probes (rows `[0, j*S)` lit) and "suffix"
  probes (rows `[j*S, H)` lit) then say which block of `S` rows the box starts and ends in. That needs
  about `S + 2*H/S` probe images instead of `H`. Every decoded box is checked for consistency, and an axis
  that does not decode cleanly is measured again row by row, so both ways give the same boxes.

Masked probes (a dead ReLU, a unit saturated by the reference image, a max-pool that ignores the change)
would shrink boxes, so every probe is run twice on a quiet grey reference (which saturates nothing), moving
the lit pixels by the full value range up in one run and down in the other (random signs per pixel), and a
feature pixel counts as changed when it changes in either run. More runs on noisy references can be asked for.
"""

import logging
import math

import cv2
import numpy as np

logger = logging.getLogger(__name__)

ROWS, COLUMNS = 0, 1


class ReceptiveField:
    """Receptive field of every pixel of one layer's feature map, measured by probing.

    Attributes:
        recfield: int array `[feat_h, feat_w, 4]` of boxes `[y1, x1, y2, x2]` in image coordinates,
            end-exclusive and clipped to the image. A feature pixel that depends on no input pixel at all
            gets the empty box `[0, 0, 0, 0]`.
        size, stride, padding: `(y, x)` tuples in the convention of the google-research `receptive_field`
            library: the box of feature pixel `i` is centred at `-padding + i * stride + (size - 1) / 2`.
            Each is `None` where the image is too small to show an unclipped box edge, or where the boxes
            do not follow that convention (a network whose branches are not aligned).
        num_probe_images: how many probe images were run (references and batch padding excluded).
        whole_image: True when every feature pixel depends on the whole image (see the warning).
    """

    def __init__(self, imshape, forward_func, value_range=(-1.0, 1.0), num_trials=2, multiplex=True,
                 tolerance=0.0, seed=0):
        """Measures the receptive fields.

        Args:
            imshape: `[batch_size, height, width, channels]`, all four known positive integers. Every batch
                sent to `forward_func` has exactly `batch_size` images.
            forward_func: function from a float32 batch `[batch_size, height, width, channels]` to that
                layer's feature map `[batch_size, feat_h, feat_w, feat_channels]`, returned as an array or
                as a one-element list, e.g. `lambda x: sess.run([layer], feed_dict={images_ph: x})`.
            value_range: `(low, high)`, the range of input values the network expects. References are
                drawn from it; probes move the lit lines by its width, up or down.
            num_trials: how many times each probe is run (masking guard). Pairs of runs share a reference
                and move the lit lines in opposite directions; the first pair's reference is a quiet grey,
                later ones random noise over `value_range`.
            multiplex: light several rows per probe when the receptive field allows it. False probes row by
                row (same boxes, more probe images).
            tolerance: a feature value counts as changed when it moves by more than this. 0 (exact) is right
                on CPUs; raise it only if the forward pass is not bit-reproducible (some GPU kernels).
            seed: seed of the random references and probe values.

        Raises:
            ValueError: `imshape` is not four known positive integers, or `forward_func` does not return
                one 4-D feature map with `batch_size` images.
        """
        self.imshape = _check_imshape(imshape)
        self.batch_size, self.height, self.width, self.channels = self.imshape
        low, high = (float(v) for v in value_range)
        if not high > low:
            raise ValueError(f'value_range must be (low, high) with high > low, got {value_range!r}.')
        if num_trials < 1:
            raise ValueError(f'num_trials must be at least 1, got {num_trials}.')
        self._forward_func = forward_func
        self._tolerance = float(tolerance)
        self.num_probe_images = 0

        # Each reference is used twice, with the probed lines moved up by the full value range in one trial
        # and down in the other (random signs per pixel): a unit that a change cannot reach in one direction
        # (a dead ReLU, a max-pool ignoring a smaller value) is reached in the other. The first reference is
        # a quiet grey (mid-range, faint noise), which saturates no unit; later ones are full-range noise.
        rng = np.random.default_rng(seed)
        image_shape = (self.height, self.width, self.channels)
        middle, half_range = (low + high) / 2, (high - low) / 2
        self._trials = []  # (reference image, probe values, reference feature map)
        for trial in range(num_trials):
            if trial % 2 == 0:
                amplitude = 0.02 if trial == 0 else 1.0
                reference = (middle + amplitude * half_range * rng.uniform(-1, 1, image_shape)).astype(np.float32)
                change = (high - low) * rng.choice([-1.0, 1.0], image_shape).astype(np.float32)
                reference_map = self._forward(np.repeat(reference[None], self.batch_size, axis=0))
                if np.isnan(reference_map).any():
                    raise ValueError('forward_func returned NaN for a reference image; check value_range '
                                     'and the network\'s weights.')
                self.feature_shape = reference_map.shape[1:3]
            probe_values = reference + change if trial % 2 == 0 else reference - change
            self._trials.append((reference, probe_values, reference_map))
        mixes_batch = self._mixes_batch()

        periods = self._estimate_periods() if multiplex else (None, None)
        rows = self._measure_axis(ROWS, periods[ROWS])
        columns = self._measure_axis(COLUMNS, periods[COLUMNS])
        self.recfield = np.stack([rows[0], columns[0], rows[1], columns[1]], axis=-1).astype(np.int64)

        unresponsive = (self.recfield[..., 2] == 0) & (self.recfield[..., 3] == 0)
        if unresponsive.any():
            logger.warning('%d of %d feature pixels did not change for any probe; their boxes are empty. '
                           'Is the layer constant (dead units, zero weights)?',
                           int(unresponsive.sum()), unresponsive.size)
        full = (self.recfield == [0, 0, self.height, self.width]).all(axis=-1)
        self.whole_image = mixes_batch or (bool(full.all()) and max(self.feature_shape) > 1)
        if mixes_batch:
            logger.warning(
                'The feature map of an image changes with the other images in its batch: the forward pass '
                'mixes images, as BatchNorm does in training mode, so every feature pixel depends on the whole '
                'image (and batch) and these boxes mean nothing. Feed the training-phase flag as False (e.g. '
                'phase_train: False) in forward_func.')
        elif self.whole_image:
            logger.warning(
                'Every feature pixel depends on the whole image. Either the receptive field is larger than '
                'the image (use larger images to see it), or the forward pass mixes all pixels: a BatchNorm '
                'layer in training mode or a per-image normalisation inside the graph. Then feed the '
                'training-phase flag as False (e.g. phase_train: False) and normalise images before the '
                'input placeholder.')
        self.size, self.stride, self.padding = _geometry(self.recfield)
        # Measured: from here on the field is a plain value (it can be pickled, e.g. to a Dask client), and it
        # keeps neither the network nor the probe images alive.
        self._forward_func = self._trials = None

    @classmethod
    def from_arrays(cls, recfield, image_size):
        """A receptive field measured before, from the arrays of `to_arrays` (no probing).

        Args:
            recfield: int `[feat_h, feat_w, 4]` boxes `[y1, x1, y2, x2]`, within the image.
            image_size: `(height, width)` of the probe images they were measured on.

        Returns:
            a `ReceptiveField` with the same boxes, size, stride and padding (`num_probe_images` is 0).

        Raises:
            ValueError: arrays of the wrong shape, or boxes outside the image.
        """
        boxes = np.asarray(recfield)
        size = np.asarray(image_size).reshape(-1)
        if (boxes.ndim != 3 or boxes.shape[-1] != 4 or not boxes.shape[0] or not boxes.shape[1]
                or not np.issubdtype(boxes.dtype, np.integer)):
            raise ValueError(f'a receptive field is an int array [feat_h, feat_w, 4], got {boxes.dtype} '
                             f'{boxes.shape}.')
        if size.shape != (2,) or not np.issubdtype(size.dtype, np.integer) or (size < 1).any():
            raise ValueError(f'image_size must be (height, width), got {image_size!r}.')
        height, width = (int(value) for value in size)
        limits = np.array([height, width, height, width])
        if (boxes < 0).any() or (boxes > limits).any() or (boxes[..., :2] > boxes[..., 2:]).any():
            raise ValueError(f'receptive field boxes lie outside the {height}x{width} image they were measured on.')
        field = cls.__new__(cls)
        field.height, field.width = height, width
        field.recfield = boxes.astype(np.int64)
        field.feature_shape = field.recfield.shape[:2]
        field.num_probe_images = 0
        full = (field.recfield == [0, 0, height, width]).all(axis=-1)
        field.whole_image = bool(full.all()) and max(field.feature_shape) > 1
        field.size, field.stride, field.padding = _geometry(field.recfield)
        return field

    def to_arrays(self):
        """`{'recfield': boxes, 'image_size': [height, width]}`: what `from_arrays` takes (e.g. for `np.savez`)."""
        return {'recfield': self.recfield, 'image_size': np.array([self.height, self.width], np.int64)}

    def __eq__(self, other):
        if not isinstance(other, ReceptiveField):
            return NotImplemented
        return (self.height, self.width) == (other.height, other.width) and np.array_equal(self.recfield,
                                                                                           other.recfield)

    __hash__ = None

    def max(self):
        """Returns `(max box height, max box width)` over all feature pixels."""
        heights = self.recfield[..., 2] - self.recfield[..., 0]
        widths = self.recfield[..., 3] - self.recfield[..., 1]
        return int(heights.max()), int(widths.max())

    def draw_example(self):
        """Returns a uint8 `[height, width]` image with the box of the centre feature pixel drawn on it."""
        canvas = np.full((self.height, self.width), 64, np.uint8)
        y1, x1, y2, x2 = self.recfield[self.feature_shape[0] // 2, self.feature_shape[1] // 2]
        if y2 > y1 and x2 > x1:
            canvas[y1:y2, x1:x2] = 160
            cv2.rectangle(canvas, (int(x1), int(y1)), (int(x2) - 1, int(y2) - 1), 255, 1)
        return canvas

    # -- running the network ------------------------------------------------------------------------------

    def _forward(self, batch):
        """Runs `forward_func` on one full batch and returns its 4-D feature map, checked."""
        result = self._forward_func(batch)
        if isinstance(result, (list, tuple)):
            if len(result) != 1:
                raise ValueError(f'forward_func returned {len(result)} values; it must return the feature '
                                 'map of one layer, e.g. lambda x: sess.run([layer], feed_dict={images: x}).')
            result = result[0]
        try:
            feature_map = np.asarray(result)
        except Exception as error:  # an object numpy cannot turn into an array
            raise ValueError(f'forward_func returned {type(result).__name__}, not a feature map '
                             f'array: {error}') from error
        if feature_map.dtype == object or not np.issubdtype(feature_map.dtype, np.number):
            raise ValueError(f'forward_func returned {type(result).__name__} of dtype {feature_map.dtype}; it '
                             'must return a numeric feature map [batch, height, width, channels].')
        if feature_map.ndim != 4:
            raise ValueError(f'forward_func returned an array of shape {feature_map.shape}; it must return a '
                             '4-D feature map [batch, height, width, channels]. Pick a convolutional layer '
                             '(not a fully connected one) or reshape its output.')
        if feature_map.shape[0] != self.batch_size:
            raise ValueError(f'forward_func returned {feature_map.shape[0]} feature maps for a batch of '
                             f'{self.batch_size} images; it must return one per image, in order.')
        if hasattr(self, 'feature_shape') and feature_map.shape[1:3] != self.feature_shape:
            raise ValueError(f'forward_func returned feature maps of size {feature_map.shape[1:3]}, earlier '
                             f'{self.feature_shape}; the forward pass must not change between calls.')
        return feature_map

    def _run_probes(self, probes):
        """Runs probe images through the network for every reference.

        Args:
            probes: list of `(axis, lit_lines)`: light these rows (`ROWS`) or columns (`COLUMNS`).

        Returns:
            bool array `[len(probes), feat_h, feat_w]`: which feature pixels changed for each probe under
            any reference.
        """
        changed = np.zeros((len(probes),) + tuple(self.feature_shape), bool)
        for reference, probe_values, reference_map in self._trials:
            for start in range(0, len(probes), self.batch_size):
                chunk = probes[start:start + self.batch_size]
                # Fill the batch with the reference so that fixed-shape placeholders work.
                batch = np.repeat(reference[None], self.batch_size, axis=0)
                for position, (axis, lines) in enumerate(chunk):
                    _light(batch[position], probe_values, lines, axis)
                feature_map = self._forward(batch)
                difference = np.abs(feature_map[:len(chunk)] - reference_map[:len(chunk)])
                # NaN compares False with '>' but is a change all the same.
                moved = (difference > self._tolerance) | np.isnan(difference)
                changed[start:start + len(chunk)] |= moved.any(axis=-1)
        self.num_probe_images += len(probes) * len(self._trials)
        return changed

    def _mixes_batch(self):
        """True when the output for one image depends on the other images of its batch."""
        if self.batch_size < 2:
            return False
        reference, probe_values, reference_map = self._trials[0]
        batch = np.repeat(reference[None], self.batch_size, axis=0)
        batch[1:] = probe_values
        return not np.array_equal(self._forward(batch)[0], reference_map[0])

    # -- one axis -----------------------------------------------------------------------------------------

    def _measure_axis(self, axis, period):
        """Returns `(start, stop)`, int arrays `[feat_h, feat_w]`: each box's extent along `axis`.

        Lines `period` apart are lit together when that takes fewer probes; None probes line by line.
        """
        length = self.height if axis == ROWS else self.width
        if period is not None and period + 2 * (math.ceil(length / period) - 1) < length:
            extent = self._measure_multiplexed(axis, length, period)
            if extent is not None:
                return extent
            logger.debug('axis %d: multiplexed probes did not decode cleanly; probing line by line', axis)
        changed = self._run_probes([(axis, [line]) for line in range(length)])
        return _hull(changed)

    def _estimate_periods(self):
        """Spacings of lit rows and of lit columns wider than any box, from one probe lighting the middle line.

        If `n` feature lines change when one input line is lit and the layer's stride is `s`, the
        receptive field is shorter than `(n + 1) * s`. The stride is bounded by image size over feature-map
        size. An estimate that is too small is caught when decoding.

        Returns:
            `(row period, column period)`.
        """
        lengths = (self.height, self.width)
        changed = self._run_probes([(axis, [lengths[axis] // 2]) for axis in (ROWS, COLUMNS)])
        periods = []
        for axis in (ROWS, COLUMNS):
            affected = changed[axis].sum(axis=axis).max()
            stride = math.ceil(lengths[axis] / self.feature_shape[axis])
            periods.append(int((affected + 1) * stride + 1))
        return tuple(periods)

    def _measure_multiplexed(self, axis, length, period):
        """Measures one axis with lines `period` apart; returns None where the result is not consistent."""
        num_blocks = math.ceil(length / period)
        lines = np.arange(length)
        probes = [(axis, lines[lines % period == phase]) for phase in range(period)]
        probes += [(axis, lines[:block * period]) for block in range(1, num_blocks)]
        probes += [(axis, lines[block * period:]) for block in range(1, num_blocks)]
        changed = self._run_probes(probes)

        # Decode each distinct pattern of observations once: feature pixels share very few of them.
        unique_patterns, pattern_of_pixel = _unique_rows(changed.reshape(len(changed), -1).T)
        decoded = np.zeros((len(unique_patterns), 2), np.int64)
        for index, pattern in enumerate(unique_patterns):
            extent = _decode_pattern(pattern[:period], pattern[period:period + num_blocks - 1],
                                     pattern[period + num_blocks - 1:], period, length)
            if extent is None:
                return None
            decoded[index] = extent
        extents = decoded[pattern_of_pixel.reshape(-1)].reshape(tuple(self.feature_shape) + (2,))
        return extents[..., 0], extents[..., 1]


def _decode_pattern(phase_changed, prefix_changed, suffix_changed, period, length):
    """Decodes one feature pixel's extent `(start, stop)` from multiplexed observations.

    Args:
        phase_changed: bool `[period]`, whether lighting every line `y % period == phase` changed the pixel.
        prefix_changed: bool `[num_blocks - 1]`, whether lighting lines `[0, j * period)` changed it
            (`j = 1 ..`): True exactly for `j > start // period`.
        suffix_changed: bool `[num_blocks - 1]`, whether lighting lines `[j * period, length)` changed it:
            True exactly for `j <= (stop - 1) // period`.
        period: spacing of the lit lines.
        length: image size along the axis.

    Returns:
        `(start, stop)`, `(0, 0)` for a pixel that nothing changes, or None when the observations do not fit
        a box shorter than `period` (the estimate was too small, or a probe was masked).
    """
    if not phase_changed.any():
        return (0, 0) if not prefix_changed.any() and not suffix_changed.any() else None
    if phase_changed.all() or not _is_step(prefix_changed, rising=True) or not _is_step(suffix_changed,
                                                                                     rising=False):
        return None
    first_block = int((~prefix_changed).sum())
    last_block = int(suffix_changed.sum())
    # The box starts right after the longest run of unchanged phases (cyclically); that run must be unique.
    changed_phases = np.flatnonzero(phase_changed)
    gaps = np.diff(np.append(changed_phases, changed_phases[0] + period)) - 1
    longest = gaps.max()
    if (gaps == longest).sum() != 1:
        return None
    start_phase = changed_phases[(np.argmax(gaps) + 1) % len(changed_phases)]
    box_length = period - longest
    start = first_block * period + start_phase
    stop = start + box_length
    if stop > length or (stop - 1) // period != last_block:
        return None
    return int(start), int(stop)


def _unique_rows(flags):
    """Distinct rows of a bool matrix `[n, m]`, and for each row the index of its distinct row.

    Rows are packed into 64-bit words and sorted as integers: much faster than `np.unique(axis=0)`.
    """
    packed = np.packbits(flags, axis=1)
    packed = np.pad(packed, ((0, 0), (0, -packed.shape[1] % 8)))
    words = np.ascontiguousarray(packed).view(np.uint64)
    order = np.lexsort(words.T[::-1])
    sorted_words = words[order]
    starts = np.concatenate([[True], (sorted_words[1:] != sorted_words[:-1]).any(axis=1)])
    inverse = np.empty(len(flags), np.int64)
    inverse[order] = np.cumsum(starts) - 1
    return flags[order[starts]], inverse


def _is_step(flags, rising):
    """True when `flags` is all False then all True (rising) or all True then all False (falling)."""
    values = flags.astype(np.int8)
    steps = np.diff(values)
    return bool((steps >= 0).all() if rising else (steps <= 0).all())


def _hull(changed):
    """Extent `(start, stop)` `[feat_h, feat_w]` of the lines whose single-line probe changed each pixel."""
    any_change = changed.any(axis=0)
    start = np.where(any_change, changed.argmax(axis=0), 0)
    stop = np.where(any_change, len(changed) - changed[::-1].argmax(axis=0), 0)
    return start, stop


def _light(image, probe_values, lines, axis):
    """Sets `lines` (rows if `axis` is `ROWS`, else columns) of `image` to their probe values, in place."""
    index = [slice(None)] * 3
    index[axis] = np.asarray(lines, dtype=np.intp)
    image[tuple(index)] = probe_values[tuple(index)]


def _check_imshape(imshape):
    """Returns `imshape` as a tuple of four ints, or raises ValueError saying what to pass."""
    try:
        values = list(imshape)
    except TypeError:
        values = None
    if values is None or len(values) != 4:
        raise ValueError(f'imshape must be [batch_size, height, width, channels], got {imshape!r}.')
    checked = []
    for name, value in zip(('batch_size', 'height', 'width', 'channels'), values):
        if not _is_positive_integer(value):
            raise ValueError(f'imshape {imshape!r}: {name} is {value!r}; every dimension must be a known '
                             'positive integer. Give the placeholder a fixed shape, or pass the batch size '
                             'and image size you will feed.')
        checked.append(int(value))
    return tuple(checked)


def _is_positive_integer(value):
    if value is None or isinstance(value, (bool, str, bytes)):
        return False
    try:
        return float(value).is_integer() and int(value) >= 1
    except (TypeError, ValueError):
        return False


def _geometry(recfield):
    """Size, stride and padding `(y, x)` from the box edges that nothing clips.

    Boxes are clipped by the image and also by the padding of inner layers (a VALID convolution of stride 2
    on an even size never reads the last row, so a later SAME layer's padding stands there): clipped starts
    all equal the smallest start, clipped stops the largest stop. So a start is exact where it is above the
    smallest, a stop where it is below the largest. The stride comes from two exact starts or two exact stops,
    the size from one exact start and one exact stop (of the same or different pixels), the padding from an
    exact start.

    Returns:
        `(size, stride, padding)`, each a `(y, x)` tuple, or None where some axis cannot be derived.
    """
    per_axis = []
    for axis in (ROWS, COLUMNS):
        # Boxes along this axis, one per feature line, taken from the middle of the other axis.
        boxes = recfield if axis == ROWS else recfield.transpose(1, 0, 2)
        starts, stops = boxes[..., axis], boxes[..., axis + 2]
        if not ((starts == starts[:, :1]).all() and (stops == stops[:, :1]).all()):
            per_axis.append(None)  # boxes differ along the other axis: not one geometry
            continue
        per_axis.append(_axis_geometry(starts[:, 0], stops[:, 0]))
    if any(values is None for values in per_axis):
        return None, None, None
    return tuple(tuple(int(values[i]) for values in per_axis) for i in range(3))


def _axis_geometry(starts, stops):
    """`(size, stride, padding)` along one axis, or None (see `_geometry`)."""
    index = np.arange(len(starts))
    exact_start = np.flatnonzero(starts > starts.min())
    exact_stop = np.flatnonzero(stops < stops.max())
    strides = set()
    for exact, edges in ((exact_start, starts), (exact_stop, stops)):
        if len(exact) >= 2:
            strides.update(np.unique(np.diff(edges[exact]) // np.diff(exact)).tolist())
            if np.any(np.diff(edges[exact]) % np.diff(exact)):
                return None
    if len(strides) != 1 or not len(exact_start) or not len(exact_stop):
        return None
    stride = strides.pop()
    padding = index[exact_start[0]] * stride - starts[exact_start[0]]
    size = stops[exact_stop[0]] + padding - index[exact_stop[0]] * stride
    # Every exact edge must fit the same size and padding.
    if np.any(index[exact_start] * stride - padding != starts[exact_start]) or np.any(
            index[exact_stop] * stride - padding + size != stops[exact_stop]):
        return None
    return size, stride, padding
