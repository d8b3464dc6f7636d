"""Why a patch fires, for a run's model and dataset: the attributions of the drawn channels' kept entries
(`--attribution`) and every layer's effective receptive field (`--erf`).

Both run after the scan, layer by layer, on the images they need only: the kept images, or a sample of the dataset,
read again one batch at a time (`batches_holding`), so memory holds a batch whatever the dataset's size. The
methods are those of `utils.probing.attribution`; gradients come from the model's adapter
(`utils.core.model.Model.gradient_func`), forward passes from any model.
"""

import collections
import logging

import numpy as np

import recfield
from utils.base.progress import progress_bar
from utils.pictures.gallery import entry_key
from utils.probing import attribution

logger = logging.getLogger(__name__)

# Integrated gradients that miss f(image) - f(reference) by more than this share are warned about (`--ig_steps`).
COMPLETENESS_TOLERANCE = 0.05

class AttributionOptions(collections.namedtuple('AttributionOptions',
                                                'method ig_steps occlusion_window occlusion_stride erf erf_images')):
    """What `--attribution` and `--erf` ask for: `method` (one of `utils.probing.attribution.METHODS`, or None),
    `ig_steps`, `occlusion_window` and `occlusion_stride` (None: from each box), `erf` (bool) and `erf_images` (0: every
    image of the dataset)."""

    __slots__ = ()

    @property
    def asked(self):
        """Whether anything is asked for: attributions or effective receptive fields."""
        return bool(self.method or self.erf)


AttributionOptions.__new__.__defaults__ = (None, attribution.DEFAULT_IG_STEPS, None, None, False, 0)

Explanations = collections.namedtuple('Explanations', 'attributions erfs record')
Explanations.__doc__ = """What `explain` found: `attributions`, a dict from `utils.pictures.gallery.entry_key` to the
entry's float32 attribution `[box height, box width]` (empty without `--attribution`); `erfs`, per layer a
`recfield.EffectiveReceptiveField` or None; `record`, the run's settings as `activations.json` gives them, or None."""


def check_options(model, options):
    """Refuses, before the scan, what the model cannot do.

    Raises:
        ValueError: a gradient method for a model that runs forward only.
    """
    if options.method in attribution.GRADIENT_METHODS and model.gradient_func is None:
        raise ValueError(f'--attribution {options.method} needs gradients, and this model runs forward only; use '
                         '--attribution occlusion.')


def explain(model, dataset, layers, options):
    """The attributions and effective receptive fields `options` ask for.

    Args:
        model, dataset: what was scanned.
        layers: `(name, field, tracker, channels)` of layers of the model (by name), with the channels drawn:
            their kept entries get attributions.
        options: `AttributionOptions`.

    Returns:
        `Explanations`.

    Raises:
        ValueError: see `check_options`; a kept image the dataset does not read again.
    """
    check_options(model, options)
    indices = [model.layer_names.index(name) for name, *_ in layers]
    attributions = {}
    if options.method:
        for index, (name, field, tracker, channels) in zip(indices, layers):
            attributions.update(attribute_layer(model, dataset, index, name, field, tracker, channels, options))
    erfs = [None] * len(layers)
    if options.erf:
        sample = erf_sample(len(dataset), options.erf_images)
        erfs = [effective_field(model, dataset, index, field, sample)
                for index, (_, field, _, _) in zip(indices, layers)]
    record = describe_options(model, options) if options.asked else None
    if options.method and not attributions:  # no drawn channel: no file either
        record['attribution']['file'] = None
    return Explanations(attributions, erfs, record)


def describe_options(model, options):
    """The settings of the attributions and effective fields, as `activations.json` records them."""
    record = {}
    if options.method:
        record['attribution'] = {'method': options.method, 'file': 'attributions.npz',
                                 'reference': float(np.mean(model.value_range))}
        if options.method == 'integrated_gradients':
            record['attribution']['ig_steps'] = int(options.ig_steps)
        if options.method == 'occlusion':
            record['attribution'].update(occlusion_window=options.occlusion_window or 'a quarter of the box',
                                         occlusion_stride=options.occlusion_stride or 'half the window')
    if options.erf:
        record['effective_receptive_field'] = {'method': erf_method(model), 'file': 'erf.npz'}
    return record


def erf_method(model):
    """How `--erf` measures a model: by gradients where its adapter gives them, else by occlusion."""
    return 'gradients' if model.gradient_func is not None else 'occlusion'


def batches_holding(dataset, wanted, what):
    """The dataset's batches `(network_inputs, display_images, indices)` that hold some of the `wanted` indices,
    read again in order, one at a time.

    Raises:
        ValueError: a wanted image the dataset did not read again (`what` says what it was wanted for).
    """
    batch_size, wanted = dataset.batch_size, set(int(index) for index in wanted)
    seen = set()
    for batch in sorted({index // batch_size for index in wanted}):
        start = batch * batch_size
        for inputs, display_images, indices in dataset.read(start, min(start + batch_size, len(dataset))):
            seen.update(np.asarray(indices).tolist())
            yield inputs, display_images, indices
    missing = sorted(wanted - seen)
    if missing:
        raise ValueError(f'image {dataset.ids[missing[0]]} was scanned but is not read again for {what}; keep the '
                         'images unchanged until the run ends.')


def images_of(dataset, wanted, what):
    """`(index, network input)` of the `wanted` dataset indices, in index order (`batches_holding`)."""
    wanted = set(int(index) for index in wanted)
    for inputs, _, indices in batches_holding(dataset, wanted, what):
        for position, index in enumerate(np.asarray(indices).tolist()):
            if index in wanted:
                yield index, np.asarray(inputs[position], np.float32)


def attribute_layer(model, dataset, index, name, field, tracker, channels, options):
    """The attributions of the kept entries of `channels` of the layer `index` (`explain`).

    Returns:
        dict from `entry_key` to float32 `[box height, box width]`.
    """
    entries = collections.defaultdict(list)  # image index -> [(key, unit, box)]
    for channel in channels:
        _, coords, indices, _ = tracker.channel(channel)
        for rank, (image_index, (y, x)) in enumerate(zip(indices.tolist(), coords.tolist())):
            entries[image_index].append((entry_key(name, channel, rank), (y, x, int(channel)), field.recfield[y, x]))
    if not entries:
        return {}
    reference = attribution.reference_image(model.imshape[1:], model.value_range)
    method = attribution.method_for(options.method, reference, options.ig_steps, options.occlusion_window,
                                    options.occlusion_stride)
    function = model.unit_gradients_func(index) if method.uses_gradients else model.unit_values_func(index)
    tasks = (attribution.Task(key, image, unit, box) for image_index, image in images_of(dataset, entries,
                                                                                            'the attributions')
             for key, unit, box in entries[image_index])
    total = sum(method.count(attribution.Task(key, None, unit, box)) for found in entries.values()
                for key, unit, box in found)
    with progress_bar(f'attributions of {name} (images run) ', total) as bar:
        found = dict(attribution.attribute_tasks(tasks, method, function, model.imshape[0],
                                                 None if model.any_batch_size else reference,
                                                 lambda count: bar.update(min(total, bar.value + count))))
    if options.method == 'integrated_gradients':
        _check_completeness(model, index, name, tracker, found, reference, channels)
    return found


def _check_completeness(model, index, name, tracker, found, reference, channels):
    """Warns where integrated gradients miss `f(image) - f(reference)` by more than `COMPLETENESS_TOLERANCE` of its
    size: too few steps (`--ig_steps`) for the network's bends."""
    reference_map = model.maps_of(np.repeat(reference[None], _one_batch(model), axis=0), [index])[0][0]
    worst = 0.0
    for channel in channels:
        firings, coords, _, _ = tracker.channel(channel)
        for rank, (firing, (y, x)) in enumerate(zip(firings, coords.tolist())):
            change = firing - float(reference_map[y, x, channel])
            total = float(found[entry_key(name, channel, rank)].sum())
            if abs(change) > 1e-6:
                worst = max(worst, abs(total - change) / abs(change))
    if worst > COMPLETENESS_TOLERANCE:
        logger.warning('the integrated gradients of %s miss f(image) - f(reference) by up to %.1f %%; more '
                       '--ig_steps make them closer.', name, 100 * worst)


def _one_batch(model):
    return 1 if model.any_batch_size else model.imshape[0]


def erf_sample(num_images, erf_images):
    """The dataset indices `--erf_images` averages: all, or `erf_images` spread evenly over the dataset."""
    if not erf_images or erf_images >= num_images:
        return np.arange(num_images)
    return np.unique(np.linspace(0, num_images - 1, erf_images).round().astype(np.int64))


def effective_field(model, dataset, index, field, sample):
    """The effective receptive field of the layer `index` (`recfield.measure_effective_field`) over the images
    `sample`, by gradients where the model gives them, else by occlusion of every pixel of the exact field."""
    method = erf_method(model)
    function = model.unit_gradients_func(index) if method == 'gradients' else model.unit_values_func(index)
    name = model.layers[index].name
    total = recfield.effective_field_calls(field, method)[0] * len(sample)
    with progress_bar(f'effective receptive field of {name} (images run) ', total) as bar:
        erf = recfield.measure_effective_field(
            (image for _, image in images_of(dataset, sample, 'the effective receptive fields')), function, field,
            method, model.value_range, model.imshape[0], not model.any_batch_size,
            lambda count: bar.update(min(total, bar.value + count)))
    print(erf.describe(name), flush=True)
    return erf
