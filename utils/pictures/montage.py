"""Tiling the strongest activations of a layer into pictures.

A layer gives two pictures, one column per channel and one row per kept image:

* `-full`: the whole images, each with the receptive field of its strongest feature pixel drawn as a box;
* `-crop`: only those receptive fields, padded with black to the layer's largest box.

Every cell has a thin black border. Images are uint8, grey `[h, w]` or colour `[h, w, 3]`; colour order is
kept as given (the box colour is green, the same in RGB and BGR).
"""

import cv2
import numpy as np

BOX_COLOR = (0, 255, 0)
BORDER = 1
MAX_SIDE = 65500  # the largest width or height a JPEG file can hold
_FONT = cv2.FONT_HERSHEY_PLAIN


def _as_color(image):
    """uint8 `[h, w, 3]` copy of a grey or colour image."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f'pictures are drawn from uint8 images, got {image.dtype}; keep a uint8 copy of the '
                         'images for display.')
    if image.ndim == 2 or image.shape[-1] == 1:
        return np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    return image.copy()


def _bordered(cell):
    return cv2.copyMakeBorder(cell, BORDER, BORDER, BORDER, BORDER, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def full_column(images, boxes):
    """Stacks images vertically, each with its box drawn.

    Args:
        images: sequence of uint8 images of one size.
        boxes: sequence of `[y1, x1, y2, x2]` boxes (end-exclusive), one per image.

    Returns:
        uint8 `[n * (h + 2), w + 2, 3]` column.
    """
    cells = []
    for image, (y1, x1, y2, x2) in zip(images, boxes):
        cell = _as_color(image)
        if y2 > y1 and x2 > x1:
            cv2.rectangle(cell, (int(x1), int(y1)), (int(x2) - 1, int(y2) - 1), BOX_COLOR, 1)
        cells.append(_bordered(cell))
    return np.concatenate(cells, axis=0)


def crop_column(images, boxes, crop_size):
    """Stacks the boxes' contents vertically, each padded with black to `crop_size`.

    A box clipped by the top (left) image edge is padded above (left of) its content, so that every cell
    shows its feature pixel's receptive field in the same place.

    Args:
        images: sequence of uint8 images of one size.
        boxes: sequence of `[y1, x1, y2, x2]` boxes, one per image.
        crop_size: `(height, width)` of every cell, at least the largest box (`ReceptiveField.max()`).

    Returns:
        uint8 `[n * (crop_height + 2), crop_width + 2, 3]` column.
    """
    cells = []
    for image, box in zip(images, boxes):
        image = _as_color(image)
        cell = np.zeros((crop_size[0], crop_size[1], 3), np.uint8)
        placement = []
        for axis in (0, 1):
            start, stop = int(box[axis]), int(box[axis + 2])
            spare = crop_size[axis] - (stop - start)
            if spare < 0:
                raise ValueError(f'box {list(box)} does not fit crop size {tuple(crop_size)}.')
            clipped_low = start == 0 and stop < image.shape[axis]
            offset = spare if clipped_low else 0
            placement.append(slice(offset, offset + stop - start))
        cell[placement[0], placement[1]] = image[box[0]:box[2], box[1]:box[3]]
        cells.append(_bordered(cell))
    return np.concatenate(cells, axis=0)


def tile_columns(columns, captions=None, max_width=MAX_SIDE):
    """Puts columns side by side, optionally with a small caption above each.

    Columns that would make the picture wider than `max_width` pixels (JPEG stores at most 65,500 a side)
    wrap into further rows of columns, under the first.

    Args:
        columns: list of uint8 `[h, w, 3]` columns (heights may differ; shorter ones are padded black).
        captions: None, or one string per column; a caption may have several lines separated by newlines.
        max_width: the widest picture to make.

    Returns:
        uint8 image.
    """
    if not columns:
        raise ValueError('there are no columns to tile.')
    if captions is not None and len(captions) != len(columns):
        raise ValueError(f'{len(captions)} captions for {len(columns)} columns.')
    per_row = columns_per_row(max(column.shape[1] for column in columns), max_width)
    if len(columns) > per_row:
        rows = [tile_columns(columns[start:start + per_row],
                             None if captions is None else captions[start:start + per_row], max_width)
                for start in range(0, len(columns), per_row)]
        return np.concatenate([np.pad(row, ((0, 0), (0, rows[0].shape[1] - row.shape[1]), (0, 0))) for row in rows])
    height = max(column.shape[0] for column in columns)
    padded = [np.pad(column, ((0, height - column.shape[0]), (0, 0), (0, 0))) for column in columns]
    if captions is not None:
        # One text size for the row: the largest at which every caption fits its column.
        scale = min(_caption_scale(caption, column.shape[1]) for column, caption in zip(padded, captions))
        padded = [_captioned(column, caption, scale) for column, caption in zip(padded, captions)]
        # Captions with fewer lines get shorter strips: pad them with black on top so the columns line up.
        height = max(column.shape[0] for column in padded)
        padded = [np.pad(column, ((height - column.shape[0], 0), (0, 0), (0, 0))) for column in padded]
    return np.concatenate(padded, axis=1)


def columns_per_row(column_width, max_width=MAX_SIDE):
    """How many columns `column_width` pixels wide `tile_columns` puts in one row of a picture."""
    return max(1, max_width // column_width)


def column_caption(channel, firings):
    """The caption `layer_pictures` writes above a channel's column: its index and its strongest firing."""
    return f'#{channel}\n{firings[0]:.3g}' if len(firings) else f'#{channel}'


def _caption_scale(caption, width, largest=0.8, smallest=0.4):
    """Font scale at which every line of `caption` fits `width` pixels (never below `smallest`)."""
    widest = max(cv2.getTextSize(line, _FONT, largest, 1)[0][0] for line in caption.split('\n'))
    return largest if widest <= width - 2 else max(smallest, largest * (width - 2) / widest)


def _captioned(column, caption, scale):
    """Column with white caption text on black above it."""
    lines = caption.split('\n')
    width = column.shape[1]
    line_height = int(round(14 * scale)) + 3
    strip = np.zeros((line_height * len(lines) + 2, width, 3), np.uint8)
    for number, line in enumerate(lines):
        cv2.putText(strip, line, (1, line_height * (number + 1)), _FONT, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return np.concatenate([strip, column], axis=0)


def _filled(column, num_cells, rows):
    """A column of `num_cells` cells padded below with black to `rows` cells: a channel with fewer distinct places
    than others (`activations.distinct_top`) keeps the rows of every column in line."""
    return np.pad(column, ((0, column.shape[0] // num_cells * (rows - num_cells)), (0, 0), (0, 0)))


def layer_pictures(top_activations, recfield, channels, captions=True, images=None):
    """The `-full` and `-crop` pictures of one layer.

    Args:
        top_activations: an `activations.TopActivations` that kept its images.
        recfield: the layer's `recfield.ReceptiveField`.
        channels: channel indices, one column each, in order.
        captions: write the channel index and its strongest firing above each column.
        images: None, or a dict from channel to the images to draw instead of its kept ones (the same size,
            strongest first): the kept images with a heatmap over them.

    Returns:
        `(full_picture, crop_picture)`, uint8 images.
    """
    if top_activations.keeps_images is False:
        raise ValueError('the tracker was updated without images, so there is nothing to draw; pass the '
                         'display images to TopActivations.update.')
    channels = list(channels)
    outside = [channel for channel in channels if not 0 <= int(channel) < top_activations.num_channels]
    if outside:
        raise ValueError(f'channel {outside[0]} is not one of the layer\'s {top_activations.num_channels} channels.')
    coords = top_activations.coords
    if coords.size and (coords >= np.array(recfield.recfield.shape[:2])).any():
        raise ValueError(f'the tracker\'s feature coordinates reach {tuple(coords.reshape(-1, 2).max(axis=0))}, '
                         f'outside the receptive field\'s {recfield.recfield.shape[:2]} map: they are of '
                         'different layers.')
    full_columns, crop_columns, texts = [], [], []
    crop_size = recfield.max()
    rows = top_activations.firings.shape[1]
    for channel in channels:
        firings, coords, _, kept_images = top_activations.channel(channel)
        kept_images = kept_images if images is None else images[channel]
        boxes = [recfield.recfield[y, x] for y, x in coords]
        full_columns.append(_filled(full_column(kept_images, boxes), len(boxes), rows))
        crop_columns.append(_filled(crop_column(kept_images, boxes, crop_size), len(boxes), rows))
        texts.append(column_caption(channel, firings))
    texts = texts if captions else None
    return tile_columns(full_columns, texts), tile_columns(crop_columns, texts)
