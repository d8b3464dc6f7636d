"""Receptive fields of feature-map pixels, measured by probing the network.

`ReceptiveField(imshape, forward_func)` finds, for every pixel of one layer's feature map, the box of input
pixels it depends on. It needs nothing but a function that runs the forward pass: it feeds probe images
(a reference image with some rows, or some columns, changed) and records which feature pixels change.
`measure_receptive_fields(imshape, forward_func, num_layers)` measures several layers from one set of
probes, with a `forward_func` that returns every layer's map.

Rows and columns are measured separately by the same code (columns are rows of the transposed image). For
one axis each layer is measured

* row by row: one probe per input row, so the rows a feature pixel depends on are read off directly; or
* multiplexed: when the receptive field is small next to the image, probe `k` of `S` lights every row
  `y` with `y % S == k` (rows further apart than the receptive field, so a feature pixel sees at most one
  of them), which gives each box modulo `S`; "prefix"/"suffix" probes (rows `[0, j*S)` or `[j*S, H)` lit)
  or "band" probes (bands of `S` rows, one band in 3 or 4 lit, then bands of `3S` ...) then say where in
  the image the box lies. About `S + 3 log3(H/S)` probe images instead of `H`; or
* by an edge search, when the field is as large as the image: prefix probes `[0, t)` tell which boxes start
  before `t`, suffix probes which stop after `H - t`; predicted edges are checked with two probes each and
  the rest bisected (`_EdgeSearch`), about `log2(H)` probes plus two per distinct edge.

Per axis the plan needing the fewest probe images is chosen for all layers together (`_plan_axis`). Every
decoded box is checked for consistency, and what does not decode cleanly is measured again row by row, so every
way gives the same boxes.

The same image can give values that differ in their last bits (libraries pick kernels, blockings and thread
splits by CPU, thread count and batch size; tiled kernels let pixels outside a field move a value's last
bits), so a probe is compared with its reference in a batch of the same size, and a value counts as changed
when it moves by more than `NOISE_ULPS` units of float32 precision of its reference value. `tolerance=0`
compares bit for bit instead.

Masked probes (a dead ReLU, a unit saturated by the reference image, a max-pool that ignores the change)
would shrink boxes, so every probe is run on several references and a feature pixel counts as changed when
it changes in any run (see `_Prober`): twice on a quiet grey reference, moving the lit pixels up in one run
and down in the other, and from each end of the value range. The edge search asks on the first reference
only and confirms on the others what its edges rest on.
"""

import inspect
import logging
import math

import cv2
import numpy as np

logger = logging.getLogger(__name__)

ROWS, COLUMNS = 0, 1
# The automatic change threshold (tolerance=None): a value counts as changed when it moves by more than this
# many units of float32 precision (eps, 2**-23) of its value on the reference: 8 to 16 units in its last place.
# Rounding (other kernels, or lit pixels outside a field seen through tiled kernels) moves a value in its last
# few bits. Real changes are larger in those units even where they are tiny next to the channel's largest value:
# MobileNetV2 with untrained weights at 96x96 had changes of 4e-8 of that (no threshold relative to it could
# tell them from rounding), and the weakest moved its value by 52 units in its last place.
NOISE_ULPS = 8
# Of the feature pixels whose cached boxes hold a lit line, the share that must change (`disagreements`).
AGREEMENT = 0.5


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
                 tolerance=None, seed=0, extreme_references=True, full_batches=True):
        """Measures the receptive fields.

        Args:
            imshape: `[batch_size, height, width, channels]`, all four known positive integers. Every batch
                sent to `forward_func` has exactly `batch_size` images (at most, with `full_batches` False).
            forward_func: function from a float32 batch `[batch_size, height, width, channels]` to that
                layer's feature map `[batch_size, feat_h, feat_w, feat_channels]`, returned as an array or
                as a one-element list, e.g. `lambda x: sess.run([layer], feed_dict={images_ph: x})`.
            value_range: `(low, high)`, the range of input values the network expects. References are
                drawn from it; probes move the lit lines by its width, up or down.
            num_trials: how many times each probe is run (masking guard). Pairs of runs share a reference
                and move the lit lines in opposite directions; the first pair's reference is a quiet grey,
                later ones random noise over `value_range` (4 or 6 find more of the units that are hard to
                wake, at the cost of more probe images). The edge search asks on the first run only and runs
                the probes its edges rest on on the others.
            multiplex: light several rows per probe when the receptive field allows it. False probes row by
                row (same boxes, more probe images).
            tolerance: None (default): a feature value counts as changed when it moves by more than
                `NOISE_ULPS` times float32's precision of its value on the reference (8 to 16 units in its last
                place), so that rounding in the last bits (tiled kernels) changes no box. A number: when it
                moves by more than that (absolute); 0 compares bit for bit.
            seed: seed of the random references and probe values.
            extreme_references: also run the probes on a reference at each end of the value range with the
                lit lines at the other end (two more runs): exact for units that only a strong same-signed
                change wakes. False nearly halves the probe images where no such units can be.
            full_batches: fill every batch up to `batch_size` with reference images, for a network whose
                batch size is fixed. False, for a network that takes any batch size, sends shorter batches
                where fewer probes are left (a round of the edge search often has a few): a probe in a batch of
                `n` images is compared with its reference in a batch of `n`, so a batch is short only where
                that and its references run fewer images than a full batch.

        Raises:
            ValueError: `imshape` is not four known positive integers, or `forward_func` does not return
                one 4-D feature map with `batch_size` images.
        """
        fields = _probed(multiplex, imshape, forward_func, None, value_range, num_trials, extreme_references,
                         tolerance, seed, full_batches=full_batches)
        self.__dict__.update(vars(fields[0]))

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
                             multiplex=True, tolerance=None, seed=0, extreme_references=True, layer_names=None,
                             full_batches=True):
    """The receptive fields of several layers, measured from one set of probe images.

    Every probe batch is one `forward_func` call returning the maps of the layers it serves, so the layers
    share the probes (a deep layer's forward pass computes the shallow ones anyway). Per axis the layers are
    multiplexed, edge-searched or probed line by line (one pass serving all), whichever plan takes the fewest
    probe images. The boxes are those `ReceptiveField` measures layer by layer.

    Args:
        imshape, value_range, num_trials, multiplex, tolerance, seed, extreme_references, full_batches: as for
            `ReceptiveField`.
        forward_func: function from a float32 batch `imshape` to a list of `num_layers` feature maps
            `[batch_size, feat_h, feat_w, channels]`, e.g. `lambda x: sess.run(layers, feed_dict={images: x})`.
            If it takes a keyword `layers`, it is also called with a list of positions (`0 .. num_layers - 1`)
            and must then return those layers' maps only, in that order: probes that serve shallow layers
            only then skip the rest of the network.
        num_layers: how many maps `forward_func` returns.
        layer_names: the layers' names, for warnings (default: their positions).

    Returns:
        list of `ReceptiveField`, one per layer, in order; each has the shared `num_probe_images`.

    Raises:
        ValueError: see `ReceptiveField`.
    """
    if int(num_layers) < 1:
        raise ValueError(f'num_layers must be at least 1, got {num_layers}.')
    return _probed(multiplex, imshape, forward_func, int(num_layers), value_range, num_trials, extreme_references,
                   tolerance, seed, layer_names, full_batches)


def _probed(multiplex, imshape, *prober_args, **prober_options):
    """`_Prober(imshape, ...).measure(multiplex)`, with images too large for memory a ValueError saying so."""
    try:
        return _Prober(imshape, *prober_args, **prober_options).measure(multiplex)
    except MemoryError as error:
        raise ValueError(f'probing images of imshape {list(imshape)} needs more memory than there is ({error}); '
                         'use smaller images or a smaller batch.') from error


def disagreements(imshape, forward_func, fields, value_range=(-1.0, 1.0), num_trials=2, tolerance=None, seed=0,
                  extreme_references=True, full_batches=True):
    """Whether receptive fields measured before (a cache's) agree with the network now, from two probes: the
    middle row lit, and the middle column, on the references `measure_receptive_fields` uses.

    A field agrees when its feature map has the size the network gives, no feature pixel changes outside the
    boxes that hold the lit line (a box is the hull of every line that changes its pixel), and at least
    `AGREEMENT` of the pixels whose boxes hold it change (not all need to: a dilated kernel skips lines).

    Args:
        imshape, value_range, num_trials, tolerance, seed, extreme_references, full_batches: as for
            `measure_receptive_fields`.
        forward_func: as for `measure_receptive_fields`, returning the maps of `len(fields)` layers.
        fields: a `ReceptiveField` per layer.

    Returns:
        list, per field: None where it agrees, else what does not (text).
    """
    prober = _Prober(imshape, forward_func, len(fields), value_range, num_trials, extreme_references, tolerance,
                     seed, full_batches=full_batches)
    probes = [(ROWS, [prober.height // 2]), (COLUMNS, [prober.width // 2])]
    changed = prober.run(probes)
    found = []
    for field, shape, layer_changed in zip(fields, prober.feature_shapes, changed):
        reason = None
        if tuple(shape) != tuple(field.feature_shape):
            reason = f'it is for a {tuple(field.feature_shape)} feature map, the network gives {tuple(shape)}'
        for number, (axis, (line,)) in enumerate(probes if reason is None else ()):
            holds = (field.recfield[..., axis] <= line) & (line < field.recfield[..., axis + 2])
            moved, what = layer_changed[number], ('row', 'column')[axis]
            if (moved & ~holds).any():
                reason = f'lighting image {what} {line} changes {int((moved & ~holds).sum())} feature pixels outside it'
            elif moved.sum() < AGREEMENT * holds.sum():
                reason = (f'lighting image {what} {line} changes {int(moved.sum())} of the {int(holds.sum())} feature '
                          'pixels whose boxes hold it')
            if reason is not None:
                break
        found.append(reason)
    return found


def takes_layers_keyword(forward_func):
    """Whether `forward_func` takes a keyword `layers`, so that it can be asked for some layers' maps only (see
    `measure_receptive_fields`)."""
    try:
        return 'layers' in inspect.signature(forward_func).parameters
    except (TypeError, ValueError):  # a callable without a signature (some builtins)
        return False


def what_came_back(result):
    """`'<n> values'` for a list or tuple, else the type's name: what a forward function returned, for errors."""
    return f'{len(result)} values' if isinstance(result, (list, tuple)) else type(result).__name__


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
                 seed, layer_names=None, full_batches=True):
        """`num_layers` None: `forward_func` returns one map (array or one-element list), as for
        `ReceptiveField`; else a list of that many maps."""
        self._full_batches = full_batches
        self.imshape = _check_imshape(imshape)
        self.batch_size, self.height, self.width, self.channels = self.imshape
        low, high = (float(v) for v in value_range)
        if not high > low:
            raise ValueError(f'value_range must be (low, high) with high > low, got {value_range!r}.')
        if not _is_positive_integer(num_trials):
            raise ValueError(f'num_trials must be a whole number, at least 1, got {num_trials!r}.')
        if tolerance is not None and not float(tolerance) >= 0:
            raise ValueError(f'tolerance must be None (automatic) or 0 or more (how far a value may move '
                             f'unnoticed), got {tolerance!r}.')
        self._forward_func, self._num_layers, self._layer_names = forward_func, num_layers, layer_names
        self._selects_layers = num_layers is not None and takes_layers_keyword(forward_func)
        self._tolerance = None if tolerance is None else float(tolerance)
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
        # Where the images of a batch mix, every feature pixel depends on the whole image (and batch): probes
        # sharing a batch would see each other, so such a layer gets the whole image, unprobed.
        lengths = (self.height, self.width)
        extents = [[(np.zeros(shape, np.int64), np.full(shape, lengths[axis], np.int64)) if mixes else None
                    for shape, mixes in zip(self.feature_shapes, mixes_batch)] for axis in (ROWS, COLUMNS)]
        rows, columns = self._measure_axes(extents) if multiplex else (
            self._measure_line_by_line(axis, extents[axis]) for axis in (ROWS, COLUMNS))
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

    def _forward(self, batch, layers=None):
        """Runs `forward_func` on one batch; returns its 4-D feature maps, checked, as a list over all layers.

        With `layers` (positions), only those maps are needed: where `forward_func` selects layers it computes
        only them, and the others are None.
        """
        if layers is not None and self._selects_layers:
            layers = sorted(layers)
            result = self._forward_func(batch, layers=layers)
            if not isinstance(result, (list, tuple)) or len(result) != len(layers):
                raise ValueError(f'forward_func(batch, layers={layers}) returned {what_came_back(result)}; called '
                                 f'with layers, it must return one map per layer asked for ({len(layers)}), in that '
                                 'order.')
            maps = [None] * self._num_layers
            for layer, map_of_layer in zip(layers, result):
                maps[layer] = self._checked_map(map_of_layer, layer, len(batch))
            return maps
        result = self._forward_func(batch)
        if self._num_layers is None:
            if isinstance(result, (list, tuple)):
                if len(result) != 1:
                    raise ValueError(f'forward_func returned {len(result)} values; it must return the feature '
                                     'map of one layer, e.g. lambda x: sess.run([layer], feed_dict={images: x}).')
                result = result[0]
            results = [result]
        elif not isinstance(result, (list, tuple)) or len(result) != self._num_layers:
            raise ValueError(f'forward_func returned {what_came_back(result)}; it must return a list of '
                             f'{self._num_layers} feature maps, one per layer, e.g. lambda x: sess.run(layers, '
                             'feed_dict={images: x}).')
        else:
            results = list(result)
        return [self._checked_map(result, layer, len(batch)) for layer, result in enumerate(results)]

    def _checked_map(self, result, layer, batch_size):
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
        if feature_map.shape[0] != batch_size:
            raise ValueError(f'forward_func returned {feature_map.shape[0]} feature maps for a batch of '
                             f'{batch_size} images; it must return one per image, in order.')
        if 0 in feature_map.shape[1:]:
            raise ValueError(f'forward_func returned empty feature maps of shape {feature_map.shape[1:]} for '
                             f'{self.imshape[1]}x{self.imshape[2]} images: the layer has no pixel at this image '
                             'size; use larger images or a shallower layer.')
        if self.feature_shapes is not None and feature_map.shape[1:3] != self.feature_shapes[layer]:
            raise ValueError(f'forward_func returned feature maps of size {feature_map.shape[1:3]}, earlier '
                             f'{self.feature_shapes[layer]}; the forward pass must not change between calls.')
        return feature_map

    def run(self, probes, trials=None, layers=None):
        """Runs probe images through the network for every reference.

        Args:
            probes: list of `(axis, lit_lines)`: light these rows (`ROWS`) or columns (`COLUMNS`).
            trials: indices of the references to run them on (default: all).
            layers: positions of the layers the probes serve (default: all).

        Returns:
            per layer, bool array `[len(probes), feat_h, feat_w]`: which feature pixels changed for each
            probe under any reference; None for the layers not in `layers`.
        """
        if layers is not None and set(layers) == set(range(len(self.feature_shapes))):
            layers = None  # all of them: the plain call
        changed = [np.zeros((len(probes),) + tuple(shape), bool) if layers is None or layer in layers else None
                   for layer, shape in enumerate(self.feature_shapes)]
        # Every (reference, probe) pair is one image; batches are filled across references, so that a round
        # of few probes wastes little of a fixed-size batch.
        trials = range(len(self._trials)) if trials is None else trials
        images = [(trial, probe) for trial in trials for probe in range(len(probes))]
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            # A short batch needs its references run at its size too (`_reference_maps`): shorter only where
            # that runs fewer images than filling the batch up with a reference (for fixed-shape placeholders).
            num_references = len({id(self._trials[trial][0]) for trial, _ in chunk})
            short = not self._full_batches and len(chunk) * (1 + num_references) < self.batch_size
            batch = np.repeat(self._trials[0][0][None], len(chunk) if short else self.batch_size, axis=0)
            for position, (trial, probe) in enumerate(chunk):
                reference, probe_values, _ = self._trials[trial]
                batch[position] = reference
                axis, lines = probes[probe]
                _light(batch[position], probe_values, lines, axis)
            references = self._reference_maps({trial for trial, _ in chunk}, len(batch), layers)
            for layer, feature_map in enumerate(self._forward(batch, layers)):
                if changed[layer] is None:
                    continue
                for position, (trial, probe) in enumerate(chunk):
                    reference_map = references[trial][layer][position]
                    changed[layer][probe] |= self._moved(feature_map[position], reference_map)
        self.num_probe_images += len(images)
        return changed

    def _reference_maps(self, trials, batch_size, layers):
        """`{trial: maps}`: the maps of each trial's reference in a batch of `batch_size` copies of it (those of
        `layers`, as `_forward` gives them).

        A probe in a short batch is compared with its reference in a batch of the same size, never with a full
        one: a library may choose other kernels or thread splits by batch size, whose sums round otherwise
        (TensorFlow's Eigen kernels on AVX2 CPUs do for batches of 2 and 5 images of VGG16, against 8). A run
        has at most one short batch, its last, so they are not kept for later runs (on VGG16's five layers at
        128x128 that would save no image run and hold 290 MB more).
        """
        if batch_size == self.batch_size:
            return {trial: self._trials[trial][2] for trial in trials}
        maps, by_reference = {}, {}
        for trial in trials:
            reference = self._trials[trial][0]
            if id(reference) not in by_reference:  # trials in pairs share a reference
                by_reference[id(reference)] = self._forward(np.repeat(reference[None], batch_size, axis=0), layers)
            maps[trial] = by_reference[id(reference)]
        return maps

    def _moved(self, feature_map, reference_map):
        """bool `[..., h, w]`: the feature pixels where a channel of `feature_map` moved from `reference_map` by
        more than the change threshold (NaN counts): `NOISE_ULPS` units of float precision of the reference
        value (tolerance None), the tolerance itself, or none at all (tolerance 0: bit for bit)."""
        moved = (feature_map != reference_map).any(axis=-1)  # NaN != NaN, so NaN counts
        if self._tolerance == 0 or not moved.any():
            return moved
        # Only the pixels that changed at all are weighed (few, in most probes of a large map). At least
        # float32 (float64 for integer maps: no wrap-around below 0).
        changed, reference = feature_map[moved], reference_map[moved]
        difference = np.abs(np.subtract(changed, reference, dtype=np.result_type(changed.dtype, np.float32)))
        if self._tolerance is None:
            limit = np.abs(reference) * (NOISE_ULPS * _precision(changed.dtype))
        else:
            limit = self._tolerance
        moved[moved] = (~(difference <= limit)).any(axis=-1)  # NaN compares False: a change all the same
        return moved

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

    # -- the axes ----------------------------------------------------------------------------------------

    def _measure_axes(self, extents):
        """Per axis, per layer `(start, stop)`, int arrays `[feat_h, feat_w]`: each box's extent along the axis,
        measured where `extents` (the same, per axis) holds None.

        One probe lighting the middle line estimates each layer's box length (`_estimate_periods`). Per axis,
        the layers whose boxes are short next to the image are multiplexed (lines a period apart lit
        together), those with few distinct box edges are found by an edge search (`_EdgeSearch`), whichever
        plan needs the fewest probe images (`_plan_axis`); what does not decode cleanly, or all layers when
        neither pays, is probed line by line.
        """
        lengths = (self.height, self.width)
        unknown = [layer for layer, extent in enumerate(extents[ROWS]) if extent is None]
        if not unknown:
            return extents
        periods, middle_probes, middle_changed = self._estimate_periods()
        searches = []
        for axis in (ROWS, COLUMNS):
            period, searched = _plan_axis(lengths[axis], [periods[layer][axis] for layer in unknown],
                                          [self.feature_shapes[layer][axis] for layer in unknown], len(self._trials))
            searched = [unknown[position] for position in searched]
            if period is not None:
                multiplexed = [layer for layer in unknown if layer not in searched]
                decoded = self._measure_multiplexed(axis, lengths[axis], period, multiplexed)
                for layer in multiplexed:
                    extents[axis][layer] = decoded[layer]
            searches += [_EdgeSearch(axis, lengths[axis], self.feature_shapes[layer], layer)
                         for layer in searched]
        if searches:
            for search in searches:
                search.observe(middle_probes[search.axis][1], middle_changed[search.layer][search.axis])
            for search in self._search_edges(searches):
                extents[search.axis][search.layer] = search.extents()
        return [self._measure_line_by_line(axis, extents[axis]) for axis in (ROWS, COLUMNS)]

    def _measure_line_by_line(self, axis, extents):
        """`extents` with every None filled in from one probe per line of `axis` (one pass for all layers)."""
        missing = [layer for layer, extent in enumerate(extents) if extent is None]
        if not missing:
            return extents
        logger.debug('axis %d: probing line by line for %d layers', axis, len(missing))
        changed = self.run([(axis, [line]) for line in range(self.height if axis == ROWS else self.width)],
                           layers=missing)
        return [_hull(changed[layer]) if extent is None else extent for layer, extent in enumerate(extents)]

    def _search_edges(self, searches):
        """Runs the edge searches in rounds, all of them sharing each round's probes; returns those that ended
        consistent (the others are left to line-by-line probing).

        A change seen under any reference is proof, so the search asks its questions on the first reference
        (grey, lit lines moved up) only; the unchanged probes that the found edges rest on (one per distinct
        edge) are then run on the other references as well. A search that one of them contradicts goes on with
        every reference. Asking on one reference rather than on both grey ones costs a confirmation run more
        per distinct edge and saves a run on every other probe: on VGG16 at 128x128 the edge searches of
        conv4_3 and conv5_3 took 226 probe images instead of 288, with the same boxes.
        """
        lengths = (self.height, self.width)
        every_trial = list(range(len(self._trials)))
        asking, confirming = every_trial[:1], every_trial[1:]
        for search in searches:
            search.full = not confirming
        if any(search.needs_whole_image_probe() for search in searches):
            # Lighting every line tells which feature pixels depend on the image at all.
            self._observe_by_all(searches, [(ROWS, 0, self.height)], every_trial, whole_image=True)
        while True:
            active = [search for search in searches if not search.failed]
            asked = {True: set(), False: set()}
            for search in active:
                asked[search.full] |= {(search.axis, kind, t) for kind, t in search.thresholds()}
            asked[False] -= asked[True]
            if asked[True]:
                self._observe_by_all(active, sorted(asked[True]), every_trial)
            if asked[False]:
                self._observe_by_all(active, sorted(asked[False]), asking, confirmed=False)
            if not asked[True] and not asked[False]:
                unconfirmed = sorted({(search.axis, kind, t) for search in active
                                      for kind, t in search.unconfirmed()})
                if not unconfirmed:
                    break
                changed = self.run([(axis, _edge_lines(kind, t, lengths[axis])) for axis, kind, t in unconfirmed],
                                   confirming, layers={search.layer for search in active})
                for search in active:
                    for index, (axis, kind, t) in enumerate(unconfirmed):
                        if axis == search.axis:
                            search.confirm(kind, t, changed[search.layer][index])
        failed = [search for search in searches if search.failed]
        if failed:
            logger.debug('edge search inconsistent for %d layer axes; probing them line by line', len(failed))
        return [search for search in searches if not search.failed]

    def _observe_by_all(self, searches, probes, trials, confirmed=True, whole_image=False):
        """Runs edge-search `probes` `(axis, kind, t)` under `trials` and shows each to every search of its
        axis (a whole-image probe to all)."""
        lengths = (self.height, self.width)
        lit = [(axis, _edge_lines(kind, t, lengths[axis])) for axis, kind, t in probes]
        changed = self.run(lit, trials, layers={search.layer for search in searches})
        for search in searches:
            for index, (axis, lines) in enumerate(lit):
                if whole_image or axis == search.axis:
                    search.observe(np.arange(search.length) if whole_image else lines,
                                   changed[search.layer][index], confirmed)

    def _estimate_periods(self):
        """Per layer, spacings of lit rows and of lit columns wider than any box, from one probe lighting the
        middle line.

        If `n` feature lines change when one input line is lit and the layer's stride is `s`, the
        receptive field is shorter than `(n + 1) * s` (a box of `L` lines holds the line of at least
        `floor(L / s)` feature lines), so lines `(n + 1) * s` apart never meet in one box. The stride is
        bounded by image size over feature-map size. An estimate that is too small is caught when decoding.

        Returns:
            `(periods, probes, changed)`: list of `(row period, column period)` per layer; the two probes run;
            per layer what they changed (see `run`).
        """
        lengths = (self.height, self.width)
        probes = [(axis, np.array([lengths[axis] // 2])) for axis in (ROWS, COLUMNS)]
        changed = self.run(probes)
        periods = []
        for layer_changed, feature_shape in zip(changed, self.feature_shapes):
            layer_periods = []
            for axis in (ROWS, COLUMNS):
                affected = layer_changed[axis].sum(axis=axis).max()
                stride = math.ceil(lengths[axis] / feature_shape[axis])
                layer_periods.append(int((affected + 1) * stride))
            periods.append(tuple(layer_periods))
        return periods, probes, changed

    def _measure_multiplexed(self, axis, length, period, layers):
        """Measures `layers` along one axis with lines `period` apart; per layer the extents, or None where
        the result is not consistent (and for the other layers)."""
        lines = np.arange(length)
        blocks, block_probes = _block_probes(length, period)
        probes = [(axis, lines[lines % period == phase]) for phase in range(period)]
        probes += [(axis, lit) for lit in block_probes]
        extents = [None if changed is None else _decode_layer(changed, period, blocks, length)
                   for changed in self.run(probes, layers=layers)]
        if any(extents[layer] is None for layer in layers):
            logger.debug('axis %d: multiplexed probes did not decode cleanly for %d layers', axis,
                         sum(extents[layer] is None for layer in layers))
        return extents


START, STOP = 0, 1  # the two edges of a box along one axis


class _EdgeSearch:
    """Finds the box edges of one layer along one axis from "prefix" and "suffix" probes.

    A prefix probe lights lines `[0, t)`: a feature pixel changes exactly when its box starts before `t`. A
    suffix probe lights `[length - t, length)`: it changes exactly when the box stops after `length - t`. Both
    edges are searched as `edge < t` questions: the start itself, and `length - stop` for the stop. A change is
    proof (a lit line the pixel depends on), an unchanged probe only evidence (a masked probe looks the same),
    as everywhere in this module.

    Each feature pixel keeps the interval its edge lies in. Every round asks, for each distinct interval,
    either about a predicted edge (`t = e` and `t = e + 1`: two probes that pin the edge if the prediction is
    right) or, without a prediction in the interval, about its middle (bisection). Predictions follow the
    boxes' translation rule: the edges already found that no border clips (above 0) give the stride between
    feature lines (or image size over feature-map size, from one found edge); the stop of line `i` is
    predicted as the start of line `n - 1 - i` mirrored, which holds where the network is symmetric. Before
    any edge is found only the last feature line's start is bisected, whose box is the least clipped. So a
    layer costs about `log2(length)` probes plus two per distinct edge, however large its boxes.

    Unless `full`, "unchanged" may come from some references only (`observe(confirmed=False)`); the edges that
    rest on it are `unconfirmed` until `confirm`ed on the others. An interval that empties (observations that
    contradict each other) is searched again from scratch on all references where it rested on some only,
    and fails the search where it rested on all of them.
    """

    def __init__(self, axis, length, feature_shape, layer):
        self.axis, self.length, self.layer = axis, length, layer
        self.failed = False
        self.full = True  # every probe's "unchanged" stands on all references (see `observe`)
        lines = np.indices(feature_shape)[axis]  # each feature pixel's line along the axis
        num_lines = feature_shape[axis]
        # Per edge kind: index of the pixel's line (mirrored for stops, so that both edges grow with it), the
        # interval [low, high] of `start`, or of `length - stop`, and whether `low` stands on all references.
        self._index = (lines, num_lines - 1 - lines)
        self._num_lines = num_lines
        self._low = [np.zeros(feature_shape, np.int64) for _ in (START, STOP)]
        self._high = [np.full(feature_shape, length - 1, np.int64) for _ in (START, STOP)]
        self._confirmed = [np.ones(feature_shape, bool) for _ in (START, STOP)]
        self._responds = np.zeros(feature_shape, bool)  # changed by some probe: depends on the image
        self._silent = None  # after the whole-image probe: depends on no line at all

    def needs_whole_image_probe(self):
        return not self._responds.all()

    def observe(self, lines, changed, confirmed=True):
        """Takes in what a probe lighting `lines` (sorted) changed, a bool array `[feat_h, feat_w]`.

        Args:
            confirmed: whether the probe ran on every reference. If not, its "unchanged" counts only until the
                search is `full`, and the edges that rest on it are `unconfirmed` until `confirm`ed.
        """
        first, last = int(lines[0]), int(lines[-1])
        contiguous = last - first + 1 == len(lines)
        self._take_change(first, last, changed)
        if contiguous and first == 0 and last == self.length - 1:
            self._silent = ~changed
        elif confirmed or not self.full:
            # The box starts at or after the end of an unchanged prefix, stops at or before the start of an
            # unchanged suffix.
            kind, bound = (START, last + 1) if first == 0 else (STOP, self.length - first)
            if contiguous and (first == 0 or last == self.length - 1):
                raised = ~changed & (bound > self._low[kind])
                self._low[kind][raised] = bound
                self._confirmed[kind][raised] = confirmed
        self._check()

    def unconfirmed(self):
        """`{(kind, t)}`: the probes, unchanged on the references asked, that found edges rest on."""
        asked = set()
        for kind in (START, STOP):
            waiting = self._responds & ~self._confirmed[kind] & (self._low[kind] == self._high[kind])
            asked |= {(kind, int(t)) for t in np.unique(self._low[kind][waiting])}
        return asked

    def confirm(self, kind, t, changed):
        """Takes in what the edge-search probe `(kind, t)` changed on the references it had not run on."""
        lines = _edge_lines(kind, t, self.length)
        self._take_change(int(lines[0]), int(lines[-1]), changed)
        resting = self._responds & ~self._confirmed[kind] & (self._low[kind] == t) & ~changed
        self._confirmed[kind][resting] = True
        self._check()

    def _take_change(self, first, last, changed):
        """A change is proof: the box reaches a lit line, which bounds both edges."""
        self._responds |= changed
        np.minimum(self._high[START], np.where(changed, last, self.length), out=self._high[START])
        np.minimum(self._high[STOP], np.where(changed, self.length - 1 - first, self.length), out=self._high[STOP])

    def _check(self):
        """An emptied interval resting on some references only is searched again on all of them (`full`);
        one resting on all references, or a pixel that changed although lighting everything did not, fails
        the search."""
        if self._silent is not None and (self._silent & self._responds).any():
            self.failed = True
        for kind in (START, STOP):
            emptied = (self._low[kind] > self._high[kind]) & self._responds
            if (emptied & self._confirmed[kind]).any():
                self.failed = True
            elif emptied.any():
                self._low[kind][emptied] = 0
                self._confirmed[kind][emptied] = True
                self.full = True

    def thresholds(self):
        """The probes this search asks for next: a set of `(kind, t)`, `kind` START (lines `[0, t)`) or STOP
        (lines `[length - t, length)`); empty when every edge is known."""
        if self.failed or self._silent is None and not self._responds.all():
            return set()
        found = [self._found_edges(kind) for kind in (START, STOP)]
        wanted = set()
        for kind in (START, STOP):
            open_pixels = self._responds & (self._low[kind] < self._high[kind])
            if not open_pixels.any():
                continue
            rule = _edge_rule(found[kind] if len(found[kind]) >= 2 else found[kind] | found[1 - kind],
                              self.length, self._num_lines)
            if rule is None and (kind == STOP and self._open_anywhere(START)):
                continue  # wait for the starts: a found start predicts the stops
            index, low, high = (array[open_pixels] for array in (self._index[kind], self._low[kind],
                                                                  self._high[kind]))
            if rule is None:  # bisect the interval of the highest line only
                anchor = index == index.max()
                index, low, high = index[anchor], low[anchor], high[anchor]
            for interval_low, interval_high in set(zip(low.tolist(), high.tolist())):
                in_interval = (low == interval_low) & (high == interval_high)
                predicted = set() if rule is None else {
                    edge for edge in np.unique(rule(index[in_interval])).tolist()
                    if interval_low <= edge <= interval_high}
                if predicted:
                    wanted |= {(kind, t) for edge in predicted for t in (edge, edge + 1)
                               if interval_low < t <= interval_high}
                else:
                    wanted.add((kind, (interval_low + interval_high + 1) // 2))
        return wanted

    def _open_anywhere(self, kind):
        return bool((self._responds & (self._low[kind] < self._high[kind])).any())

    def _found_edges(self, kind):
        """`{(line index, edge)}` of the pixels whose edge is known and clipped by no border (above 0)."""
        known = self._responds & (self._low[kind] == self._high[kind]) & (self._low[kind] > 0)
        return set(zip(self._index[kind][known].tolist(), self._low[kind][known].tolist()))

    def extents(self):
        """`(start, stop)` int arrays `[feat_h, feat_w]`, `(0, 0)` for pixels that depend on no line."""
        silent = ~self._responds
        start = np.where(silent, 0, self._low[START])
        stop = np.where(silent, 0, self.length - self._low[STOP])
        return start, stop


def _edge_rule(found, length, num_lines):
    """Predicted edge per line index from found `{(index, edge)}`: the stride between the two farthest apart
    found lines, or `length / num_lines` from one; None when nothing is found."""
    if not found:
        return None
    points = sorted(found)
    (first_index, first_edge), (last_index, last_edge) = points[0], points[-1]
    stride = (length / num_lines if last_index == first_index
              else (last_edge - first_edge) / (last_index - first_index))
    return lambda index: np.clip(np.round(last_edge + (index - last_index) * stride), 0, length - 1).astype(np.int64)


def _edge_lines(kind, threshold, length):
    """The lines an edge-search probe lights: `[0, t)` for a start, `[length - t, length)` for a stop."""
    return np.arange(threshold) if kind == START else np.arange(length - threshold, length)


def _plan_axis(length, periods, num_lines, runs=4):
    """Which layers to multiplex, at which period, and which to search by edges, in the fewest probe images.

    Args:
        length: the image's size along the axis.
        periods: per layer, the period its boxes need (`_Prober._estimate_periods`).
        num_lines: per layer, the feature map's size along the axis.
        runs: how many references every multiplexed or line-by-line probe runs on.

    Returns:
        `(period or None, layers to search by edges)`; layers in neither are probed line by line, which is
        chosen (period None, no layers to search) when it is cheapest.
    """
    best_cost, best = runs * length, (None, [])  # line by line: one probe per line serves every layer
    for period in sorted(set(periods)) + [None]:
        if period is not None and period >= length:
            continue
        multiplexed = [layer for layer, needed in enumerate(periods) if period is not None and needed <= period]
        searched = [layer for layer in range(len(periods)) if layer not in multiplexed]
        cost = 0 if period is None else runs * (period + len(_block_probes(length, period)[1]))
        cost += sum(_search_cost(length, periods[layer], num_lines[layer], runs) for layer in searched)
        if cost < best_cost:
            best_cost, best = cost, (period, searched)
    return best


def _block_probes(length, period):
    """The probes that say which block of `period` lines each box lies in, whichever way needs fewer.

    Halves: prefix probes (lines `[0, j * period)`) and suffix probes (`[j * period, length)`), two per block
    border. Bands: levels that each multiply the known span of the start by a factor `m` of 3 or more with `m`
    probes (`_decode_bands`); a factor of 2 would leave a box crossing a band border ambiguous.

    Returns:
        `(blocks, probes)`: `('halves', num_blocks)` or `('bands', factors)`, and the lit lines of each probe.
    """
    lines = np.arange(length)
    num_blocks = math.ceil(length / period)
    halves = [lines[:block * period] for block in range(1, num_blocks)]
    halves += [lines[block * period:] for block in range(1, num_blocks)]
    factors = _band_factors(length / period)
    if len(halves) <= sum(factors):
        return ('halves', num_blocks), halves
    bands, width = [], period
    for factor in factors:
        bands += [lines[(lines % (factor * width)) // width == band] for band in range(factor)]
        width *= factor
    return ('bands', factors), bands


def _band_factors(ratio):
    """The fewest band probes that span `ratio` times the period: factors of 3 or more whose product reaches
    it, with the least sum (e.g. 3, 3, 4 for 32)."""
    best = []
    for levels in range(1, max(1, math.ceil(math.log(ratio, 3))) + 1):
        base = math.floor(ratio ** (1 / levels))
        for larger in range(levels + 1):  # `larger` factors of base + 1, the rest of base
            factors = [max(3, base)] * (levels - larger) + [max(3, base + 1)] * larger
            if math.prod(factors) >= ratio and (not best or sum(factors) < sum(best)):
                best = factors
    return best if ratio > 1 else []


def _search_cost(length, period, num_lines, runs):
    """About how many probe images `_EdgeSearch` needs for one layer: a bisection and two probes per distinct
    edge (lines whose boxes reach past the image's border share the clipped edge), asked on one reference,
    and one probe per distinct edge confirmed on the other `runs - 1` (`_Prober._search_edges`)."""
    stride = math.ceil(length / num_lines)
    box = max(period - stride, stride)  # the estimate's box length (see `_estimate_periods`)
    clipped = min(num_lines, (box - stride) // (2 * stride) + 1)  # lines clipped at each border
    distinct_edges = 2 * (num_lines - clipped)
    return math.ceil(math.log2(length)) + 2 + distinct_edges * (2 + runs - 1)


def _decode_layer(changed, period, blocks, length):
    """One layer's extents from multiplexed observations `[probes, feat_h, feat_w]` (the phase probes, then
    the block probes of `blocks`, see `_block_probes`), or None."""
    feature_shape = changed.shape[1:]
    # Decode each distinct pattern of observations once: feature pixels share very few of them.
    unique_patterns, pattern_of_pixel = _unique_rows(changed.reshape(len(changed), -1).T)
    decoded = np.zeros((len(unique_patterns), 2), np.int64)
    for index, pattern in enumerate(unique_patterns):
        extent = _decode_pattern(pattern[:period], pattern[period:], period, blocks, length)
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
    if _transposed(field.recfield):
        logger.warning(
            'The boxes of %s move down the image from one feature-map column to the next, and not from row to row: '
            'the map looks channels-first [batch, channels, height, width] (PyTorch\'s layout). forward_func must '
            'return [batch, height, width, channels]: transpose it with np.transpose(maps, (0, 2, 3, 1)).',
            layer_name)


def _transposed(boxes):
    """Whether boxes `[feat_h, feat_w, 4]` move with the feature column along the image's rows while staying put
    from feature row to feature row: what a channels-first map `[batch, channels, height, width]` read as
    `[batch, height, width, channels]` gives (its "rows" are channels, its "columns" the real rows)."""
    rows = boxes[..., [0, 2]]  # the image rows each box spans
    return (boxes.shape[0] > 1 and boxes.shape[1] > 1 and (rows == rows[:1]).all()
            and len(np.unique(rows[0], axis=0)) > 1)


def _decode_pattern(phase_changed, block_changed, period, blocks, length):
    """Decodes one feature pixel's extent `(start, stop)` from multiplexed observations.

    Args:
        phase_changed: bool `[period]`, whether lighting every line `y % period == phase` changed the pixel.
        block_changed: bool, what the block probes of `blocks` (`_block_probes`) changed.
        period: spacing of the lit lines.
        blocks: `('halves', num_blocks)` or `('bands', factors)`, see `_block_probes`.
        length: image size along the axis.

    Returns:
        `(start, stop)`, `(0, 0)` for a pixel that nothing changes, or None when the observations do not fit
        a box shorter than `period` (the estimate was too small, or a probe was masked).
    """
    if not phase_changed.any():
        return (0, 0) if not block_changed.any() else None
    if phase_changed.all():
        return None
    # The box starts right after the longest run of unchanged phases (cyclically); that run must be unique.
    changed_phases = np.flatnonzero(phase_changed)
    gaps = np.diff(np.append(changed_phases, changed_phases[0] + period)) - 1
    longest = gaps.max()
    if (gaps == longest).sum() != 1:
        return None
    start_phase = int(changed_phases[(np.argmax(gaps) + 1) % len(changed_phases)])
    box_length = period - int(longest)
    kind, layout = blocks
    if kind == 'halves':
        start = _decode_halves(block_changed, start_phase, period, layout)
    else:
        start = _decode_bands(block_changed, start_phase, box_length, period, layout)
    if start is None or start + box_length > length or (
            kind == 'halves' and (start + box_length - 1) // period != int(block_changed[layout - 1:].sum())):
        return None
    return start, start + box_length


def _decode_halves(block_changed, start_phase, period, num_blocks):
    """The start from prefix probes (lines `[0, j * period)` lit, `j = 1 ..`: True exactly for
    `j > start // period`) and suffix probes (`[j * period, length)`: True exactly for `j <= (stop - 1) //
    period`), the first `num_blocks - 1` and the last of `block_changed`; None if they are no steps."""
    prefix_changed, suffix_changed = block_changed[:num_blocks - 1], block_changed[num_blocks - 1:]
    if not _is_step(prefix_changed, rising=True) or not _is_step(suffix_changed, rising=False):
        return None
    return int((~prefix_changed).sum()) * period + start_phase


def _decode_bands(block_changed, start, box_length, period, factors):
    """The start from band probes, level by level: with the start known modulo `width` (at first the period),
    probe `k` of a level with factor `m` lights the lines `y` with `(y % (m * width)) // width == k`. A box
    shorter than `width` touches its start's band, and the next one (cyclically) exactly when it crosses a
    band border, which gives the start modulo `m * width`. None if the touched bands do not fit that."""
    width, offset = period, 0
    for factor in factors:
        touched = np.flatnonzero(block_changed[offset:offset + factor])
        offset += factor
        crosses = start % width + box_length > width
        if len(touched) != 1 + crosses:
            return None
        band = int(touched[0])
        if crosses:
            if touched[1] != band + 1:
                if not (band == 0 and touched[1] == factor - 1):
                    return None
                band = factor - 1  # the box crosses from the last band into the first
        start += band * width
        width *= factor
    return int(start)


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


def _precision(dtype):
    """The relative precision (eps) of a feature map of `dtype`, at least float32's (a float64 map may come
    from a float32 network; an integer one is compared as float32)."""
    float32 = np.finfo(np.float32).eps
    return max(float32, np.finfo(dtype).eps) if np.issubdtype(dtype, np.floating) else float32


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
