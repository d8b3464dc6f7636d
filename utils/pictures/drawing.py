"""The files a run writes for its layers: the printed line, the pictures, the receptive-field examples.

Nothing here needs TensorFlow or the model: a layer is its name, its channel count, its
`recfield.ReceptiveField` and its `activations.TopActivations`, so merged shard states draw through the
same code as a single run. Images with places get their top lists of distinct places here (`draw_layers`).
"""

import contextlib
import logging
import os
import shlex

import cv2
import numpy as np

from utils.base.files import atomic_write, save_arrays
from utils.base.layer_names import file_stem
from utils.pictures.gallery import GalleryLayer, entry_key, never_firing_line, remove_gallery, write_gallery
from utils.pictures.montage import BORDER, BOX_COLOR, MAX_SIDE, layer_pictures
from utils.pictures.tensorboard_logs import EventLog

logger = logging.getLogger(__name__)

HEATMAP_OPACITY = 0.6  # of the colour where a channel fires at its strongest; the image shows through
ATTRIBUTION_OPACITY = 0.7  # of the colour of an entry's strongest attributions
ATTRIBUTION_PERCENTILE = 99  # of an entry's attribution sizes, and above, drawn at full opacity
# BGR: red where pixels raise the unit, blue where they lower it.
RAISING_COLOUR, LOWERING_COLOUR = (0, 0, 255), (255, 0, 0)
ERF_PICTURE_SIDE = 256  # effective receptive fields of smaller images are drawn enlarged to about this side
# What `--attribution` and `--erf` write (`write_explanations`); an earlier run's go with its gallery.
EXPLANATION_FILES = ('attributions.npz', 'erf.npz')


def describe_layer(name, field, num_channels):
    """`<name> feature map is of shape HxWxC and has receptive field ...`, one line.

    The receptive field reads `SxS (stride TxT, padding PxP)`, or, where the image clips too many box edges
    for the geometry to be derived, `up to HxW (boxes clipped by the image; size, stride and padding
    unknown)` with the largest box measured. A local field (`recfield.ReceptiveField.local`) says so: `has local
    receptive field ...; through its global pooling the whole image reaches it`.
    """
    if getattr(field, 'local', False):
        return (f'{name} feature map is of shape {_feature_shape(field, num_channels)} and has local receptive field '
                f'{_receptive_field_text(field)}; through its global pooling the whole image reaches it')
    return (f'{name} feature map is of shape {_feature_shape(field, num_channels)} and has receptive field '
            f'{_receptive_field_text(field)}')


def _feature_shape(field, num_channels):
    return 'x'.join(str(value) for value in tuple(field.feature_shape) + (num_channels,))


def _receptive_field_text(field):
    if field.size is None:
        largest = 'x'.join(str(value) for value in field.max())
        return f'up to {largest} (boxes clipped by the image; size, stride and padding unknown)'

    def pair(values):
        return f'{values[0]}x{values[1]}'
    return f'{pair(field.size)} (stride {pair(field.stride)}, padding {pair(field.padding)})'


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


def check_picture_size(num_samples, image_height):
    """Refuses, before a long run, `--num_samples` whose pictures would be taller than a JPEG can be.

    A column holds `num_samples` images, each with a border, under a caption; wide layers wrap their columns
    into rows (`utils.pictures.montage.tile_columns`), so only the height of one row can be too much.

    Raises:
        ValueError: the message gives the largest `--num_samples` that fits.
    """
    caption_room = 40
    fitting = (MAX_SIDE - caption_room) // (image_height + 2 * BORDER)
    if not fitting:  # not even one image: no --num_samples helps
        raise ValueError(f'{image_height}-pixel images are taller than the {MAX_SIDE} pixels a JPEG can hold; use '
                         'smaller images (--image_size).')
    if num_samples > fitting:
        raise ValueError(f'--num_samples {num_samples} with {image_height}-pixel images makes pictures taller than '
                         f'the {MAX_SIDE} pixels a JPEG can hold; use at most {fitting}.')


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


def heatmap_centres(field, axis):
    """Where, along `axis` (0: rows, 1: columns), a heatmap puts each feature pixel: at the centre of its
    receptive field, `-padding + i * stride + (size - 1) / 2` with the measured geometry. Without one, at the
    centres of the measured (clipped) boxes of the middle column (row), or, where those do not increase (boxes
    that all cover the whole image), spread evenly over the image."""
    count = field.feature_shape[axis]
    if field.size is not None:
        return -field.padding[axis] + np.arange(count) * field.stride[axis] + (field.size[axis] - 1) / 2
    boxes = field.recfield[:, field.feature_shape[1] // 2] if axis == 0 else field.recfield[field.feature_shape[0] // 2]
    centres = (boxes[:, axis] + boxes[:, axis + 2] - 1) / 2
    if (np.diff(centres) > 0).all():
        return centres
    length = (field.height, field.width)[axis]
    return (np.arange(count) + 0.5) * length / count - 0.5


def overlay_heatmap(image, feature_map, field, strongest):
    """An image with one channel's feature map on it, as a translucent colour map.

    Each feature pixel sits at its receptive field's centre (`heatmap_centres`); between centres the map is
    interpolated bilinearly, beyond the outer ones it keeps their values. Values are divided by `strongest` and
    clipped to 0..1, and painted in the jet colour map (blue to red) at up to `HEATMAP_OPACITY`: where the
    channel does not fire, the image is unchanged.

    Args:
        image: uint8 `[height, width]` or `[height, width, 3]` (BGR), of the field's image size.
        feature_map: the channel's `[feat_h, feat_w]` map on that image.
        field: the layer's `recfield.ReceptiveField`.
        strongest: the value painted at full strength (the channel's top firing).

    Returns:
        uint8 `[height, width, 3]`.

    Raises:
        ValueError: an image or map of another size than the field's.
    """
    image = np.asarray(image)
    if image.shape[:2] != (field.height, field.width) or np.shape(feature_map) != tuple(field.feature_shape):
        raise ValueError(f'a heatmap of a {np.shape(feature_map)} map on a {image.shape[:2]} image does not fit a '
                         f'receptive field of a {field.feature_shape} map on {field.height}x{field.width} images.')
    if image.ndim == 2 or image.shape[2] == 1:
        image = cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    rows, columns = (np.interp(np.arange(length), heatmap_centres(field, axis), np.arange(field.feature_shape[axis]))
                     for axis, length in enumerate(image.shape[:2]))
    map_y, map_x = (grid.astype(np.float32) for grid in np.meshgrid(rows, columns, indexing='ij'))
    values = cv2.remap(np.asarray(feature_map, np.float32), map_x, map_y, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    strength = np.clip(values / strongest, 0, 1) if strongest > 0 else np.zeros_like(values)
    colours = cv2.applyColorMap(np.round(strength * 255).astype(np.uint8), cv2.COLORMAP_JET)
    alpha = (HEATMAP_OPACITY * strength)[..., None]
    return np.round(image * (1 - alpha) + colours * alpha).astype(np.uint8)


def overlay_attribution(image, values, box):
    """An image with one entry's attribution over its box, as a translucent colour: red where the pixels raise the
    unit, blue where they lower it, at up to `ATTRIBUTION_OPACITY` where the attribution's size reaches the entry's
    `ATTRIBUTION_PERCENTILE`th percentile; outside the box, and where the attribution is 0, the image is unchanged.

    Args:
        image: uint8 `[height, width]` or `[height, width, 3]` (BGR).
        values: the attribution `[box height, box width]`.
        box: `[y1, x1, y2, x2]` of the image.

    Returns:
        uint8 `[height, width, 3]`.
    """
    image = np.asarray(image)
    if image.ndim == 2 or image.shape[2] == 1:
        image = cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    y1, x1, y2, x2 = (int(value) for value in box)
    values = np.asarray(values, np.float64)
    if values.shape != (y2 - y1, x2 - x1):
        raise ValueError(f'an attribution of shape {values.shape} does not fit the box {[y1, x1, y2, x2]}.')
    result = image.copy()
    # Full strength from the 99th percentile of the sizes up: a few strong pixels leave the rest visible.
    strongest = np.percentile(np.abs(values), ATTRIBUTION_PERCENTILE) if values.size else 0
    if strongest > 0:
        alpha = (ATTRIBUTION_OPACITY * np.minimum(np.abs(values) / strongest, 1))[..., None]
        colours = np.where(values[..., None] > 0, RAISING_COLOUR, LOWERING_COLOUR)
        result[y1:y2, x1:x2] = np.round(image[y1:y2, x1:x2] * (1 - alpha) + colours * alpha).astype(np.uint8)
    return result


def write_attribution_picture(out_dir, layer_name, tracker, field, channels, attributions):
    """Writes `<stem>-attr.jpg`: the `-crop` picture with every entry's attribution over it (`overlay_attribution`).

    Args:
        out_dir, layer_name, tracker, field, channels: as for `write_layer_pictures`.
        attributions: dict from `entry_key` to the entry's attribution `[box height, box width]`.

    Returns:
        the file's path.
    """
    images = {}
    for channel in channels:
        _, coords, _, kept_images = tracker.channel(channel)
        images[channel] = [overlay_attribution(image, attributions[entry_key(layer_name, channel, rank)],
                                               field.recfield[y, x])
                           for rank, (image, (y, x)) in enumerate(zip(kept_images, coords))]
    _, crop = layer_pictures(tracker, field, channels, images=images)
    path = os.path.join(out_dir, f'{file_stem(layer_name)}-attr.jpg')
    write_image(path, crop)
    return path


def draw_effective_field(erf):
    """A layer's effective receptive field as a picture: its weight in the jet colour map (dark blue where there is
    none, red where it is largest), the exact field of its feature pixel boxed in green, enlarged (nearest pixel) to
    about `ERF_PICTURE_SIDE` for small images.

    Args:
        erf: a `recfield.EffectiveReceptiveField`.

    Returns:
        uint8 BGR image.
    """
    largest = erf.erf.max()
    strength = erf.erf / largest if largest > 0 else erf.erf
    picture = cv2.applyColorMap(np.round(strength * 255).astype(np.uint8), cv2.COLORMAP_JET)
    scale = max(1, ERF_PICTURE_SIDE // max(picture.shape[:2]))
    picture = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    y1, x1, y2, x2 = erf.box
    if y2 > y1 and x2 > x1:
        cv2.rectangle(picture, (x1 * scale, y1 * scale), (x2 * scale - 1, y2 * scale - 1), BOX_COLOR, 1)
    return picture


def write_explanations(out_dir, attributions, named_erfs):
    """Writes `attributions.npz` (one float32 array per kept entry, keyed by `entry_key`) and `erf.npz` (per layer,
    its effective receptive field under the layer's name, its feature pixel under `<layer>/feature_yx`), each where
    there is something to write.

    Args:
        out_dir: an existing folder.
        attributions: dict from `entry_key` to the entry's attribution.
        named_erfs: list of `(layer name, recfield.EffectiveReceptiveField)`.
    """
    if attributions:
        save_arrays(os.path.join(out_dir, EXPLANATION_FILES[0]), attributions)
    erfs = {}
    for name, erf in named_erfs:
        erfs[name] = erf.erf
        erfs[f'{name}/feature_yx'] = np.array(erf.feature_yx, np.int64)
    if erfs:
        save_arrays(os.path.join(out_dir, EXPLANATION_FILES[1]), erfs)


def write_layer_pictures(out_dir, layer_name, tracker, field, channels, heatmaps=None):
    """Writes `<stem>-full.jpg` and `<stem>-crop.jpg` of one layer (`utils.pictures.montage.layer_pictures`).

    Args:
        out_dir: an existing folder.
        layer_name: the tensor name; the file stem is `utils.base.layer_names.file_stem(layer_name)`.
        tracker: the layer's `TopActivations`, updated with BGR display images.
        field: the layer's `ReceptiveField`.
        channels: the channels to draw, one column each (see `channels_to_draw`).
        heatmaps: None, or a dict from each channel to its feature maps `[kept images, feat_h, feat_w]` on its
            kept images, strongest first, drawn over them (`overlay_heatmap`).

    Returns:
        `(full_path, crop_path)`, or None when `channels` is empty (logged as a warning).
    """
    if not len(channels):
        logger.warning('no channel of %s fires on these images; no pictures written for it.', layer_name)
        return None
    images = None
    if heatmaps is not None:
        images = {}
        for channel in channels:
            firings, _, _, kept_images = tracker.channel(channel)
            images[channel] = [overlay_heatmap(image, feature_map, field, firings[0])
                               for image, feature_map in zip(kept_images, heatmaps[channel])]
    full, crop = layer_pictures(tracker, field, channels, images=images)
    stem = os.path.join(out_dir, file_stem(layer_name))
    paths = f'{stem}-full.jpg', f'{stem}-crop.jpg'
    for path, picture in zip(paths, (full, crop)):
        write_image(path, picture)
    return paths


def write_bottom_picture(out_dir, layer_name, tracker, field, channels):
    """Writes `<stem>-bottom.jpg`: the crops of the weakest images of `tracker.weakest` (`--bottom_k`), drawn as
    `-crop.jpg` is, one column per channel of `channels`, weakest first.

    Returns:
        the file's path.
    """
    _, crop = layer_pictures(tracker.weakest, field, channels)
    path = os.path.join(out_dir, f'{file_stem(layer_name)}-bottom.jpg')
    write_image(path, crop)
    return path


def write_receptive_field_example(out_dir, layer_name, field):
    """Writes `recfield-<stem>.png`: the centre feature pixel's box (`ReceptiveField.draw_example`).

    Returns:
        the file's path.
    """
    path = os.path.join(out_dir, f'recfield-{file_stem(layer_name)}.png')
    write_image(path, field.draw_example())
    return path


def draw_layers(layers, out_dir, num_channels, tensorboard_dir=None, image_names=None, heatmaps=None, explain=None,
                record=None):
    """Writes the `-full`/`-crop` pictures of layers whose top activations and receptive fields are known (and
    `-bottom` of trackers with `weakest` lists, `write_bottom_picture`), and the gallery of them all, `index.html` and
    `activations.json` (`utils.pictures.gallery.write_gallery`; not when there are no layers). Prints `<layer>: <d> of
    <C> channels never fire on <N> images` for every layer with such channels.

    Args:
        layers: iterable of `(name, field, tracker)`: the layer's tensor name, its `ReceptiveField` and its
            `TopActivations`.
        out_dir: an existing folder.
        num_channels: `--num_channels` (see `channels_to_draw`).
        tensorboard_dir: a TensorBoard log folder where the pictures are also written
            (`log_layer_pictures`), or None.
        image_names: the images' names by dataset index, for the gallery; None names them by index.
        heatmaps: None, or a function from the list of `(name, field, tracker, channels)` of the layers (the
            channels to draw) to their heatmaps, a `write_layer_pictures` `heatmaps` dict per layer.
        explain: None, or a function from that list to its `utils.core.attributing.Explanations`: their
            attributions are drawn as `<layer>-attr.jpg` and their effective receptive fields as `erf-<layer>.png`,
            and both written as data (`write_explanations`).
        record: None, or more entries of the top level of `activations.json` (`activations.distinct_layers`: the
            layers' top lists are of distinct places).
    """
    layers = [(name, field, tracker, channels_to_draw(tracker, num_channels, name)) for name, field, tracker in layers]
    for name, _, tracker, _ in layers:
        if len(tracker.statistics.never_firing):
            print(f'{name}: {never_firing_line(tracker)}', flush=True)
    layer_heatmaps = [None] * len(layers) if heatmaps is None else heatmaps(layers)
    attributions, erfs, explained = ({}, [None] * len(layers), None) if explain is None else explain(layers)
    record = {**(record or {}), **(explained or {})} or None
    if layers:  # an earlier gallery goes first: a run that fails while drawing leaves no page over mixed pictures
        remove_gallery(out_dir, EXPLANATION_FILES)
    written, shown = set(), []
    with EventLog(tensorboard_dir) if tensorboard_dir else contextlib.nullcontext() as log:
        for (name, field, tracker, channels), maps, erf in zip(layers, layer_heatmaps, erfs):
            paths = write_layer_pictures(out_dir, name, tracker, field, channels, maps)
            attribution_path = erf_path = bottom_path = None
            if tracker.weakest is not None and paths is not None:  # without heatmaps: those are of the top images
                bottom_path = write_bottom_picture(out_dir, name, tracker, field, channels)
            if attributions and paths is not None:
                attribution_path = write_attribution_picture(out_dir, name, tracker, field, channels, attributions)
            if erf is not None:
                erf_path = os.path.join(out_dir, f'erf-{file_stem(name)}.png')
                write_image(erf_path, draw_effective_field(erf))
            written.update(path for path in (*(paths or ()), attribution_path, erf_path, bottom_path) if path)
            shown.append(GalleryLayer(name, describe_layer(name, field, tracker.num_channels), field, tracker,
                                      channels, paths, attribution_path, erf, erf_path, bottom_path))
            if log is not None and paths is not None:
                log_layer_pictures(log, name, field, tracker, channels, paths, attribution_path, bottom_path)
    write_explanations(out_dir, attributions, [(name, erf) for (name, *_), erf in zip(layers, erfs) if erf is not None])
    if shown:
        write_gallery(out_dir, shown, image_names, record)
    warn_about_older_pictures(out_dir, written)
    if tensorboard_dir:
        logger.info('image summaries are in %s; see them with: tensorboard --logdir %s', tensorboard_dir,
                    shlex.quote(tensorboard_dir))


def warn_about_older_pictures(out_dir, written):
    """Warns, with a count, about `-full`/`-crop`/`-attr`/`-bottom` pictures and `erf-*.png` in `out_dir` that this run
    did not write: layers of an earlier run in the same folder, which could be taken for this run's."""
    older = sorted(name for name in os.listdir(out_dir)
                   if (name.endswith(('-full.jpg', '-crop.jpg', '-attr.jpg', '-bottom.jpg'))
                       or (name.startswith('erf-') and name.endswith('.png')))
                   and os.path.join(out_dir, name) not in written)
    if older:
        logger.warning('pictures of an earlier run stay in %s: %d, the first %s; use another --out_dir or delete '
                       'them.', out_dir, len(older), older[0])


def log_layer_pictures(log, name, field, tracker, channels, paths, attribution_path=None, bottom_path=None):
    """Adds a layer's `-full` and `-crop` pictures (and its `-attr` and `-bottom` pictures, where drawn) to a
    TensorBoard log, as they are on disk.

    Their tags are `<layer>/full`, `<layer>/crop` (`conv1/conv1:0/crop`), `<layer>/attr` and `<layer>/bottom`; their
    description gives the receptive field, the feature map's shape and the channels drawn.

    Args:
        log: a `utils.pictures.tensorboard_logs.EventLog`.
        name: the layer's tensor name.
        field: its `ReceptiveField`.
        tracker: its `TopActivations`.
        channels: the channels drawn, one column each.
        paths: `(full_path, crop_path)` from `write_layer_pictures`.
        attribution_path: the `-attr` picture (`write_attribution_picture`), or None.
        bottom_path: the `-bottom` picture (`write_bottom_picture`), or None.
    """
    description = (f'`{name}`: receptive field {_receptive_field_text(field)}, feature map '
                   f'{_feature_shape(field, tracker.num_channels)}.\n\n'
                   f'One column per channel ({", ".join(str(channel) for channel in channels)}), with the '
                   f'{tracker.num_samples} images it fires on the most, strongest on top. *crop*: the receptive '
                   'field of the strongest pixel; *full*: the whole image with that receptive field boxed.'
                   + ('' if bottom_path is None else ' *bottom*: the crops of the weakest images, weakest on top.'))
    for kind, path in zip(('full', 'crop', 'attr', 'bottom'), (*paths, attribution_path, bottom_path)):
        if path is not None:
            log.add_image_file(f'{name}/{kind}', path, description)
    log.flush()
