"""Tests of `utils/data/images.py`: image folders and lists from their headers, decoding in batches, tiling."""

import contextlib
import glob
import logging
import os
import threading
import time

import cv2
import numpy as np
import pytest

import PIL.Image

from conftest import write_mixed_images_dir, write_png_claiming, write_sparse_file
from utils.data import images


def test_skimage_photos_are_bgr_colour_images():
    import skimage.data

    photos = dict(images.skimage_photos())
    assert list(photos) == list(images.SKIMAGE_PHOTOS)
    for name, photo in photos.items():
        assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3, name
    np.testing.assert_array_equal(photos['astronaut'], skimage.data.astronaut()[..., ::-1])
    np.testing.assert_array_equal(photos['stereo_motorcycle'], skimage.data.stereo_motorcycle()[0][..., ::-1])


def test_unknown_skimage_photo_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="no bundled image 'no_such_photo'.*--images_dir"):
        images.skimage_photos(['no_such_photo'])


def test_images_dir_keeps_readable_images_and_counts_the_rest(tmp_path, caplog):
    image_paths, other_paths = write_mixed_images_dir(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger='utils.data.images'):
        files, skipped = images.list_images(str(tmp_path))
    assert [file.path for file in files] == image_paths
    assert [file.name for file in files] == ['grey.png', 'nested/tall.jpg', 'wide.png']
    assert [(file.height, file.width) for file in files] == [(50, 50), (90, 45), (40, 70)]  # from the headers
    assert skipped == other_paths
    assert [record.getMessage() for record in caplog.records] == [
        f'skipped 2 of 5 files under {tmp_path} that are not readable images (first: {other_paths[0]})']


def test_header_sizes_are_the_decoded_sizes_also_for_turned_photographs(tmp_path):
    exif = PIL.Image.Exif()
    exif[images.EXIF_ORIENTATION] = 6  # a quarter turn, as cameras held upright write it
    picture = PIL.Image.fromarray(np.zeros((20, 30, 3), np.uint8))
    for name in ('turned.jpg', 'turned.png', 'turned.webp', 'turned.tiff', 'plain.bmp', 'plain.gif'):
        picture.save(tmp_path / name, exif=exif.tobytes() if name.startswith('turned') else None)
        decoded = images.read_image(str(tmp_path / name))
        assert images.image_size(str(tmp_path / name)) == decoded.shape[:2], name
        assert decoded.shape[:2] == ((30, 20) if name.startswith('turned') else (20, 30)), name


def test_images_dir_that_is_missing_or_has_no_image(tmp_path):
    with pytest.raises(FileNotFoundError, match='is not a folder'):
        images.list_images(str(tmp_path / 'missing'))
    (tmp_path / 'notes.txt').write_text('text')
    with pytest.raises(FileNotFoundError, match=r'no readable image under .* \(1 files\)'):
        images.list_images(str(tmp_path))
    with pytest.raises(ValueError, match='--images_dir .* or --images_list'):
        images.list_images()


def test_read_image_of_an_empty_or_unreadable_file(tmp_path):
    (tmp_path / 'empty.png').write_bytes(b'')
    assert images.read_image(str(tmp_path / 'empty.png')) is None
    assert images.read_image(str(tmp_path / 'missing.png')) is None


def test_an_image_whose_header_says_30000x30000_is_skipped_unread(tmp_path, caplog, monkeypatch):
    write_mixed_images_dir(str(tmp_path))
    bomb = str(tmp_path / 'bomb.png')
    write_png_claiming(bomb, 30000, 30000)  # 900 megapixels: 2.7 GB decoded
    write_png_claiming(str(tmp_path / 'large.png'), 12000, 10000)  # 120 megapixels
    read = []
    monkeypatch.setattr(np, 'fromfile', lambda path, *args: read.append(path))  # nothing may be read whole
    with pytest.raises(images.UnusableImage, match='^30000x30000$') as refused:
        images.image_size(bomb)
    assert refused.value.kind == 'too large'
    assert images.read_image(bomb) is None
    with caplog.at_level(logging.WARNING, logger='utils.data.images'):
        files, skipped = images.list_images(str(tmp_path))
    assert len(files) == 3 and str(tmp_path / 'large.png') in skipped and bomb in skipped
    assert (f'skipped 2 images under {tmp_path} with more than 100000000 pixels (--max_image_pixels; first: {bomb}, '
            '30000x30000)') in caplog.text
    assert read == []
    # A higher limit lets such an image through, and one below the others' sizes leaves none.
    assert images.image_size(str(tmp_path / 'large.png'), max_pixels=200_000_000) == (12000, 10000)
    with pytest.raises(FileNotFoundError, match='at most 1000 pixels'):
        images.list_images(str(tmp_path), max_pixels=1000)


def test_a_large_file_that_is_not_an_image_is_never_read_whole(tmp_path, monkeypatch):
    cv2.imwrite(str(tmp_path / 'photo.png'), np.zeros((20, 20, 3), np.uint8))
    for name in ('holiday.mkv', 'holiday.jpg'):  # a name does not make an image
        write_sparse_file(str(tmp_path / name), 40 << 30)
    read = []
    monkeypatch.setattr(np, 'fromfile', lambda path, *args: read.append(path))
    files, skipped = images.list_images(str(tmp_path))
    assert [file.name for file in files] == ['photo.png'] and len(skipped) == 2
    assert images.read_image(str(tmp_path / 'holiday.jpg')) is None
    assert read == []


def test_a_huge_file_behind_a_small_images_header_is_never_read_whole(tmp_path, monkeypatch):
    path = str(tmp_path / 'disguised.png')
    write_png_claiming(path, 100, 100)  # a valid header for 10,000 pixels ...
    with open(path, 'r+b') as stream:  # ... then 40 GB (sparse: no disk space)
        stream.truncate(40 << 30)
    read = []
    monkeypatch.setattr(np, 'fromfile', lambda path, *args: read.append(path))
    with pytest.raises(images.UnusableImage, match=r'^42949672960 bytes, more than any encoding of 100x100 pixels'):
        images.image_size(path)
    assert images.read_image(path) is None and read == []


def test_images_list_takes_relative_and_absolute_paths_in_its_order(tmp_path, caplog):
    image_paths, _ = write_mixed_images_dir(str(tmp_path / 'photos'))
    elsewhere = tmp_path / 'elsewhere.png'
    cv2.imwrite(str(elsewhere), np.zeros((30, 40, 3), np.uint8))
    list_file = tmp_path / 'lists' / 'images.txt'
    list_file.parent.mkdir()
    list_file.write_text('# my selection\n../photos/wide.png\n\n' + f'{elsewhere}\n'
                         '../photos/missing.jpg\n../photos/notes.txt\n../photos/nested/tall.jpg\n')
    with caplog.at_level(logging.WARNING, logger='utils.data.images'):
        files, skipped = images.list_images(images_list=str(list_file))
    assert [file.name for file in files] == ['../photos/wide.png', str(elsewhere), '../photos/nested/tall.jpg']
    assert [os.path.realpath(file.path) for file in files] == [image_paths[2], str(elsewhere), image_paths[1]]
    assert [os.path.basename(path) for path in skipped] == ['missing.jpg', 'notes.txt']
    assert f'skipped 2 of 5 files listed in {list_file} that are not readable images' in caplog.text


def test_images_list_that_is_missing_or_not_text(tmp_path):
    with pytest.raises(FileNotFoundError, match='--images_list .* is not a file'):
        images.list_images(images_list=str(tmp_path / 'missing.txt'))
    (tmp_path / 'binary.txt').write_bytes(b'photo.png\n\xff\xfe\n')
    with pytest.raises(ValueError, match='is not UTF-8 text'):
        images.list_images(images_list=str(tmp_path / 'binary.txt'))
    with pytest.raises(ValueError, match='not both'):
        images.list_images(str(tmp_path), str(tmp_path / 'binary.txt'))


def test_decoded_batches_are_the_images_in_their_batches(tmp_path):
    image_paths, other_paths = write_mixed_images_dir(str(tmp_path))
    paths = [image_paths[0], other_paths[0], *image_paths[1:]]  # the corrupt JPEG leaves the first batch short
    batches = list(images.decoded_batches(paths, lambda image: cv2.resize(image, (8, 8)), 2, first_index=10))
    assert [indices.tolist() for _, indices in batches] == [[10], [12, 13]]
    expected = [cv2.resize(cv2.imread(path), (8, 8)) for path in image_paths]
    np.testing.assert_array_equal(np.concatenate([batch for batch, _ in batches]), expected)


def test_decoding_runs_ahead_on_other_threads_while_a_batch_is_used(tmp_path):
    paths = []
    for index in range(8):
        paths.append(str(tmp_path / f'{index}.png'))
        cv2.imwrite(paths[-1], np.full((4, 4, 3), index, np.uint8))
    prepared = []  # (path, thread) in the order images are prepared
    lock = threading.Lock()

    def prepare(image):
        with lock:
            prepared.append((int(image[0, 0, 0]), threading.current_thread().name))
        return image

    batches = images.decoded_batches(paths, prepare, batch_size=2)
    first, _ = next(batches)
    deadline = time.monotonic() + 10
    while len(prepared) < 4 and time.monotonic() < deadline:  # the next batch is decoded while this one is used
        time.sleep(0.01)
    time.sleep(0.2)
    assert len(first) == 2 and 4 <= len(prepared) <= 6  # two batches ahead at most
    assert all(thread != threading.current_thread().name for _, thread in prepared)
    assert [int(batch[0, 0, 0, 0]) for batch, _ in [(first, None), *batches]] == [0, 2, 4, 6]
    assert sorted(index for index, _ in prepared) == list(range(8))  # each image prepared once


def test_resize_shorter_side_is_the_size_computed_from_a_header():
    for height, width in [(40, 70), (90, 45), (500, 500), (1, 1000), (333, 777)]:
        resized = images.resize_shorter_side(np.zeros((height, width, 3), np.uint8), 80)
        assert resized.shape[:2] == images.resized_size(height, width, 80)


@pytest.mark.parametrize('shape, length, expected', [
    ((40, 70, 3), 80, (80, 140, 3)), ((90, 45), 80, (160, 80)), ((500, 500, 3), 320, (320, 320, 3)),
])
def test_resize_shorter_side(shape, length, expected):
    assert images.resize_shorter_side(np.zeros(shape, np.uint8), length).shape == expected


def test_tiles_cover_the_image_from_border_to_border():
    positions = images.tile_positions([(80, 140)], tile_size=32, step=16, mirror=False)
    ys = sorted({y for _, y, _, _ in positions})
    xs = sorted({x for _, _, x, _ in positions})
    assert ys == [0, 16, 32, 48]
    assert xs[0] == 0 and xs[-1] == 140 - 32 and max(np.diff(xs)) <= 16
    assert len(positions) == len(ys) * len(xs)
    assert len(images.tile_positions([(80, 140)], 32, 16)) == 2 * len(positions)


@pytest.mark.parametrize('mirror', [True, False])
@pytest.mark.parametrize('count', [1, 2, 7, 64, 99, 100, 101])
def test_a_few_tiles_spread_over_all_are_found_without_listing_all(mirror, count):
    sizes = [(80, 140), (32, 32), (120, 80), (33, 200), (64, 64)]
    every_tile = images.tile_positions(sizes, 32, 16, mirror)
    assert images.tile_positions(sizes, 32, 16, mirror, count=count) == images.spread(every_tile, count)


def test_image_as_small_as_a_tile_gives_one_tile():
    assert images.tile_positions([(32, 32)], 32, 16, mirror=False) == [(0, 0, 0, False)]


def test_tile_batches_cut_and_mirror_reading_each_photograph_once():
    photos = [np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3), None, np.ones((4, 4, 3), np.uint8)]
    reads = []

    def read_photo(index):
        reads.append(index)
        return photos[index]

    positions = [(0, 2, 3, False), (0, 2, 3, True), (1, 0, 0, False), (2, 0, 0, False), (2, 0, 0, True)]
    batches = list(images.tile_batches(read_photo, positions, tile_size=4, batch_size=2, first_index=6))
    assert [indices.tolist() for _, indices in batches] == [[6, 7], [9], [10]]  # photograph 1 cannot be read
    np.testing.assert_array_equal(batches[0][0][0], photos[0][2:6, 3:7])
    np.testing.assert_array_equal(batches[0][0][1], photos[0][2:6, 3:7][:, ::-1])
    np.testing.assert_array_equal(batches[1][0][0], photos[2])
    assert sorted(reads) == [0, 1, 2]


def test_places_map_boxes_of_tiles_and_of_their_mirror_images_into_the_photograph():
    positions = [(0, 2, 3, False), (0, 2, 3, True), (4, 10, 20, True)]
    places = images.tile_places(positions, tile_size=4)
    assert places.dtype == np.int64
    assert places.tolist() == [[0, 2, 3, 4, 4, 0], [0, 2, 3, 4, 4, 1], [4, 10, 20, 4, 4, 1]]
    # Rows 1..3 of column 0 of a tile at (2, 3) are rows 3..5 of column 3 of the photograph; of its mirror image,
    # column 0 shows the tile's last column, the photograph's column 3 + 3 = 6.
    boxes = [[1, 0, 3, 1], [1, 0, 3, 1], [0, 1, 4, 4]]
    mapped = images.photo_boxes(boxes, places, (4, 4))
    assert mapped.dtype == np.float64 and mapped.tolist() == [[3, 3, 5, 4], [3, 6, 5, 7], [10, 20, 14, 23]]
    # The pixels agree: a box's pixels in a tile are those of its mapped box in the photograph (mirrored too).
    photo = np.arange(8 * 10 * 3, dtype=np.uint8).reshape(8, 10, 3)
    [(tiles, _)] = images.tile_batches(lambda index: photo, [(0, 2, 3, False), (0, 2, 3, True)], 4, 2)
    for tile, place in zip(tiles, places):
        for box in ([0, 0, 4, 4], [1, 0, 3, 1], [2, 1, 4, 3]):
            y1, x1, y2, x2 = box
            py1, px1, py2, px2 = images.photo_boxes(box, place, (4, 4)).astype(int)
            shown = photo[py1:py2, px1:px2]
            np.testing.assert_array_equal(tile[y1:y2, x1:x2], shown[:, ::-1] if place[5] else shown)


def test_places_of_parts_shown_smaller_scale_their_boxes():
    # A 16x16 part of photograph 1 at (0, 8), mirrored, shown as an 8x8 image: columns 2..6 of the image show
    # columns 8 - 6 = 2 to 8 - 2 = 6 of the part at half its size, 4..12 of the part, 12..20 of the photograph.
    assert images.photo_boxes([2, 2, 4, 6], [1, 0, 8, 16, 16, 1], (8, 8)).tolist() == [4, 12, 8, 20]


def test_spread_keeps_the_ends_and_order():
    items = list(range(10))
    assert images.spread(items, 0) == items and images.spread(items, 12) == items
    picked = images.spread(items, 3)
    assert picked[0] == 0 and picked[-1] == 9 and len(picked) == 3 and picked == sorted(picked)


def test_bundled_photos_give_a_few_hundred_tiles_at_128():
    sizes = [images.resized_size(*photo.shape[:2], 320) for _, photo in images.skimage_photos()]
    assert 200 <= len(images.tile_positions(sizes, 128, 64)) <= 500


def test_photo_tiles_decode_only_the_photographs_of_the_tiles_read(tmp_path, decoded_paths):
    rng = np.random.default_rng(0)
    for index in range(8):
        cv2.imwrite(str(tmp_path / f'{index}.png'), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    names, positions, read_tiles = images.load_photo_tiles(str(tmp_path), tile_size=32)
    assert len(positions) == 8 * 32 and decoded_paths == []  # listed from the headers: 80x80, 4 x 4 tiles, mirrored
    tiles = list(read_tiles(64, 128, 4))  # tiles 64 to 127: the photographs 2 and 3
    assert [os.path.basename(path) for path in decoded_paths] == ['2.png', '3.png']
    assert np.concatenate([indices for _, indices in tiles]).tolist() == list(range(64, 128))
    decoded_paths.clear()
    names, positions, read_tiles = images.load_photo_tiles(str(tmp_path), tile_size=32, max_images=2)
    list(read_tiles(0, len(positions), 4))
    assert [names[index] for index, *_ in positions] == ['0.png', '7.png']
    assert [os.path.basename(path) for path in decoded_paths] == ['0.png', '7.png']


def test_photo_tiles_of_a_photograph_whose_header_lies_are_left_out(tmp_path, caplog):
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((64, 64, 3), np.uint8))
    write_png_claiming(str(tmp_path / 'b.png'), 64, 64)  # a header, then too few rows to decode
    names, positions, read_tiles = images.load_photo_tiles(str(tmp_path), tile_size=32)
    with caplog.at_level(logging.WARNING, logger='utils.data.images'):
        batches = list(read_tiles(0, len(positions), 8))
    assert np.concatenate([indices for _, indices in batches]).tolist() == list(range(32))  # a.png's tiles
    assert 'skipped the tiles of 1 photographs that cannot be decoded' in caplog.text
    assert str(tmp_path / 'b.png') in caplog.text


def list_in_thread(folder, timeout=20, **kwargs):
    """`list_images(folder)` in a thread that must end within `timeout` seconds, or the test fails.

    Returns:
        what it returned, or raises what it raised.
    """
    outcome = {}

    def read():
        try:
            outcome['result'] = images.list_images(folder, **kwargs)
        except Exception as error:  # handed to the test
            outcome['error'] = error

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        for fifo in glob.glob(os.path.join(folder, '**', '*fifo*'), recursive=True):  # let a blocked open return
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f'list_images({folder}) still running after {timeout} s: it blocks on a special file')
    if 'error' in outcome:
        raise outcome['error']
    return outcome['result']


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='FIFOs need a POSIX system')
def test_images_dir_skips_a_fifo_without_opening_it(tmp_path, caplog):
    image_paths, other_paths = write_mixed_images_dir(str(tmp_path))
    fifo = str(tmp_path / 'nested' / 'a-fifo.jpg')
    os.mkfifo(fifo)
    with caplog.at_level(logging.WARNING, logger='utils.data.images'):
        files, skipped = list_in_thread(str(tmp_path))
    assert [file.path for file in files] == image_paths
    assert skipped == sorted(other_paths + [fifo])
    assert f'skipped 3 of 6 files under {tmp_path} that are not readable images' in caplog.text
    assert images.read_image(fifo) is None


def test_images_dir_counts_subfolders_that_cannot_be_listed(tmp_path, caplog, monkeypatch):
    # The tests run as root, whom chmod 000 does not stop: the subfolder is made unlistable by an os.scandir
    # that refuses it, the call os.walk makes for every folder (it reports the error to its onerror).
    image_paths, _ = write_mixed_images_dir(str(tmp_path))
    locked = str(tmp_path / 'nested')
    real_scandir = os.scandir

    def scandir(path='.'):
        if os.fspath(path) == locked:
            raise PermissionError(13, 'Permission denied', os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, 'scandir', scandir)
    with caplog.at_level(logging.WARNING, logger='utils.data.images'):
        files, skipped = images.list_images(str(tmp_path))
    assert [file.path for file in files] == [path for path in image_paths if not path.startswith(locked)]
    assert skipped[-1] == locked
    assert (f"skipped 1 subfolders under {tmp_path} that cannot be listed (first: [Errno 13] Permission denied: "
            f"'{locked}')") in caplog.text


def test_images_smaller_than_the_resized_size_are_counted(tmp_path, caplog):
    cv2.imwrite(str(tmp_path / 'dot.png'), np.full((1, 1, 3), 200, np.uint8))
    cv2.imwrite(str(tmp_path / 'large.png'), np.zeros((100, 120, 3), np.uint8))
    cv2.imwrite(str(tmp_path / 'small.png'), np.zeros((20, 30, 3), np.uint8))
    with caplog.at_level(logging.WARNING, logger='utils.data.images'):
        images.list_images(str(tmp_path), shorter_side=64)
    assert [record.getMessage() for record in caplog.records] == [
        f'enlarged 2 of 3 images under {tmp_path} to 64 pixels on their shorter side: they come out blurred, or '
        f'flat if tiny (first: {tmp_path}/dot.png (1x1))']
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='utils.data.images'):
        images.list_images(str(tmp_path), shorter_side=20)
        images.list_images(str(tmp_path))
    [warning] = [record.getMessage() for record in caplog.records]
    assert warning.startswith(f'enlarged 1 of 3 images under {tmp_path} to 20 pixels')


def test_names_that_are_not_utf8_are_shown_escaped_and_read_by_their_path(tmp_path):
    odd = os.fsdecode(b'caf\xe9 \xff.png')  # Latin-1 bytes: no UTF-8 text
    (tmp_path / 'sub').mkdir()
    cv2.imwrite(str(tmp_path / 'sub' / 'plain.png'), np.zeros((8, 8, 3), np.uint8))
    with open(os.path.join(str(tmp_path), 'sub', odd), 'wb') as stream:  # cv2.imwrite crashes on such a name
        stream.write(cv2.imencode('.png', np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    files, _ = images.list_images(str(tmp_path))
    assert [file.name for file in files] == ['sub/caf\\xe9 \\xff.png', 'sub/plain.png']
    assert all(name.encode('utf-8') for name in [file.name for file in files])
    assert images.read_image(files[0].path).shape == (8, 8, 3)


def test_folder_classes_are_the_first_folder_of_every_name_when_all_have_one():
    assert images.folder_classes(['cat/a.jpg', 'cat/b/c.jpg', 'dog/d.jpg']) == ['cat', 'cat', 'dog']
    assert images.folder_classes(['cat/a.jpg', 'b.jpg']) is None and images.folder_classes([]) is None
