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
  the rest bisected (`utils.probing.edges.EdgeSearch`), about `log2(H)` probes plus two per distinct edge.

Per axis the plan needing the fewest probe images is chosen for all layers together
(`utils.probing.planning.plan_axis`). Every decoded box is checked for consistency, and what does not decode
cleanly is measured again row by row, so every way gives the same boxes.

The same image can give values that differ in their last bits (libraries pick kernels, blockings and thread
splits by CPU, thread count and batch size; tiled kernels let pixels outside a field move a value's last
bits), so a probe is compared with its reference in a batch of the same size, and a value counts as changed
when it moves by more than `NOISE_ULPS` units of float32 precision of its reference value. `tolerance=0`
compares bit for bit instead.

Masked probes (a dead ReLU, a unit saturated by the reference image, a max-pool that ignores the change)
would shrink boxes, so every probe is run on several references and a feature pixel counts as changed when
it changes in any run (see `utils.probing.prober.Prober`): twice on a quiet grey reference, moving the lit
pixels up in one run and down in the other, and from each end of the value range. The edge search asks on the
first reference only and confirms on the others what its edges rest on.

The probing itself lives in `utils/probing/` (one module per job); this module holds the public API.
"""

import itertools
import logging

import cv2
import numpy as np

from utils.probing import attribution
from utils.probing.contract import takes_layers_keyword, what_came_back  # noqa: F401 (re-exported, see pipeline)
from utils.probing.geometry import COLUMNS, ROWS, geometry, transposed
from utils.probing.prober import NOISE_ULPS, ProbeOptions, Prober, check_imshape  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

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
        local: True when the boxes leave out what reaches a pixel only through a global pooling (squeeze-and-
            excitation gates and the like, held at fixed values while probing: see `utils.core.model.Model`);
            such a path reaches every pixel from the whole image.
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
        options = _probe_options(imshape, value_range=value_range, num_trials=num_trials, multiplex=multiplex,
                                 tolerance=tolerance, seed=seed, extreme_references=extreme_references,
                                 full_batches=full_batches)
        fields = _probed(imshape, forward_func, None, options)
        self.__dict__.update(vars(fields[0]))

    @classmethod
    def from_arrays(cls, recfield, image_size, local=False):
        """A receptive field measured before, from the arrays of `to_arrays` (no probing).

        Args:
            recfield: int `[feat_h, feat_w, 4]` boxes `[y1, x1, y2, x2]`, within the image.
            image_size: `(height, width)` of the probe images they were measured on.
            local: see the attribute `local`.

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
        field = cls._of_boxes(boxes, height, width, num_probe_images=0)
        field.local = bool(np.asarray(local))
        return field

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
        field.local = False
        field.size, field.stride, field.padding = geometry(field.recfield)
        return field

    def to_arrays(self):
        """`{'recfield': boxes, 'image_size': [height, width]}`, and `'local': True` for a local field: what
        `from_arrays` takes (e.g. for `np.savez`)."""
        arrays = {'recfield': self.recfield, 'image_size': np.array([self.height, self.width], np.int64)}
        if self.local:
            arrays['local'] = np.bool_(True)
        return arrays

    def __eq__(self, other):
        if not isinstance(other, ReceptiveField):
            return NotImplemented
        return ((self.height, self.width, self.local) == (other.height, other.width, other.local)
                and np.array_equal(self.recfield, other.recfield))

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


class EffectiveReceptiveField:
    """Where a layer's receptive field really carries weight (Luo et al., NIPS 2016): how strongly each input
    pixel moves the centre feature pixel, averaged over images.

    Attributes:
        erf: float64 `[height, width]`, non-negative, summing to 1 (all 0 where nothing moves the unit).
        feature_yx: `(y, x)` of the feature pixel, the centre of the map.
        box: `[y1, x1, y2, x2]` of its exact receptive field; `erf` is 0 outside it.
        exact_size: `(height, width)` of the exact field (`ReceptiveField.size`, or the clipped box's sides).
        num_images: how many images were averaged.
        method: 'gradients' (the size of the gradient of the mean over the layer's channels, summed over colour
            channels) or 'occlusion' (the size of the change of that mean when one pixel takes the reference value).
    """

    def __init__(self, erf, feature_yx, box, exact_size, num_images, method):
        total = float(np.sum(erf))
        self.erf = np.asarray(erf, np.float64) / total if total > 0 else np.asarray(erf, np.float64)
        self.feature_yx = tuple(int(value) for value in feature_yx)
        self.box = [int(value) for value in box]
        self.exact_size = tuple(int(value) for value in exact_size)
        self.num_images, self.method = int(num_images), method

    def mass_sides(self, shares=attribution.SHARES):
        """`(height, width)` of the smallest boxes centred in the exact field that hold each share of the mass
        (`utils.probing.attribution.mass_box_sides`)."""
        return attribution.mass_box_sides(self.erf, self.box, shares)

    def summary(self):
        """`50 % of its weight in HxW, 90 % in HxW of the exact HxW (feature pixel (y, x), <n> images, <method>)`."""
        (half_h, half_w), (most_h, most_w) = self.mass_sides()
        return (f'50 % of its weight in {half_h}x{half_w}, 90 % in {most_h}x{most_w} of the exact '
                f'{self.exact_size[0]}x{self.exact_size[1]} (feature pixel {self.feature_yx}, {self.num_images} '
                f'images, {self.method})')

    def describe(self, name):
        """`<name> effective receptive field: <summary>`, the line `--erf` prints."""
        return f'{name} effective receptive field: {self.summary()}'


def effective_field_calls(field, method):
    """The images `measure_effective_field` runs per image averaged: 1 gradient, or by occlusion the image and one
    image per pixel of the centre feature pixel's exact field.

    Returns:
        `(calls, field_pixels)`: the calls per image, and the pixels of that exact field.
    """
    y1, x1, y2, x2 = (int(value) for value in field.recfield[field.feature_shape[0] // 2, field.feature_shape[1] // 2])
    pixels = (y2 - y1) * (x2 - x1)
    return (1 if method == 'gradients' else 1 + pixels), pixels


def measure_effective_field(images, function, field, method='gradients', value_range=(-1.0, 1.0), batch_size=16,
                            fill_batches=False, progress=None):
    """The effective receptive field of a layer's centre feature pixel, averaged over images.

    Args:
        images: iterable of network inputs `[height, width, channels]`, read one batch at a time.
        function: with 'gradients', `gradients(batch, units)`; with 'occlusion', `values(batch, units)` (see
            `utils.probing.attribution`); a unit `(y, x, attribution.ALL_CHANNELS)` asks for the mean over the
            layer's channels.
        field: the layer's `ReceptiveField`, measured on images of this size: where the centre pixel is, and the
            pixels occlusion moves (those of its exact field; outside it nothing changes).
        method: 'gradients' or 'occlusion' (one forward pass per pixel of the exact field and image: for models
            without gradients).
        value_range: `(low, high)` of the network's inputs; occlusion puts its middle in place of a pixel.
        batch_size: input images per call; fill_batches: fill the last batch up (networks of one batch size).
        progress: None, or a function called with the number of input images after each call.

    Returns:
        an `EffectiveReceptiveField`.

    Raises:
        ValueError: an unknown method, or no images.
    """
    centre = field.feature_shape[0] // 2, field.feature_shape[1] // 2
    box = [int(value) for value in field.recfield[centre]]
    exact_size = field.size if field.size is not None else (box[2] - box[0], box[3] - box[1])
    images = iter(images)
    first = next(images, None)
    if first is None:
        raise ValueError('an effective receptive field needs at least one image.')
    reference = attribution.reference_image(np.shape(first), value_range)
    if method == 'gradients':
        measure, where = attribution.AbsoluteGradient(), [0, 0, field.height, field.width]
    elif method == 'occlusion':
        measure, where = attribution.Occlusion(reference, window=1, stride=1, absolute=True), box
    else:
        raise ValueError(f'an effective receptive field is measured by gradients or occlusion, not {method!r}.')
    tasks = (attribution.Task(number, np.asarray(image, np.float32), (*centre, attribution.ALL_CHANNELS), where)
             for number, image in enumerate(itertools.chain([first], images)))
    total, count = np.zeros((field.height, field.width), np.float64), 0
    for _, values in attribution.attribute_tasks(tasks, measure, function, batch_size,
                                                 reference if fill_batches else None, progress):
        total[where[0]:where[2], where[1]:where[3]] += values
        count += 1
    return EffectiveReceptiveField(total / count, centre, box, exact_size, count, method)


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
    options = _probe_options(imshape, value_range=value_range, num_trials=num_trials, multiplex=multiplex,
                             tolerance=tolerance, seed=seed, extreme_references=extreme_references,
                             full_batches=full_batches)
    return _probed(imshape, forward_func, int(num_layers), options, layer_names)


def measure_model(model, indices=None, progress=None, **options):
    """The receptive fields of a model's layers, from one set of probes (`measure_receptive_fields`).

    Args:
        model: an adapter of any kind of model (`utils.core.model.Model`: a TF1 session, a Keras file, ...), or
            any object with its `imshape`, `value_range`, `any_batch_size`, `layers` (each with a `name`) and
            `probe_forward_func(indices)`.
        indices: positions of the layers to measure in `model.layers` (default: all). The fields of its
            `local_layers` are local (`ReceptiveField.local`): the model's probes hold its global paths.
        progress: None, or a function called with the number of images of every batch run (probes and the
            references they are compared with), e.g. to advance a progress bar.
        **options: `num_trials`, `multiplex`, `tolerance`, `seed`, `extreme_references`, as for
            `ReceptiveField`; the value range and batch rule are the model's.

    Returns:
        list of `ReceptiveField`, one per layer of `indices`, in order.

    Raises:
        ValueError: see `ReceptiveField`.
    """
    indices = list(range(len(model.layers)) if indices is None else indices)
    probe_forward_func = model.probe_forward_func(indices)

    def counted(batch, layers=range(len(indices))):
        feature_maps = probe_forward_func(batch, layers=layers)
        progress(len(batch))
        return feature_maps
    forward_func = probe_forward_func if progress is None else counted
    fields = measure_receptive_fields(model.imshape, forward_func, len(indices), value_range=model.value_range,
                                      layer_names=[model.layers[index].name for index in indices],
                                      full_batches=not model.any_batch_size, **options)
    for index, field in zip(indices, fields):  # measured with the model's global paths held (`local_layers`)
        field.local = index in getattr(model, 'local_layers', ())
    return fields


def _probe_options(imshape, **options):
    """`ProbeOptions(**options)`, checked after `imshape`: a bad `imshape` is the error reported first."""
    check_imshape(imshape)
    return ProbeOptions(**options)


def _probed(imshape, forward_func, num_layers, options, layer_names=None):
    """The fields `Prober(imshape, ...)` measures, warned about; images too large for memory a ValueError saying
    so."""
    try:
        prober = Prober(imshape, forward_func, num_layers, options, layer_names)
        all_boxes, mixes_batch = prober.measure()
    except MemoryError as error:
        raise ValueError(f'probing images of imshape {list(imshape)} needs more memory than there is ({error}); '
                         'use smaller images or a smaller batch.') from error
    if any(mixes_batch):  # once, however many layers show it
        logger.warning(
            'The feature map of an image changes with the other images in its batch: the forward pass '
            'mixes images, as BatchNorm does in training mode, so every feature pixel depends on the whole '
            'image (and batch) and these boxes mean nothing. Feed the training-phase flag as False (e.g. '
            'phase_train: False) in forward_func.')
    fields = []
    for layer, (boxes, mixes) in enumerate(zip(all_boxes, mixes_batch)):
        fields.append(ReceptiveField._of_boxes(boxes, prober.height, prober.width, prober.num_probe_images, mixes))
        _warn_about(fields[-1], prober.layer_name(layer), whole_image=not any(mixes_batch))
    return fields


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
    options = _probe_options(imshape, value_range=value_range, num_trials=num_trials, tolerance=tolerance, seed=seed,
                             extreme_references=extreme_references, full_batches=full_batches)
    prober = Prober(imshape, forward_func, len(fields), options)
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
            'the image (use larger images to see it), or something mixes all pixels: a global pooling '
            '(squeeze-and-excitation gates: the Keras and ONNX scripts hold them and measure the local field), a '
            'BatchNorm layer in training mode (feed the training-phase flag as False, e.g. phase_train: False) or '
            'a per-image normalisation inside the graph (normalise images before the input placeholder).',
            layer_name)
    if transposed(field.recfield):
        logger.warning(
            'The boxes of %s move down the image from one feature-map column to the next, and not from row to row: '
            'the map looks channels-first [batch, channels, height, width] (PyTorch\'s layout). forward_func must '
            'return [batch, height, width, channels]: transpose it with np.transpose(maps, (0, 2, 3, 1)).',
            layer_name)
