"""The work every example script shares: top activations of several layers, their receptive fields, files.

A script builds its graph and session, finds its layers (`utils.cli.prepare_layers`) and calls

    trackers = track_top_activations(session, images_ph, layers, batches, num_samples)
    draw_top_activations(session, images_ph, layers, trackers, imshape, value_range, out_dir, num_channels)

(a `*_activations.py` script), or only `draw_receptive_fields` (a `*_recfield.py` script). Both print one
line per layer (`describe_layer`) as soon as its receptive field is measured. With `tensorboard_dir`,
`draw_top_activations` also writes the pictures as TensorBoard image summaries (`log_layer_pictures`). The
functions they are made of are public too, for scripts that need another order.

`batches` yields `(network_inputs, display_images)`: what is fed to the placeholder, and the same images as
uint8 BGR for the pictures.
"""

import contextlib
import logging
import os
import shlex

import cv2
import numpy as np
import progressbar

from activations import TopActivations
from recfield import ReceptiveField
from utils.files import atomic_write
from utils.layers import file_stem
from utils.montage import layer_pictures
from utils.tensorboard_logs import EventLog

logger = logging.getLogger(__name__)


def channels_to_draw(tracker, requested, layer_name):
    """The channels of a layer to draw: the first `requested` ones that fire.

    A channel fires when its strongest firing over all images is above 0. Channels that never fire (dead
    ReLUs) have no strongest images to show, so they are left out (logged at INFO).

    Args:
        tracker: the layer's `TopActivations`, after the scan.
        requested: `--num_channels`; 0 means every channel that fires.
        layer_name: for the log.

    Returns:
        int array of channel indices, ascending. A request for more channels than fire gets those that
        fire, with a warning.
    """
    firing = np.flatnonzero(tracker.firings[:, 0] > 0) if tracker.num_seen else np.zeros(0, np.int64)
    silent = tracker.num_channels - len(firing)
    if silent:
        logger.info('%d of the %d channels of %s never fire on these images; they are not drawn.', silent,
                    tracker.num_channels, layer_name)
    if requested > len(firing):
        logger.warning('--num_channels %d is more than the %d channels of %s that fire; drawing all of them.',
                       requested, len(firing), layer_name)
    return firing[:requested] if requested else firing


def track_top_activations(session, images_ph, layers, batches, num_samples, num_batches=None, feed_dict=None,
                          first_index=0):
    """Runs batches through the network and keeps each channel's strongest images, for every layer.

    Every batch is one `session.run` fetching all layers.

    Args:
        session: a `tf.compat.v1.Session` holding the layers.
        images_ph: the input placeholder.
        layers: 4-D tensors `[batch, height, width, channels]`.
        batches: iterable of `(network_inputs, display_images)`, the latter uint8 `[batch, h, w(, 3)]`, or
            of `(network_inputs, display_images, indices)` with the images' indices in the whole dataset (a
            shard of it, see `utils.shards`); without them images are numbered from `first_index` on.
        num_samples: images kept per channel.
        num_batches: length of `batches`, for the progress bar (None: unknown).
        feed_dict: more values to feed with every batch (e.g. a training-phase flag set to False).
        first_index: the index of the first image (`activations.TopActivations`).

    Returns:
        list of `activations.TopActivations`, one per layer, tracking all its channels.
    """
    trackers = [TopActivations(num_samples, first_index) for _ in layers]
    max_value = progressbar.UnknownLength if num_batches is None else num_batches
    with progressbar.ProgressBar(max_value=max_value, prefix='top activations (batches) ') as bar:
        for number, (inputs, display_images, *indices) in enumerate(batches, start=1):
            feature_maps = session.run(list(layers), feed_dict={images_ph: inputs, **(feed_dict or {})})
            for tracker, feature_map in zip(trackers, feature_maps):
                tracker.update(display_images, feature_map, *indices)
            bar.update(number)
    return trackers


def measure_receptive_field(session, images_ph, layer, imshape, value_range, feed_dict=None):
    """A layer's receptive field, measured by probing (`recfield.ReceptiveField`), with a progress bar.

    Args:
        session, images_ph, feed_dict: as for `track_top_activations`.
        layer: a 4-D tensor.
        imshape: `[batch_size, height, width, channels]` of the probe batches.
        value_range: `(low, high)` of the values the network takes as input (after preprocessing).

    Returns:
        a `recfield.ReceptiveField`.
    """
    # The number of probes depends on the receptive field, unknown in advance: count probe images.
    with progressbar.ProgressBar(max_value=progressbar.UnknownLength,
                                 prefix=f'receptive field of {layer.name} (probe images) ') as bar:
        def forward(batch):
            feature_map = session.run([layer], feed_dict={images_ph: batch, **(feed_dict or {})})
            bar.update(bar.value + len(batch))
            return feature_map
        return ReceptiveField(imshape, forward, value_range=value_range)


def describe_layer(layer, field):
    """`<layer> feature map is of shape HxWxC and has receptive field ...`, one line.

    The receptive field reads `SxS (stride TxT, padding PxP)`, or, where the image clips too many box edges
    for the geometry to be derived, `up to HxW (boxes clipped by the image; size, stride and padding
    unknown)` with the largest box measured.
    """
    return (f'{layer.name} feature map is of shape {_feature_shape(layer, field)} and has receptive field '
            f'{_receptive_field_text(field)}')


def _feature_shape(layer, field):
    return 'x'.join(str(value) for value in tuple(field.feature_shape) + (layer.shape[-1],))


def _receptive_field_text(field):
    if field.size is None:
        largest = 'x'.join(str(value) for value in field.max())
        return f'up to {largest} (boxes clipped by the image; size, stride and padding unknown)'

    def pair(values):
        return f'{values[0]}x{values[1]}'
    return f'{pair(field.size)} (stride {pair(field.stride)}, padding {pair(field.padding)})'


def write_image(path, image):
    """Writes a uint8 BGR (or grey) image atomically; the format follows the extension (`.jpg`, `.png`)."""
    try:
        ok, encoded = cv2.imencode(os.path.splitext(path)[1], image)
    except cv2.error:  # no encoder for that extension
        ok = False
    if not ok:
        raise ValueError(f'OpenCV cannot encode an image as {path}; use a .jpg or .png name.')
    with atomic_write(path) as stream:
        stream.write(encoded.tobytes())


def write_layer_pictures(out_dir, layer_name, tracker, field, channels):
    """Writes `<stem>-full.jpg` and `<stem>-crop.jpg` of one layer (`utils.montage.layer_pictures`).

    Args:
        out_dir: an existing folder.
        layer_name: the tensor name; the file stem is `utils.layers.file_stem(layer_name)`.
        tracker: the layer's `TopActivations`, updated with BGR display images.
        field: the layer's `ReceptiveField`.
        channels: the channels to draw, one column each (see `channels_to_draw`).

    Returns:
        `(full_path, crop_path)`, or None when `channels` is empty (logged as a warning).
    """
    if not len(channels):
        logger.warning('no channel of %s fires on these images; no pictures written for it.', layer_name)
        return None
    full, crop = layer_pictures(tracker, field, channels)
    stem = os.path.join(out_dir, file_stem(layer_name))
    paths = f'{stem}-full.jpg', f'{stem}-crop.jpg'
    for path, picture in zip(paths, (full, crop)):
        write_image(path, picture)
    return paths


def write_receptive_field_example(out_dir, layer_name, field):
    """Writes `recfield-<stem>.png`: the centre feature pixel's box (`ReceptiveField.draw_example`).

    Returns:
        the file's path.
    """
    path = os.path.join(out_dir, f'recfield-{file_stem(layer_name)}.png')
    write_image(path, field.draw_example())
    return path


def _measure_and_describe(session, images_ph, layers, imshape, value_range, feed_dict):
    """Yields `(layer, field)` for every layer, after printing its `describe_layer` line."""
    for layer in layers:
        field = measure_receptive_field(session, images_ph, layer, imshape, value_range, feed_dict)
        print(describe_layer(layer, field), flush=True)
        yield layer, field


def draw_top_activations(session, images_ph, layers, trackers, imshape, value_range, out_dir, num_channels,
                         feed_dict=None, tensorboard_dir=None):
    """For every layer: measures its receptive field, prints its line, and writes its `-full`/`-crop` pictures.

    Args:
        session, images_ph, layers, imshape, value_range, feed_dict: as for `measure_receptive_field`.
        trackers: the layers' `TopActivations` from `track_top_activations`, in the same order.
        out_dir: an existing folder.
        num_channels: `--num_channels` (see `channels_to_draw`).
        tensorboard_dir: a TensorBoard log folder where the pictures are also written (`log_layer_pictures`),
            or None.
    """
    fields = _measure_and_describe(session, images_ph, layers, imshape, value_range, feed_dict)
    draw_layers(((layer, field, tracker) for (layer, field), tracker in zip(fields, trackers)), out_dir,
                num_channels, tensorboard_dir)


def draw_layers(layers, out_dir, num_channels, tensorboard_dir=None):
    """Writes the `-full`/`-crop` pictures of layers whose top activations and receptive fields are known.

    Args:
        layers: iterable of `(layer, field, tracker)`: the layer tensor (or what has its `name` and `shape`),
            its `ReceptiveField` (or what has its `recfield`, `max()`, `feature_shape`, `size`, `stride` and
            `padding`, such as a stored one, `utils.shards.StoredField`), and its `TopActivations`.
        out_dir, num_channels, tensorboard_dir: as for `draw_top_activations`.
    """
    with EventLog(tensorboard_dir) if tensorboard_dir else contextlib.nullcontext() as log:
        for layer, field, tracker in layers:
            channels = channels_to_draw(tracker, num_channels, layer.name)
            paths = write_layer_pictures(out_dir, layer.name, tracker, field, channels)
            if log is not None and paths is not None:
                log_layer_pictures(log, layer, field, channels, tracker.num_samples, paths)
    if tensorboard_dir:
        logger.info('image summaries are in %s; see them with: tensorboard --logdir %s', tensorboard_dir,
                    shlex.quote(tensorboard_dir))


def log_layer_pictures(log, layer, field, channels, num_samples, paths):
    """Adds a layer's `-full` and `-crop` pictures to a TensorBoard log, as they are on disk.

    Their tags are `<layer>/full` and `<layer>/crop` (`conv1/conv1:0/crop`); their description gives the
    receptive field, the feature map's shape and the channels drawn.

    Args:
        log: a `utils.tensorboard_logs.EventLog`.
        layer: the layer tensor.
        field: its `ReceptiveField`.
        channels: the channels drawn, one column each.
        num_samples: images per channel (rows).
        paths: `(full_path, crop_path)` from `write_layer_pictures`.
    """
    description = (f'`{layer.name}`: receptive field {_receptive_field_text(field)}, feature map '
                   f'{_feature_shape(layer, field)}.\n\n'
                   f'One column per channel ({", ".join(str(channel) for channel in channels)}), with the '
                   f'{num_samples} images it fires on the most, strongest on top. *crop*: the receptive field of '
                   'the strongest pixel; *full*: the whole image with that receptive field boxed.')
    for kind, path in zip(('full', 'crop'), paths):
        log.add_image_file(f'{layer.name}/{kind}', path, description)
    log.flush()


def draw_receptive_fields(session, images_ph, layers, imshape, value_range, out_dir, feed_dict=None):
    """For every layer: measures its receptive field, prints its line, and writes `recfield-<stem>.png`.

    Args:
        session, images_ph, layers, imshape, value_range, feed_dict: as for `measure_receptive_field`.
        out_dir: an existing folder.
    """
    for layer, field in _measure_and_describe(session, images_ph, layers, imshape, value_range, feed_dict):
        write_receptive_field_example(out_dir, layer.name, field)
