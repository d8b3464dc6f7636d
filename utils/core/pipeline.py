"""The steps every example runs, driven by a forward function: receptive fields, the scan, the pictures.

A `Model` is a function that runs a float32 batch and returns the feature maps of the chosen layers, with
the layers' names and channel counts; a `Dataset` is an ordered list of images, each with a name that is the
same on every machine, read in batches. Nothing here imports TensorFlow: a TF1 session, a Keras model or
anything else plugs in through `forward_func`.

    forward_func = lambda x, layers=layers: session.run(layers, feed_dict={images_ph: x})
    model = Model(forward_func, layers, imshape, value_range)
    fields = measure_receptive_fields(model, cache=cache)   # prints one line per layer
    trackers = scan(model, dataset, num_samples)            # shard 0 of 1: the whole dataset
    draw(model, fields, trackers, out_dir, num_channels, dataset=dataset, num_samples=num_samples)

A sharded run (`utils.running.shards`) calls the same `scan` for shard I of N.
"""

import logging
import time

import numpy as np

import recfield
from activations import CANDIDATES_PER_SAMPLE, TopActivations, distinct_layers
from utils.base.progress import progress_bar
from utils.pictures.drawing import check_picture_size, describe_layer, draw_layers, write_receptive_field_example

from utils.core.attributing import batches_holding, explain
from utils.core.recfield_cache import RecfieldCache

logger = logging.getLogger(__name__)

class Dataset:
    """An ordered list of images, read in batches.

    Attributes:
        ids: a name per image, in dataset order, the same on every machine (`photo.jpg:y=0,x=64`,
            `data_batch_2.bin:17`, `Name/Name_0001.jpg`).
        batch_size: images per batch.
        class_names: the sorted names of the images' classes; empty where images have none.
        labels: int64 `[images]`, each image's class (an index into `class_names`), or None.
        places: None, or where each image lies in its photograph, int64 `[images, 6]`
            (`utils.data.images.PLACE_COLUMNS`), for images cut from photographs that overlap: the top lists then
            show distinct places (`activations.distinct_top`). None where images are whole, or where repeats are
            allowed (`--allow_repeats`).
    """

    def __init__(self, ids, batch_size, read, classes=None, places=None):
        """Args:
            ids, batch_size, places: see the attributes.
            read: function `(start, stop)` yielding `(network_inputs, display_images, indices)` for the images
                `start` (a multiple of `batch_size`) to `stop`: float32 inputs, uint8 BGR images for the
                pictures, and their dataset indices. Every image must be in the batch of `index //
                batch_size` (unreadable images may leave a batch short), so that any shard sees the same
                batches as a whole scan.
            classes: None, or each image's class name (an ImageNet-style folder, a CIFAR-10 label), in `ids` order.
        """
        self.ids, self.batch_size, self.read = list(ids), int(batch_size), read
        self.class_names, self.labels = (), None
        if classes is not None:
            if len(classes) != len(self.ids):
                raise ValueError(f'{len(classes)} classes for {len(self.ids)} images: give one class per image.')
            self.class_names = tuple(sorted(set(classes)))
            self.labels = np.searchsorted(self.class_names, classes).astype(np.int64)
        self.places = None if places is None else np.asarray(places, np.int64)

    def __len__(self):
        return len(self.ids)


def numbered(batches, start=0):
    """`(inputs, display_images)` batches with the dataset indices of their images, counting from `start`."""
    for inputs, display_images in batches:
        yield inputs, display_images, np.arange(start, start + len(display_images))
        start += len(display_images)


def shard_bounds(num_images, batch_size, num_shards, shard_index):
    """The images of one shard: `[start, stop)` of the dataset indices.

    Shards are contiguous runs of whole batches (the last batch of the dataset may be short), as equal in
    length as whole batches allow; shards beyond the number of batches are empty.
    """
    num_batches = -(-num_images // batch_size)
    first, last = (num_batches * shard_index // num_shards, num_batches * (shard_index + 1) // num_shards)
    return min(first * batch_size, num_images), min(last * batch_size, num_images)


def scan(model, dataset, num_samples, shard_index=0, num_shards=1, print_line=True,
         candidates_per_sample=CANDIDATES_PER_SAMPLE, bottom_k=0):
    """Runs shard `shard_index` of `num_shards` of the dataset (by default all of it) through the model, and
    prints `scan: <n> images, <t> s` (unless `print_line` is False: on a Dask worker the client prints it).

    Args:
        num_samples: `--num_samples`.
        candidates_per_sample: `--candidates_per_sample`, for a dataset with places (see `candidates`).
        bottom_k: `--bottom_k`: each tracker also keeps every channel's `bottom_k` weakest images (its `weakest`).

    Returns:
        list of `activations.TopActivations`, one per layer, tracking all its channels, with the images'
        dataset indices.
    """
    check_picture_size(num_samples, model.imshape[1])  # before the long run, not after it
    start, stop = shard_bounds(len(dataset), dataset.batch_size, num_shards, shard_index)
    if start == stop:
        logger.warning('shard %d of %d is empty: the dataset has fewer batches (%d images in batches of %d) '
                       'than shards.', shard_index, num_shards, len(dataset), dataset.batch_size)
    started = time.perf_counter()
    kept = candidates(dataset, num_samples, candidates_per_sample)
    trackers = track_top_activations(model, dataset.read(start, stop), kept,
                                     num_batches=-(-(stop - start) // dataset.batch_size), first_index=start,
                                     class_names=dataset.class_names, labels=dataset.labels, bottom_k=bottom_k)
    if print_line:
        print(f'scan: {trackers[0].num_seen if trackers else 0} images, {time.perf_counter() - started:.1f} s',
              flush=True)
    return trackers


def candidates(dataset, num_samples, candidates_per_sample=CANDIDATES_PER_SAMPLE):
    """How many images a scan keeps per channel: `num_samples`, or for a dataset with places `candidates_per_sample`
    times as many, from which `activations.distinct_top` chooses the top lists of distinct places."""
    return num_samples if dataset.places is None else num_samples * candidates_per_sample


def track_top_activations(model, batches, num_samples, num_batches=None, first_index=0, class_names=(), labels=None,
                          bottom_k=0):
    """Keeps each channel's strongest images and its statistics (`utils.base.channel_statistics`), for every layer; one
    `maxima_forward_func` call per batch where the model has one, else one `forward_func` call.

    Args:
        model: a `Model`.
        batches: iterable of `(network_inputs, display_images)` or `(network_inputs, display_images,
            indices)` (the images' indices in the whole dataset; without them they count from `first_index`).
        num_samples: images kept per channel.
        num_batches: length of `batches`, for the progress bar (None: unknown).
        first_index: see `activations.TopActivations`.
        class_names, labels: the dataset's `Dataset.class_names` and `Dataset.labels` (by dataset index), where its
            images have classes.
        bottom_k: see `activations.TopActivations`.

    Returns:
        list of `activations.TopActivations`, one per layer.
    """
    trackers = [TopActivations(num_samples, first_index, class_names, bottom_k) for _ in model.layers]
    next_index = first_index
    with progress_bar('top activations (batches) ', num_batches) as bar:
        for number, (inputs, display_images, *indices) in enumerate(batches, start=1):
            batch_indices = np.asarray(indices[0]) if indices else np.arange(next_index, next_index + len(inputs))
            next_index = int(batch_indices.max(initial=next_index - 1)) + 1
            batch_labels = None if labels is None else labels[batch_indices]
            if model.maxima_forward_func is None:
                for tracker, feature_map in zip(trackers, model.run(inputs)):
                    tracker.update(display_images, feature_map, batch_indices, labels=batch_labels)
            else:
                for tracker, (feature_map, maxima) in zip(trackers, model.run_with_maxima(inputs)):
                    tracker.update(display_images, feature_map, batch_indices, maxima=maxima, labels=batch_labels)
            bar.update(number)
    return trackers


def measure_receptive_fields(model, indices=None, cache=None, print_lines=True):
    """Measures the layers' receptive fields from one set of probes, then prints one line per layer and
    `receptive fields: <n> layers, <p> probe images, <t> s`.

    Args:
        model: a `Model`.
        indices: the layers to measure (default: all).
        cache: a `utils.core.recfield_cache.RecfieldCache`, or None: fields found there are not measured again,
            and measured ones are stored (needs `model.fingerprint()`).
        print_lines: print the lines (False on a Dask worker: the client prints them).

    Returns:
        dict from layer index to `recfield.ReceptiveField`, in the order of `indices`.
    """
    indices = list(range(len(model.layers)) if indices is None else indices)
    started = time.perf_counter()
    keys = _cache_keys(model, indices) if cache is not None else {}
    fields = {index: cache.load(key) for index, key in keys.items()}
    fields = {index: field for index, field in fields.items() if field is not None}
    if fields:
        fields = _agreeing(model, fields, {index: cache.path(keys[index]) for index in fields})
    missing = [index for index in indices if index not in fields]
    num_probe_images = 0
    if missing:
        measured = _probe(model, missing)
        num_probe_images = measured[0].num_probe_images
        for index, field in zip(missing, measured):
            fields[index] = field
            if index in keys:
                cache.save(keys[index], field)
    for index in indices if print_lines else ():
        print(describe_layer(model.layers[index].name, fields[index], model.layers[index].num_channels), flush=True)
    if print_lines:
        print(f'receptive fields: {len(indices)} layer{"s" if len(indices) != 1 else ""}, {num_probe_images} probe '
              f'images, {time.perf_counter() - started:.1f} s', flush=True)
    return {index: fields[index] for index in indices}


def _probe(model, indices):
    """Measures the fields of the layers `indices` together (`recfield.measure_model`), with a progress bar."""
    what = model.layers[indices[0]].name if len(indices) == 1 else f'{len(indices)} layers'
    # The number of probes depends on the receptive fields, unknown in advance: count the images run (probe
    # images, and the references they are compared with, which the summary line's count leaves out).
    with progress_bar(f'receptive fields of {what} (images run) ') as bar:
        return recfield.measure_model(model, indices, progress=lambda count: bar.update(bar.value + count))


def _cache_keys(model, indices):
    """`{index: cache key}` of the layers, or {} when the model has no fingerprint."""
    fingerprint = model.fingerprint()
    if fingerprint is None:
        logger.info('the model has no fingerprint; its receptive fields are not cached.')
        return {}
    return {index: RecfieldCache.key(fingerprint, model.layers[index].name, model.imshape[1:], model.value_range)
            for index in indices}


def _agreeing(model, fields, entries):
    """The cached `fields` that agree with the network now (`recfield.disagreements`: their feature-map sizes, and
    a probe of the image's middle row and column); each other one is warned about with its cache entry
    (`entries`: the files by layer index), to be measured again."""
    indices = list(fields)
    reasons = recfield.disagreements(model.imshape, model.probe_forward_func(indices),
                                     [fields[index] for index in indices], value_range=model.value_range,
                                     full_batches=not model.any_batch_size)
    for index, reason in zip(indices, reasons):
        if reason is not None:
            logger.warning('the cached receptive field of %s does not fit the network: %s; measuring it again '
                           '(cache entry %s).', model.layers[index].name, reason, entries[index])
    return {index: fields[index] for index, reason in zip(indices, reasons) if reason is None}


def draw(model, fields, trackers, out_dir, num_channels, tensorboard_dir=None, dataset=None, heatmap=False,
         attribution=None, num_samples=None):
    """Writes every layer's `-full`/`-crop` pictures and the gallery (`utils.pictures.drawing.draw_layers`), and
    what `attribution` asks for.

    Args:
        model: the `Model` (for the layer names; run again for heatmaps and attributions).
        fields: the layers' receptive fields, a dict by layer index or a list.
        trackers: the layers' `TopActivations`, in layer order (`scan`).
        out_dir, num_channels, tensorboard_dir: see `utils.pictures.drawing.draw_layers`.
        dataset: the `Dataset` scanned: names the images in the gallery; read again for heatmaps and attributions;
            with places, the top lists drawn are those of distinct places.
        heatmap: draw every channel's feature map over its images (`channel_heatmaps`); needs `dataset`.
        attribution: None, or `utils.core.attributing.AttributionOptions`: the attributions of the drawn entries
            and the effective receptive fields (`utils.core.attributing.explain`); needs `dataset`.
        num_samples: the `num_samples` of the scan; needed for a dataset with places.

    Raises:
        ValueError: `heatmap` or `attribution` without `dataset`, a dataset with places without `num_samples`, or
            see `channel_heatmaps` and `utils.core.attributing.explain`.
    """
    explaining = attribution is not None and attribution.asked
    if (heatmap or explaining) and dataset is None:
        raise ValueError('heatmaps and attributions run the model again on the kept images: give draw the dataset.')
    layers = [(layer.name, fields[index], tracker)
              for index, (layer, tracker) in enumerate(zip(model.layers, trackers))]
    record = None
    if dataset is not None and dataset.places is not None:
        if num_samples is None:
            raise ValueError('the dataset has places: give draw the scan\'s num_samples, to choose the top lists of '
                             'distinct places.')
        layers, record = distinct_layers(layers, dataset.places, num_samples)
    draw_layers(layers, out_dir, num_channels, tensorboard_dir, image_names=None if dataset is None else dataset.ids,
                heatmaps=(lambda layers: channel_heatmaps(model, dataset, layers)) if heatmap else None,
                explain=(lambda layers: explain(model, dataset, layers, attribution)) if explaining else None,
                record=record)
    logger.info('pictures are in %s', out_dir)


def channel_heatmaps(model, dataset, layers):
    """Every drawn channel's feature maps on its kept images, computed again (`--heatmap`).

    Only the batches that hold a kept image are read again (`Dataset.read`) and run (`Model.run`), whole, as
    the scan ran them: networks with a fixed batch size take them, and the maps are the scan's. A map whose
    maximum is not the firing the scan kept (a forward pass that is not deterministic) is warned about.

    Args:
        model, dataset: what was scanned.
        layers: `(name, field, tracker, channels)` of every layer of the model, in its order, with the
            channels to draw.

    Returns:
        list, per layer, of a dict from each channel drawn to its float32 maps `[kept images, feat_h, feat_w]`,
        strongest first.

    Raises:
        ValueError: a kept image that the dataset does not read again.
    """
    slots = [{} for _ in layers]  # per layer: dataset index -> [(channel, rank)] of the maps it fills
    for layer_slots, (_, _, tracker, channels) in zip(slots, layers):
        for channel in channels:
            for rank, index in enumerate(tracker.channel(channel)[2].tolist()):
                layer_slots.setdefault(index, []).append((channel, rank))
    maps = [{channel: np.zeros((len(tracker.channel(channel)[2]), *field.feature_shape), np.float32)
             for channel in channels} for _, field, tracker, channels in layers]
    wanted = set().union(*slots)
    num_batches = len({index // dataset.batch_size for index in wanted})
    with progress_bar('heatmaps (batches) ', num_batches) as bar:
        for number, (inputs, _, indices) in enumerate(batches_holding(dataset, wanted, 'the heatmaps'), start=1):
            for layer_maps, layer_slots, feature_map in zip(maps, slots, model.run(inputs)):
                for position, index in enumerate(np.asarray(indices).tolist()):
                    for channel, rank in layer_slots.get(index, ()):
                        layer_maps[channel][rank] = feature_map[position, :, :, channel]
            bar.update(min(number, num_batches))
    for (name, _, tracker, channels), layer_maps in zip(layers, maps):
        recomputed = [layer_maps[channel].reshape(len(layer_maps[channel]), -1).max(axis=1) for channel in channels]
        firings = [tracker.channel(channel)[0] for channel in channels]
        if len(channels) and not np.allclose(np.concatenate(recomputed), np.concatenate(firings), rtol=1e-4,
                                             atol=1e-6):
            logger.warning('the feature maps of %s computed again for the heatmaps differ from the scan\'s (the '
                           'forward pass is not deterministic?); the heatmaps may not match the firings.', name)
    return maps


def draw_receptive_fields(model, fields, out_dir):
    """Writes `recfield-<layer>.png` of every layer (`utils.pictures.drawing.write_receptive_field_example`)."""
    for index, layer in enumerate(model.layers):
        write_receptive_field_example(out_dir, layer.name, fields[index])
