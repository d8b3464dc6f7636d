"""Receptive fields of feature-map pixels, measured by probing the network.

`ReceptiveField(imshape, forward_func)` finds, for every pixel of one layer's feature map, the box of input
pixels it depends on. It needs nothing but a function that runs the forward pass: it feeds probe images
(a reference image with some rows, or some columns, changed) and records which feature pixels change.
`measure_receptive_fields(imshape, forward_func, num_layers)` measures several layers from one set of
probes, with a `forward_func` that returns every layer's map.

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
        height, width: the probe images' size; `feature_shape`: `(feat_h, feat_w)`.
        num_probe_images: how many probe images were run (references and batch padding excluded); fields
            measured together (`measure_receptive_fields`) share their probes and this count.
        whole_image: True when every feature pixel depends on the whole image (see the warning).
    """

    def __init__(self, imshape, forward_func, value_range=(-1.0, 1.0), num_trials=2, multiplex=True,
                 tolerance=0.0, seed=0, extreme_references=True):
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
            extreme_references: also run every probe on a reference at each end of the value range with the
                lit lines at the other end (two more runs): exact for units that only a strong same-signed
                change wakes. False halves the probe images where no such units can be.

        Raises:
            ValueError: `imshape` is not four known positive integers, or `forward_func` does not return
                one 4-D feature map with `batch_size` images.
        """
        prober = _Prober(imshape, forward_func, None, value_range, num_trials, extreme_references, tolerance, seed)
        self.__dict__.update(vars(prober.measure(multiplex)[0]))

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
        return cls._of_boxes(boxes, height, width, num_probe_images=0)

    @classmethod
    def _of_boxes(cls, boxes, height, width, num_probe_images, mixes_batch=False):
        """A field with these boxes; geometry and `whole_image` derived from them."""
        field = cls.__new__(cls)
        field.height, field.width = height, width
        field.recfield = np.asarray(boxes, np.int64)
        field.feature_shape = tuple(field.recfield.shape[:2])
        field.num_probe_images = num_probe_images
        full = (field.recfield == [0, 0, height, width]).all(axis=-1)
        field.whole_image = mixes_batch or (bool(full.all()) and max(field.feature_shape) > 1)
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


def measure_receptive_fields(imshape, forward_func, num_layers, value_range=(-1.0, 1.0), num_trials=2,
                             multiplex=True, tolerance=0.0, seed=0, extreme_references=True, layer_names=None):
    """The receptive fields of several layers, measured from one set of probe images.

    Every probe batch is one `forward_func` call returning all layers' maps, so the layers share the probes
    (a deep layer's forward pass computes the shallow ones anyway). Each axis is multiplexed when that takes
    fewer probes for every layer, and probed line by line otherwise (one line-by-line pass serves all layers).
    The boxes are those `ReceptiveField` measures layer by layer.

    Args:
        imshape, value_range, num_trials, multiplex, tolerance, seed, extreme_references: as for
            `ReceptiveField`.
        forward_func: function from a float32 batch `imshape` to a list of `num_layers` feature maps
            `[batch_size, feat_h, feat_w, channels]`, e.g. `lambda x: sess.run(layers, feed_dict={images: x})`.
        num_layers: how many maps `forward_func` returns.
        layer_names: the layers' names, for warnings (default: their positions).

    Returns:
        list of `ReceptiveField`, one per layer, in order; each has the shared `num_probe_images`.

    Raises:
        ValueError: see `ReceptiveField`.
    """
    if int(num_layers) < 1:
        raise ValueError(f'num_layers must be at least 1, got {num_layers}.')
    prober = _Prober(imshape, forward_func, int(num_layers), value_range, num_trials, extreme_references,
                     tolerance, seed, layer_names)
    return prober.measure(multiplex)


class _Prober:
    """Runs probe images through the network under every trial and says which feature pixels change.

    A trial is a reference image and the values lit lines take in it. Pairs of trials share a reference and
    move the lit lines by the full value range up in one and down in the other (random signs per pixel): a
    unit that a change cannot reach in one direction (a dead ReLU, a max-pool ignoring a smaller value) is
    reached in the other. The first reference is a quiet grey (mid-range, faint noise), which saturates no
    unit; later ones are full-range noise. Two more trials start from the ends of the value range and swing
    the lit lines to the other end: units that only wake when most of their window moves one way (all-positive
    or all-negative kernels with a negative bias, dead at grey) are awake at one end, and any lit line moves them.
    """

    def __init__(self, imshape, forward_func, num_layers, value_range, num_trials, extreme_references, tolerance,
                 seed, layer_names=None):
        """`num_layers` None: `forward_func` returns one map (array or one-element list), as for
        `ReceptiveField`; else a list of that many maps."""
        self.imshape = _check_imshape(imshape)
        self.batch_size, self.height, self.width, self.channels = self.imshape
        low, high = (float(v) for v in value_range)
        if not high > low:
            raise ValueError(f'value_range must be (low, high) with high > low, got {value_range!r}.')
        if not _is_positive_integer(num_trials):
            raise ValueError(f'num_trials must be a whole number, at least 1, got {num_trials!r}.')
        if not float(tolerance) >= 0:
            raise ValueError(f'tolerance must be 0 or more (how far a value may move unnoticed), got {tolerance!r}.')
        self._forward_func, self._num_layers, self._layer_names = forward_func, num_layers, layer_names
        self._tolerance = float(tolerance)
        self.feature_shapes = None
        self.num_probe_images = 0

        rng = np.random.default_rng(seed)
        image_shape = (self.height, self.width, self.channels)
        middle, half_range = (low + high) / 2, (high - low) / 2
        references = []  # (reference image, probe values)
        for trial in range(num_trials):
            if trial % 2 == 0:
                amplitude = 0.02 if trial == 0 else 1.0
                reference = (middle + amplitude * half_range * rng.uniform(-1, 1, image_shape)).astype(np.float32)
                change = (high - low) * rng.choice([-1.0, 1.0], image_shape).astype(np.float32)
            references.append((reference, reference + change if trial % 2 == 0 else reference - change))
        if extreme_references:
            lowest, highest = np.full(image_shape, low, np.float32), np.full(image_shape, high, np.float32)
            references += [(lowest, highest), (highest, lowest)]
        self._trials = []  # (reference image, probe values, reference feature maps)
        for reference, probe_values in references:
            if not self._trials or reference is not self._trials[-1][0]:
                reference_maps = self._forward(np.repeat(reference[None], self.batch_size, axis=0))
                if not all(np.isfinite(feature_map).all() for feature_map in reference_maps):
                    raise ValueError('forward_func returned NaN or infinity for a reference image; check '
                                     'value_range and the network\'s weights.')
                self.feature_shapes = [feature_map.shape[1:3] for feature_map in reference_maps]
            self._trials.append((reference, probe_values, reference_maps))

    def measure(self, multiplex):
        """Measures every layer's boxes; returns a list of `ReceptiveField`."""
        mixes_batch = self._mixes_batch()
        periods = self._estimate_periods() if multiplex else None
        rows = self._measure_axis(ROWS, periods)
        columns = self._measure_axis(COLUMNS, periods)
        if any(mixes_batch):  # once, however many layers show it
            logger.warning(
                'The feature map of an image changes with the other images in its batch: the forward pass '
                'mixes images, as BatchNorm does in training mode, so every feature pixel depends on the whole '
                'image (and batch) and these boxes mean nothing. Feed the training-phase flag as False (e.g. '
                'phase_train: False) in forward_func.')
        fields = []
        for layer, mixes in enumerate(mixes_batch):
            boxes = np.stack([rows[layer][0], columns[layer][0], rows[layer][1], columns[layer][1]], axis=-1)
            fields.append(ReceptiveField._of_boxes(boxes, self.height, self.width, self.num_probe_images, mixes))
            _warn_about(fields[-1], self._layer_name(layer), whole_image=not any(mixes_batch))
        return fields

    def _layer_name(self, layer):
        if self._layer_names is not None:
            return self._layer_names[layer]
        return 'the layer' if self._num_layers is None else f'layer {layer} of forward_func'

    def _forward(self, batch):
        """Runs `forward_func` on one full batch; returns its 4-D feature maps, checked, as a list."""
        result = self._forward_func(batch)
        if self._num_layers is None:
            if isinstance(result, (list, tuple)):
                if len(result) != 1:
                    raise ValueError(f'forward_func returned {len(result)} values; it must return the feature '
                                     'map of one layer, e.g. lambda x: sess.run([layer], feed_dict={images: x}).')
                result = result[0]
            results = [result]
        elif not isinstance(result, (list, tuple)) or len(result) != self._num_layers:
            got = f'{len(result)} values' if isinstance(result, (list, tuple)) else type(result).__name__
            raise ValueError(f'forward_func returned {got}; it must return a list of {self._num_layers} feature '
                             'maps, one per layer, e.g. lambda x: sess.run(layers, feed_dict={images: x}).')
        else:
            results = list(result)
        return [self._checked_map(result, layer) for layer, result in enumerate(results)]

    def _checked_map(self, result, layer):
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
        if self.feature_shapes is not None and feature_map.shape[1:3] != self.feature_shapes[layer]:
            raise ValueError(f'forward_func returned feature maps of size {feature_map.shape[1:3]}, earlier '
                             f'{self.feature_shapes[layer]}; the forward pass must not change between calls.')
        return feature_map

    def run(self, probes):
        """Runs probe images through the network for every reference.

        Args:
            probes: list of `(axis, lit_lines)`: light these rows (`ROWS`) or columns (`COLUMNS`).

        Returns:
            per layer, bool array `[len(probes), feat_h, feat_w]`: which feature pixels changed for each
            probe under any reference.
        """
        changed = [np.zeros((len(probes),) + tuple(shape), bool) for shape in self.feature_shapes]
        for reference, probe_values, reference_maps in self._trials:
            for start in range(0, len(probes), self.batch_size):
                chunk = probes[start:start + self.batch_size]
                # Fill the batch with the reference so that fixed-shape placeholders work.
                batch = np.repeat(reference[None], self.batch_size, axis=0)
                for position, (axis, lines) in enumerate(chunk):
                    _light(batch[position], probe_values, lines, axis)
                for layer, feature_map in enumerate(self._forward(batch)):
                    changed[layer][start:start + len(chunk)] |= self._moved(
                        feature_map[:len(chunk)], reference_maps[layer][:len(chunk)]).any(axis=-1)
        self.num_probe_images += len(probes) * len(self._trials)
        return changed

    def _moved(self, feature_map, reference_map):
        """bool, where `feature_map` differs from `reference_map` by more than the tolerance (NaN counts)."""
        if not self._tolerance:
            return feature_map != reference_map  # one pass over the map; NaN != NaN, so NaN counts
        difference = np.abs(feature_map - reference_map)
        # NaN compares False with '>' but is a change all the same.
        return (difference > self._tolerance) | np.isnan(difference)

    def _mixes_batch(self):
        """Per layer, True when the output for one image depends on the other images of its batch.

        Raises:
            ValueError: the same batch gives different maps twice (a forward pass that is not repeatable).
        """
        reference, probe_values, reference_maps = self._trials[0]
        batch = np.repeat(reference[None], self.batch_size, axis=0)
        # The same batch again first: a forward pass that is not repeatable would pass for one that mixes images.
        for feature_map, reference_map in zip(self._forward(batch), reference_maps):
            if self._moved(feature_map, reference_map).any():
                raise ValueError('forward_func gave different maps for the same batch twice: it is not '
                                 'deterministic (dropout or noise left on, or a GPU kernel that is not '
                                 'reproducible). Run the model in inference mode, or pass a tolerance.')
        if self.batch_size < 2:
            return [False] * len(self.feature_shapes)
        batch[1:] = probe_values
        return [self._moved(feature_map[0], reference_map[0]).any()
                for feature_map, reference_map in zip(self._forward(batch), reference_maps)]

    # -- one axis -----------------------------------------------------------------------------------------

    def _measure_axis(self, axis, periods):
        """Per layer `(start, stop)`, int arrays `[feat_h, feat_w]`: each box's extent along `axis`.

        With `periods` (per layer and axis), lines the largest period apart are lit together when that takes
        fewer probes; layers whose boxes do not decode cleanly, or all when multiplexing does not pay, are
        probed line by line.
        """
        length = self.height if axis == ROWS else self.width
        extents = [None] * len(self.feature_shapes)
        period = None if periods is None else max(layer_periods[axis] for layer_periods in periods)
        if period is not None and period + 2 * (math.ceil(length / period) - 1) < length:
            extents = self._measure_multiplexed(axis, length, period)
            if any(extent is None for extent in extents):
                logger.debug('axis %d: multiplexed probes did not decode cleanly; probing line by line', axis)
        if any(extent is None for extent in extents):
            changed = self.run([(axis, [line]) for line in range(length)])
            extents = [_hull(changed[layer]) if extent is None else extent
                       for layer, extent in enumerate(extents)]
        return extents

    def _estimate_periods(self):
        """Per layer, spacings of lit rows and of lit columns wider than any box, from one probe lighting the
        middle line.

        If `n` feature lines change when one input line is lit and the layer's stride is `s`, the
        receptive field is shorter than `(n + 1) * s`. The stride is bounded by image size over feature-map
        size. An estimate that is too small is caught when decoding.

        Returns:
            list of `(row period, column period)`.
        """
        lengths = (self.height, self.width)
        changed = self.run([(axis, [lengths[axis] // 2]) for axis in (ROWS, COLUMNS)])
        periods = []
        for layer_changed, feature_shape in zip(changed, self.feature_shapes):
            layer_periods = []
            for axis in (ROWS, COLUMNS):
                affected = layer_changed[axis].sum(axis=axis).max()
                stride = math.ceil(lengths[axis] / feature_shape[axis])
                layer_periods.append(int((affected + 1) * stride + 1))
            periods.append(tuple(layer_periods))
        return periods

    def _measure_multiplexed(self, axis, length, period):
        """Measures one axis with lines `period` apart; per layer the extents, or None where the result is
        not consistent."""
        num_blocks = math.ceil(length / period)
        lines = np.arange(length)
        probes = [(axis, lines[lines % period == phase]) for phase in range(period)]
        probes += [(axis, lines[:block * period]) for block in range(1, num_blocks)]
        probes += [(axis, lines[block * period:]) for block in range(1, num_blocks)]
        return [_decode_layer(changed, period, num_blocks, length) for changed in self.run(probes)]


def _decode_layer(changed, period, num_blocks, length):
    """One layer's extents from multiplexed observations `[probes, feat_h, feat_w]`, or None."""
    feature_shape = changed.shape[1:]
    # Decode each distinct pattern of observations once: feature pixels share very few of them.
    unique_patterns, pattern_of_pixel = _unique_rows(changed.reshape(len(changed), -1).T)
    decoded = np.zeros((len(unique_patterns), 2), np.int64)
    for index, pattern in enumerate(unique_patterns):
        extent = _decode_pattern(pattern[:period], pattern[period:period + num_blocks - 1],
                                 pattern[period + num_blocks - 1:], period, length)
        if extent is None:
            return None
        decoded[index] = extent
    extents = decoded[pattern_of_pixel.reshape(-1)].reshape(tuple(feature_shape) + (2,))
    return extents[..., 0], extents[..., 1]


def _warn_about(field, layer_name, whole_image):
    """Logs what makes a measured field suspect: empty boxes, and (with `whole_image`) boxes that all cover
    the whole image."""
    unresponsive = (field.recfield[..., 2] == 0) & (field.recfield[..., 3] == 0)
    if unresponsive.any():
        logger.warning('%d of %d feature pixels of %s did not change for any probe; their boxes are empty. '
                       'Is the layer constant (dead units, zero weights)?',
                       int(unresponsive.sum()), unresponsive.size, layer_name)
    if whole_image and field.whole_image:
        logger.warning(
            'Every feature pixel of %s depends on the whole image. Either the receptive field is larger than '
            'the image (use larger images to see it), or the forward pass mixes all pixels: a BatchNorm '
            'layer in training mode or a per-image normalisation inside the graph. Then feed the '
            'training-phase flag as False (e.g. phase_train: False) and normalise images before the '
            'input placeholder.', layer_name)


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
    exact start. Where the edge boxes follow no rule (dilated taps near the border skip lines, so those boxes
    are neither clipped nor regular), the geometry is that of the interior boxes (`_interior_geometry`).

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
        per_axis.append(_axis_geometry(starts[:, 0], stops[:, 0]) or _interior_geometry(starts[:, 0], stops[:, 0]))
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


def _interior_geometry(starts, stops):
    """`(size, stride, padding)` of the longest run of consecutive feature lines whose boxes follow one
    affine rule (both edges step by the same positive stride), or None when no run of 3 lines does, or two
    runs of that length follow different rules."""
    steps = np.diff(starts)
    regular = (steps > 0) & (steps == np.diff(stops))
    runs = []  # (number of lines, first line, stride)
    first = 0
    for line in range(1, len(steps) + 1):
        if line == len(steps) or not (regular[first] and regular[line] and steps[line] == steps[first]):
            if regular[first]:
                runs.append((line - first + 1, first, int(steps[first])))
            first = line
    if not runs:
        return None
    longest = max(length for length, _, _ in runs)
    rules = {(stride, int(stops[first] - starts[first]), first * stride - int(starts[first]))
             for length, first, stride in runs if length == longest}
    if longest < 3 or len(rules) != 1:
        return None
    stride, size, padding = rules.pop()
    return size, stride, padding
