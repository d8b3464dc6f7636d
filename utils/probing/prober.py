"""The prober: runs probe images (a reference with some rows or columns lit) through the network and says
which feature pixels change, and measures every layer's boxes from them per axis: multiplexed, by an edge
search, or line by line, as `planning.plan_axis` finds cheapest. `ProbeOptions` holds how it probes.
"""

import dataclasses
import logging
import math

import numpy as np

from utils.probing.contract import checked_map, takes_layers_keyword, what_came_back
from utils.probing.decoding import decode_layer
from utils.probing.edges import EdgeSearch, edge_lines
from utils.probing.geometry import COLUMNS, ROWS, hull
from utils.probing.planning import block_probes, plan_axis

logger = logging.getLogger(__name__)

# The automatic change threshold (tolerance=None): a value counts as changed when it moves by more than this
# many units of float32 precision (eps, 2**-23) of its value on the reference: 8 to 16 units in its last place.
# Rounding (other kernels, or lit pixels outside a field seen through tiled kernels) moves a value in its last
# few bits. Real changes are larger in those units even where they are tiny next to the channel's largest value:
# MobileNetV2 with untrained weights at 96x96 had changes of 4e-8 of that (no threshold relative to it could
# tell them from rounding), and the weakest moved its value by 52 units in its last place.
NOISE_ULPS = 8


@dataclasses.dataclass(frozen=True)
class ProbeOptions:
    """How to probe (see `recfield.ReceptiveField` for each option).

    Attributes:
        value_range: `(low, high)`, the range of input values the network expects; kept as two floats.
        num_trials: how many times each probe is run (masking guard), a whole number of at least 1.
        multiplex: light several lines per probe where the receptive field allows it.
        tolerance: None (automatic, `NOISE_ULPS`), or how far a value may move unnoticed (0: bit for bit); kept
            as a float.
        seed: seed of the random references and probe values.
        extreme_references: also run the probes on a reference at each end of the value range.
        full_batches: fill every batch up to the batch size with reference images.

    Raises:
        ValueError: `value_range` without high > low, `num_trials` no whole number of at least 1, or a negative
            `tolerance`.
    """

    value_range: tuple = (-1.0, 1.0)
    num_trials: int = 2
    multiplex: bool = True
    tolerance: float = None  # or None: automatic
    seed: int = 0
    extreme_references: bool = True
    full_batches: bool = True

    def __post_init__(self):
        low, high = (float(v) for v in self.value_range)
        if not high > low:
            raise ValueError(f'value_range must be (low, high) with high > low, got {self.value_range!r}.')
        if not _is_positive_integer(self.num_trials):
            raise ValueError(f'num_trials must be a whole number, at least 1, got {self.num_trials!r}.')
        if self.tolerance is not None and not float(self.tolerance) >= 0:
            raise ValueError(f'tolerance must be None (automatic) or 0 or more (how far a value may move '
                             f'unnoticed), got {self.tolerance!r}.')
        # Frozen: the checked values are set through object.__setattr__.
        object.__setattr__(self, 'value_range', (low, high))
        object.__setattr__(self, 'tolerance', None if self.tolerance is None else float(self.tolerance))


class Prober:
    """Runs probe images through the network under every trial and says which feature pixels change.

    A trial is a reference image and the values lit lines take in it. Pairs of trials share a reference and
    move the lit lines by the full value range up in one and down in the other (random signs per pixel): a
    unit that a change cannot reach in one direction (a dead ReLU, a max-pool ignoring a smaller value) is
    reached in the other. The first reference is a quiet grey (mid-range, faint noise), which saturates no
    unit; later ones are full-range noise. Two more trials start from the ends of the value range and swing
    the lit lines to the other end: units that only wake when most of their window moves one way (all-positive
    or all-negative kernels with a negative bias, dead at grey) are awake at one end, and any lit line moves them.
    """

    def __init__(self, imshape, forward_func, num_layers, options, layer_names=None):
        """Runs the references through the network.

        Args:
            imshape: `[batch_size, height, width, channels]`, four known positive integers.
            forward_func: the function that runs the network (see `recfield.measure_receptive_fields`).
            num_layers: None: `forward_func` returns one map (array or one-element list), as for
                `recfield.ReceptiveField`; else a list of that many maps.
            options: `ProbeOptions`.
            layer_names: the layers' names, for warnings (default: their positions).

        Raises:
            ValueError: a bad `imshape`, or `forward_func` breaks the contract (`contract.checked_map`) or
                returns NaN or infinity for a reference.
        """
        self.options = options
        self.imshape = check_imshape(imshape)
        self.batch_size, self.height, self.width, self.channels = self.imshape
        low, high = options.value_range
        self._forward_func, self._num_layers, self._layer_names = forward_func, num_layers, layer_names
        self._selects_layers = num_layers is not None and takes_layers_keyword(forward_func)
        self.feature_shapes = None
        self.num_probe_images = 0

        rng = np.random.default_rng(options.seed)
        image_shape = (self.height, self.width, self.channels)
        middle, half_range = (low + high) / 2, (high - low) / 2
        references = []  # (reference image, probe values)
        for trial in range(options.num_trials):
            if trial % 2 == 0:
                amplitude = 0.02 if trial == 0 else 1.0
                reference = (middle + amplitude * half_range * rng.uniform(-1, 1, image_shape)).astype(np.float32)
                change = (high - low) * rng.choice([-1.0, 1.0], image_shape).astype(np.float32)
            references.append((reference, reference + change if trial % 2 == 0 else reference - change))
        if options.extreme_references:
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

    def measure(self):
        """Measures every layer's boxes, multiplexed or line by line as `options.multiplex` says.

        Returns:
            `(boxes, mixes_batch)`: per layer, int boxes `[feat_h, feat_w, 4]` of `[y1, x1, y2, x2]`, and whether
            the layer's map of an image changes with the other images of its batch (its boxes then cover the
            whole image, unprobed).
        """
        mixes_batch = self._mixes_batch()
        # Where the images of a batch mix, every feature pixel depends on the whole image (and batch): probes
        # sharing a batch would see each other, so such a layer gets the whole image, unprobed.
        lengths = (self.height, self.width)
        extents = [[(np.zeros(shape, np.int64), np.full(shape, lengths[axis], np.int64)) if mixes else None
                    for shape, mixes in zip(self.feature_shapes, mixes_batch)] for axis in (ROWS, COLUMNS)]
        rows, columns = self._measure_axes(extents) if self.options.multiplex else (
            self._measure_line_by_line(axis, extents[axis]) for axis in (ROWS, COLUMNS))
        boxes = [np.stack([rows[layer][0], columns[layer][0], rows[layer][1], columns[layer][1]], axis=-1)
                 for layer in range(len(mixes_batch))]
        return boxes, mixes_batch

    def layer_name(self, layer):
        """The name of the layer at position `layer`, for warnings."""
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
        """The map of `layer` in `result`, checked against the contract (`contract.checked_map`) and against
        the maps `forward_func` gave before."""
        feature_map = checked_map(result, 'forward_func', batch_size)
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
            short = not self.options.full_batches and len(chunk) * (1 + num_references) < self.batch_size
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
        if self.options.tolerance == 0 or not moved.any():
            return moved
        # Only the pixels that changed at all are weighed (few, in most probes of a large map). At least
        # float32 (float64 for integer maps: no wrap-around below 0).
        changed, reference = feature_map[moved], reference_map[moved]
        difference = np.abs(np.subtract(changed, reference, dtype=np.result_type(changed.dtype, np.float32)))
        if self.options.tolerance is None:
            limit = np.abs(reference) * (NOISE_ULPS * _precision(changed.dtype))
        else:
            limit = self.options.tolerance
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
        together), those with few distinct box edges are found by an edge search (`edges.EdgeSearch`), whichever
        plan needs the fewest probe images (`planning.plan_axis`); what does not decode cleanly, or all layers when
        neither pays, is probed line by line.
        """
        lengths = (self.height, self.width)
        unknown = [layer for layer, extent in enumerate(extents[ROWS]) if extent is None]
        if not unknown:
            return extents
        periods, middle_probes, middle_changed = self._estimate_periods()
        searches = []
        for axis in (ROWS, COLUMNS):
            period, searched = plan_axis(lengths[axis], [periods[layer][axis] for layer in unknown],
                                         [self.feature_shapes[layer][axis] for layer in unknown], len(self._trials))
            searched = [unknown[position] for position in searched]
            if period is not None:
                multiplexed = [layer for layer in unknown if layer not in searched]
                decoded = self._measure_multiplexed(axis, lengths[axis], period, multiplexed)
                for layer in multiplexed:
                    extents[axis][layer] = decoded[layer]
            searches += [EdgeSearch(axis, lengths[axis], self.feature_shapes[layer], layer)
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
        return [hull(changed[layer]) if extent is None else extent for layer, extent in enumerate(extents)]

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
                changed = self.run([(axis, edge_lines(kind, t, lengths[axis])) for axis, kind, t in unconfirmed],
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
        lit = [(axis, edge_lines(kind, t, lengths[axis])) for axis, kind, t in probes]
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
        blocks, lit_blocks = block_probes(length, period)
        probes = [(axis, lines[lines % period == phase]) for phase in range(period)]
        probes += [(axis, lit) for lit in lit_blocks]
        extents = [None if changed is None else decode_layer(changed, period, blocks, length)
                   for changed in self.run(probes, layers=layers)]
        if any(extents[layer] is None for layer in layers):
            logger.debug('axis %d: multiplexed probes did not decode cleanly for %d layers', axis,
                         sum(extents[layer] is None for layer in layers))
        return extents


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


def check_imshape(imshape):
    """`imshape` checked.

    Args:
        imshape: `[batch_size, height, width, channels]`.

    Returns:
        a tuple of four ints.

    Raises:
        ValueError: not four known positive integers; the message says what to pass.
    """
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
