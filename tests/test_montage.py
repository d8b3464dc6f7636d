"""Tests of `utils/pictures/montage.py`: columns of full images and crops, tiling with captions, layer pictures.

Expected pictures are built independently with numpy slicing; no TensorFlow is needed.
"""

import cv2
import numpy as np
import pytest

from conftest import grid_field
from activations import TopActivations
from utils.pictures.montage import crop_column, full_column, layer_pictures, tile_columns

GREEN = (0, 255, 0)


def random_images(count, height=12, width=12, channels=3, seed=0):
    shape = (count, height, width) + ((channels,) if channels else ())
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def split_cells(column, cell_height):
    """The cells of a column, borders included."""
    assert column.shape[0] % cell_height == 0
    return [column[start:start + cell_height] for start in range(0, column.shape[0], cell_height)]


def assert_black_border(cell):
    assert not cell[[0, -1]].any() and not cell[:, [0, -1]].any()


def outlined(image, box):
    """The image (3-channel copy) with the 1-pixel outline of the end-exclusive box set to green."""
    y1, x1, y2, x2 = box
    result = image.copy()
    outline = np.zeros(image.shape[:2], bool)
    outline[y1:y2, x1:x2] = True
    outline[y1 + 1:y2 - 1, x1 + 1:x2 - 1] = False
    result[outline] = GREEN
    return result


# -- full_column --------------------------------------------------------------------------------------------

def test_full_column_draws_boxes_in_bordered_cells():
    """Shape (n*(H+2), W+2, 3); each cell is the image with its box outlined in green, black border."""
    images = random_images(3, 10, 8)
    boxes = [[0, 0, 4, 3], [2, 1, 10, 8], [5, 5, 6, 6]]  # at a corner, touching the edges, a single pixel
    column = full_column(images, boxes)
    assert column.dtype == np.uint8 and column.shape == (3 * 12, 10, 3)
    for cell, image, box in zip(split_cells(column, 12), images, boxes):
        assert_black_border(cell)
        np.testing.assert_array_equal(cell[1:-1, 1:-1], outlined(image, box))
    assert not np.shares_memory(column, images)
    np.testing.assert_array_equal(images, random_images(3, 10, 8))  # the source images are not drawn on


def test_full_column_empty_box_draws_nothing():
    """The empty box [0, 0, 0, 0] (unresponsive feature pixel) leaves the image as it is."""
    images = random_images(1, 6, 7)
    column = full_column(images, [np.array([0, 0, 0, 0])])
    np.testing.assert_array_equal(column[1:-1, 1:-1], images[0])


# -- crop_column --------------------------------------------------------------------------------------------

def test_crop_column_placement():
    """Each cell holds its box's pixels: clipped at top/left -> padded above/left, otherwise below/right."""
    images = random_images(5, 12, 12, seed=1)
    boxes = [
        [0, 0, 3, 4],      # clipped at the top and the left: content at the bottom-right
        [0, 6, 3, 11],     # clipped at the top only: content at the bottom, full width
        [9, 0, 12, 2],     # clipped at the bottom and the left: content at the top-right
        [3, 4, 8, 9],      # whole box
        [7, 9, 12, 12],    # clipped at the bottom and the right: content at the top-left
    ]
    column = crop_column(images, boxes, (5, 5))
    assert column.dtype == np.uint8 and column.shape == (5 * 7, 7, 3)
    cells = split_cells(column, 7)
    for cell in cells:
        assert_black_border(cell)
    inner = [cell[1:-1, 1:-1] for cell in cells]
    expected = np.zeros((5, 5, 5, 3), np.uint8)
    expected[0, 2:, 1:] = images[0, 0:3, 0:4]
    expected[1, 2:, :] = images[1, 0:3, 6:11]
    expected[2, :3, 3:] = images[2, 9:12, 0:2]
    expected[3] = images[3, 3:8, 4:9]
    expected[4, :, :3] = images[4, 7:12, 9:12]
    for number in range(5):
        np.testing.assert_array_equal(inner[number], expected[number], err_msg=f'cell {number}')


def test_crop_column_non_square_crop_size_and_empty_box():
    """crop_size (h, w) is honoured per axis; an empty box gives an all-black cell."""
    images = random_images(2, 9, 7, seed=2)
    column = crop_column(images, [[2, 1, 6, 3], [0, 0, 0, 0]], (4, 6))
    assert column.shape == (2 * 6, 8, 3)
    cells = split_cells(column, 6)
    np.testing.assert_array_equal(cells[0][1:-1, 1:3], images[0, 2:6, 1:3])
    assert not cells[0][1:-1, 3:-1].any()
    assert not cells[1].any()


@pytest.mark.parametrize('crop_size', [(4, 5), (5, 4), (2, 2)])
def test_crop_size_smaller_than_box(crop_size):
    """A box that does not fit crop_size (either axis) raises ValueError."""
    with pytest.raises(ValueError, match='does not fit'):  # the explicit check, not a numpy broadcast error
        crop_column(random_images(1), [[1, 1, 6, 6]], crop_size)


# -- image kinds ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('shape', [(8, 9), (8, 9, 1)])
def test_grey_images_become_colour(shape):
    """Grey [h, w] and [h, w, 1] images give 3-channel cells whose channels all equal the grey values."""
    grey = np.random.default_rng(3).integers(0, 256, (2,) + shape, dtype=np.uint8)
    flat = grey.reshape(2, 8, 9)
    full = full_column(grey, [[0, 0, 0, 0], [1, 2, 4, 6]])
    assert full.shape == (2 * 10, 11, 3)
    for channel in range(3):
        np.testing.assert_array_equal(full[1:9, 1:10, channel], flat[0])
    colour = np.repeat(flat[1][..., None], 3, axis=2)
    np.testing.assert_array_equal(full[11:19, 1:10], outlined(colour, [1, 2, 4, 6]))
    crop = crop_column(grey, [[1, 1, 4, 4], [2, 3, 5, 8]], (3, 5))
    assert crop.shape == (2 * 5, 7, 3)
    for channel in range(3):
        np.testing.assert_array_equal(crop[1:4, 1:4, channel], flat[0, 1:4, 1:4])
        np.testing.assert_array_equal(crop[6:9, 1:6, channel], flat[1, 2:5, 3:8])


@pytest.mark.parametrize('dtype', [np.float32, np.float64, np.int16, np.uint16, bool])
def test_non_uint8_images_rejected(dtype):
    """Pictures are drawn from uint8 images only: anything else raises ValueError (both columns)."""
    images = np.zeros((2, 6, 6, 3), dtype)
    with pytest.raises(ValueError):
        full_column(images, [[0, 0, 2, 2]] * 2)
    with pytest.raises(ValueError):
        crop_column(images, [[0, 0, 2, 2]] * 2, (2, 2))


# -- tile_columns -----------------------------------------------------------------------------------------------

def test_tile_columns_side_by_side():
    """Width = sum of widths, height = tallest; contents kept in order; shorter columns padded black below."""
    rng = np.random.default_rng(4)
    columns = [rng.integers(1, 256, (h, w, 3), dtype=np.uint8) for h, w in ((10, 4), (16, 3), (7, 5))]
    tiled = tile_columns(columns)
    assert tiled.dtype == np.uint8 and tiled.shape == (16, 12, 3)
    left = 0
    for column in columns:
        height, width = column.shape[:2]
        np.testing.assert_array_equal(tiled[:height, left:left + width], column)
        assert not tiled[height:, left:left + width].any()
        left += width


def test_tile_columns_needs_columns():
    with pytest.raises(ValueError):
        tile_columns([])


def test_captions_add_a_strip_on_top():
    """Captions: a strip of the same height over every column, with some white text; columns unchanged below."""
    rng = np.random.default_rng(5)
    columns = [rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), rng.integers(0, 256, (14, 30, 3), dtype=np.uint8)]
    plain = tile_columns(columns)
    tiled = tile_columns(columns, ['#0\n1.5', '#1\n0.25'])
    strip = tiled.shape[0] - plain.shape[0]
    assert strip > 0 and tiled.shape[1] == plain.shape[1]
    np.testing.assert_array_equal(tiled[strip:], plain)
    for left in (0, 30):
        assert tiled[:strip, left:left + 30].any(), 'a caption strip has no visible text'
    # Two lines take a taller strip than one.
    assert tile_columns(columns, ['#0', '#1']).shape[0] < tiled.shape[0]


@pytest.mark.parametrize('captions', [
    ['#1\n0.5', '#2\n-12.3'],     # the second caption is too wide at full scale and is shrunk: shorter lines
    ['#1', '#2\n0.75'],           # different line counts
    ['#1\n2', '#123456789\n3'],   # much too wide
])
def test_captions_of_different_heights_line_up(captions):
    """Captions whose strips differ in height still tile, with the columns' contents on the same rows.

    (Regression: `tile_columns` used to fail in np.concatenate when one caption was shrunk to fit a narrow
    column, e.g. layer_pictures' '#2\\n-12.3' next to '#1\\n0.5' over 30-pixel-wide columns.)
    """
    rng = np.random.default_rng(6)
    columns = [rng.integers(1, 256, (12, 30, 3), dtype=np.uint8) for _ in captions]
    tiled = tile_columns(columns, captions)
    assert tiled.shape[1] == 60
    np.testing.assert_array_equal(tiled[-12:], np.concatenate(columns, axis=1))


def test_captions_must_match_columns():
    """A caption count different from the column count raises ValueError (it used to drop columns silently)."""
    columns = [np.zeros((5, 6, 3), np.uint8)] * 3
    with pytest.raises(ValueError):
        tile_columns(columns, ['a', 'b'])
    with pytest.raises(ValueError):
        tile_columns(columns, ['a', 'b', 'c', 'd'])


# -- layer_pictures -------------------------------------------------------------------------------------------

def grid_recfield():
    """Feature pixel (y, x) sees a 5x4 box near image pixel (2y, 2x) of a 12x12 image."""
    return grid_field(5, 6, 12, before=(2, 1))


def layer_data(num_images=40, channels=5, seed=7):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num_images, 12, 12, 3), dtype=np.uint8)
    features = rng.integers(0, 5, (num_images, 5, 6, channels)).astype(np.float32)  # with ties
    return images, features


def strongest(features, channel):
    """(image number, (y, x)) of the top image of a channel, brute force: highest maximum, earliest image,
    first position of the maximum in row-major order."""
    maps = features[..., channel]
    best = max(range(len(maps)), key=lambda i: (maps[i].max(), -i))
    y, x = [int(v) for v in np.argwhere(maps[best] == maps[best].max())[0]]
    return best, (y, x)


def test_layer_pictures_geometry_and_top_crop():
    """Widths sum per channel, heights = num_samples cells; top cells show the brute-force strongest image."""
    images, features = layer_data()
    tracker = TopActivations(4)
    for start, stop in ((0, 9), (9, 31), (31, 40)):
        tracker.update(images[start:stop], features[start:stop])
    recfield = grid_recfield()
    assert recfield.max() == (5, 4)
    channels = [3, 0, 4]
    full, crop = layer_pictures(tracker, recfield, channels, captions=False)
    assert full.dtype == np.uint8 and crop.dtype == np.uint8
    assert full.shape == (4 * (12 + 2), len(channels) * (12 + 2), 3)
    assert crop.shape == (4 * (5 + 2), len(channels) * (4 + 2), 3)

    for number, channel in enumerate(channels):
        best, (y, x) = strongest(features, channel)
        y1, x1, y2, x2 = recfield.recfield[y, x]
        top_crop = crop[1:6, number * 6 + 1:number * 6 + 5]
        height, width = y2 - y1, x2 - x1
        rows = slice(5 - height, 5) if y1 == 0 else slice(0, height)   # clipped at the top: padded above
        cols = slice(4 - width, 4) if x1 == 0 else slice(0, width)     # clipped at the left: padded left
        np.testing.assert_array_equal(top_crop[rows, cols], images[best, y1:y2, x1:x2],
                                      err_msg=f'channel {channel}')
        assert top_crop.sum() == images[best, y1:y2, x1:x2].sum(dtype=np.int64)  # the rest is black
        top_full = full[1:13, number * 14 + 1:number * 14 + 13]
        np.testing.assert_array_equal(top_full, outlined(images[best], (y1, x1, y2, x2)))


def test_layer_pictures_with_captions():
    """Captions add the same strip over both pictures and leave the columns unchanged below it."""
    images, features = layer_data(seed=8)
    tracker = TopActivations(3).update(images, features)
    full, crop = layer_pictures(tracker, grid_recfield(), [0, 1, 2], captions=False)
    full_captioned, crop_captioned = layer_pictures(tracker, grid_recfield(), [0, 1, 2])
    for plain, captioned in ((full, full_captioned), (crop, crop_captioned)):
        strip = captioned.shape[0] - plain.shape[0]
        assert strip > 0 and captioned.shape[1] == plain.shape[1]
        np.testing.assert_array_equal(captioned[strip:], plain)
        assert captioned[:strip].any()


def test_layer_pictures_with_few_images():
    """With fewer images than num_samples, the columns have one cell per image seen."""
    images, features = layer_data(num_images=2, seed=9)
    tracker = TopActivations(6).update(images, features)
    full, crop = layer_pictures(tracker, grid_recfield(), range(5), captions=False)
    assert full.shape == (2 * 14, 5 * 14, 3)
    assert crop.shape == (2 * 7, 5 * 6, 3)


def test_layer_pictures_need_images():
    _, features = layer_data(seed=10)
    tracker = TopActivations(3).update(None, features)
    with pytest.raises(ValueError, match='without images'):
        layer_pictures(tracker, grid_recfield(), [0])


def test_captions_share_one_text_size():
    """A long caption on one column shrinks the text of every column alike, so the strips line up."""
    columns = [np.zeros((20, 30, 3), np.uint8), np.zeros((20, 30, 3), np.uint8)]
    short = tile_columns(columns, ['#1', '#2'])
    mixed = tile_columns(columns, ['#1', '#2 with a much longer caption'])
    assert mixed.shape[0] < short.shape[0]  # smaller text, shorter strip, the same for both columns


def test_columns_wider_than_a_jpeg_wrap_into_rows():
    # 7 columns 10 pixels wide in pictures at most 35 wide: rows of 3, 3 and 1, the last padded with black;
    # a row is as tall as its tallest column (5, 5, then 4).
    columns = [np.full((4 + index % 2, 10, 3), index + 1, np.uint8) for index in range(7)]
    tiled = tile_columns(columns, max_width=35)
    assert tiled.shape == (5 + 5 + 4, 30, 3)
    for index in range(7):
        row, place = divmod(index, 3)
        cell = tiled[row * 5:row * 5 + columns[index].shape[0], place * 10:place * 10 + 10]
        assert (cell == index + 1).all()
    assert (tiled[10:, 10:] == 0).all()
    np.testing.assert_array_equal(tile_columns(columns[:3], max_width=35), tiled[:5])


def test_wrapped_columns_keep_their_captions():
    columns = [np.full((4, 40, 3), 200, np.uint8) for _ in range(4)]
    captions = [f'#{index}' for index in range(4)]
    tiled = tile_columns(columns, captions, max_width=80)
    np.testing.assert_array_equal(tiled, np.concatenate([tile_columns(columns[:2], captions[:2]),
                                                         tile_columns(columns[2:], captions[2:])]))
    with pytest.raises(ValueError, match='3 captions for 4 columns'):
        tile_columns(columns, captions[:3], max_width=80)


@pytest.mark.slow  # seconds: left out of the quick loop
def test_a_layer_of_a_thousand_channels_fits_a_jpeg():
    # FaceNet's Mixed_6a has 1,088 channels: one row of 130-pixel columns would be 141,440 pixels wide.
    columns = [np.zeros((5 * 130, 130, 3), np.uint8)] * 1088
    tiled = tile_columns(columns)
    assert tiled.shape[1] <= 65500 and tiled.shape[0] == 3 * 5 * 130
    assert cv2.imencode('.jpg', tiled[:, :, 0])[0]


def test_layer_pictures_refuse_channels_and_fields_of_another_layer(rng):
    images = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    top = TopActivations(2).update(images, rng.normal(size=(4, 8, 8, 3)))
    with pytest.raises(ValueError, match='channel 3 is not one of the layer\'s 3 channels'):
        layer_pictures(top, grid_field(8, 8, 16), [0, 3])
    with pytest.raises(ValueError, match='outside the receptive field\'s \\(4, 4\\) map'):
        layer_pictures(top, grid_field(4, 4, 16), [0])
