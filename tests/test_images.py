"""Tests of `utils/images.py`: reading photographs and image folders, resizing, tiling."""

import contextlib
import glob
import logging
import os
import threading

import cv2
import numpy as np
import pytest

from conftest import write_mixed_images_dir
from utils import images


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
    with caplog.at_level(logging.WARNING, logger='utils.images'):
        found, skipped = images.read_images_dir(str(tmp_path))
    assert [path for path, _ in found] == image_paths
    assert skipped == other_paths
    assert all(image.ndim == 3 and image.shape[2] == 3 for _, image in found)  # grey turned into BGR
    assert [record.getMessage() for record in caplog.records] == [
        f'skipped 2 of 5 files under {tmp_path} that are not readable images (first: {other_paths[0]})']


def test_images_dir_resizes_while_reading(tmp_path):
    write_mixed_images_dir(str(tmp_path))
    found, _ = images.read_images_dir(str(tmp_path), shorter_side=80)
    assert [image.shape for _, image in found] == [(80, 80, 3), (160, 80, 3), (80, 140, 3)]


def test_images_dir_that_is_missing_or_has_no_image(tmp_path):
    with pytest.raises(FileNotFoundError, match='is not a folder'):
        images.read_images_dir(str(tmp_path / 'missing'))
    (tmp_path / 'notes.txt').write_text('text')
    with pytest.raises(FileNotFoundError, match=r'no readable image under .* \(1 files\)'):
        images.read_images_dir(str(tmp_path))


def test_read_image_of_an_empty_or_unreadable_file(tmp_path):
    (tmp_path / 'empty.png').write_bytes(b'')
    assert images.read_image(str(tmp_path / 'empty.png')) is None
    assert images.read_image(str(tmp_path / 'missing.png')) is None


@pytest.mark.parametrize('shape, length, expected', [
    ((40, 70, 3), 80, (80, 140, 3)), ((90, 45), 80, (160, 80)), ((500, 500, 3), 320, (320, 320, 3)),
])
def test_resize_shorter_side(shape, length, expected):
    assert images.resize_shorter_side(np.zeros(shape, np.uint8), length).shape == expected


def test_tiles_cover_the_image_from_border_to_border():
    image = np.arange(80 * 140, dtype=np.int64).reshape(80, 140)
    positions = images.tile_positions([image], tile_size=32, step=16, mirror=False)
    ys = sorted({y for _, y, _, _ in positions})
    xs = sorted({x for _, _, x, _ in positions})
    assert ys == [0, 16, 32, 48]
    assert xs[0] == 0 and xs[-1] == 140 - 32 and max(np.diff(xs)) <= 16
    assert len(positions) == len(ys) * len(xs)
    assert len(images.tile_positions([image], 32, 16)) == 2 * len(positions)


def test_image_as_small_as_a_tile_gives_one_tile():
    assert images.tile_positions([np.zeros((32, 32))], 32, 16, mirror=False) == [(0, 0, 0, False)]


def test_tile_batches_cut_and_mirror():
    image_list = [np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3), np.ones((4, 4, 3), np.uint8)]
    positions = [(0, 2, 3, False), (0, 2, 3, True), (1, 0, 0, False)]
    batches = list(images.tile_batches(image_list, positions, tile_size=4, batch_size=2))
    assert [len(batch) for batch in batches] == [2, 1]
    np.testing.assert_array_equal(batches[0][0], image_list[0][2:6, 3:7])
    np.testing.assert_array_equal(batches[0][1], image_list[0][2:6, 3:7][:, ::-1])
    np.testing.assert_array_equal(batches[1][0], image_list[1])


def test_spread_keeps_the_ends_and_order():
    items = list(range(10))
    assert images.spread(items, 0) == items and images.spread(items, 12) == items
    picked = images.spread(items, 3)
    assert picked[0] == 0 and picked[-1] == 9 and len(picked) == 3 and picked == sorted(picked)


def test_bundled_photos_give_a_few_hundred_tiles_at_128():
    resized = [images.resize_shorter_side(photo, 320) for _, photo in images.skimage_photos()]
    assert 200 <= len(images.tile_positions(resized, 128, 64)) <= 500


def read_in_thread(folder, timeout=20, **kwargs):
    """`read_images_dir(folder)` in a thread that must end within `timeout` seconds, or the test fails.

    Returns:
        what it returned, or raises what it raised.
    """
    outcome = {}

    def read():
        try:
            outcome['result'] = images.read_images_dir(folder, **kwargs)
        except Exception as error:  # handed to the test
            outcome['error'] = error

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        for fifo in glob.glob(os.path.join(folder, '**', '*fifo*'), recursive=True):  # let a blocked open return
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f'read_images_dir({folder}) still running after {timeout} s: it blocks on a special file')
    if 'error' in outcome:
        raise outcome['error']
    return outcome['result']


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='FIFOs need a POSIX system')
def test_images_dir_skips_a_fifo_without_opening_it(tmp_path, caplog):
    image_paths, other_paths = write_mixed_images_dir(str(tmp_path))
    fifo = str(tmp_path / 'nested' / 'a-fifo.jpg')
    os.mkfifo(fifo)
    with caplog.at_level(logging.WARNING, logger='utils.images'):
        found, skipped = read_in_thread(str(tmp_path))
    assert [path for path, _ in found] == image_paths
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
    with caplog.at_level(logging.WARNING, logger='utils.images'):
        found, skipped = images.read_images_dir(str(tmp_path))
    assert [path for path, _ in found] == [path for path in image_paths if not path.startswith(locked)]
    assert skipped[-1] == locked
    assert (f"skipped 1 subfolders under {tmp_path} that cannot be listed (first: [Errno 13] Permission denied: "
            f"'{locked}')") in caplog.text


def test_images_smaller_than_the_resized_size_are_counted(tmp_path, caplog):
    cv2.imwrite(str(tmp_path / 'dot.png'), np.full((1, 1, 3), 200, np.uint8))
    cv2.imwrite(str(tmp_path / 'large.png'), np.zeros((100, 120, 3), np.uint8))
    cv2.imwrite(str(tmp_path / 'small.png'), np.zeros((20, 30, 3), np.uint8))
    with caplog.at_level(logging.WARNING, logger='utils.images'):
        found, _ = images.read_images_dir(str(tmp_path), shorter_side=64)
    assert [image.shape[:2] for _, image in found] == [(64, 64), (64, 77), (64, 96)]
    assert [record.getMessage() for record in caplog.records] == [
        f'enlarged 2 of 3 images under {tmp_path} to 64 pixels on their shorter side: they come out blurred, or '
        f'flat if tiny (first: {tmp_path}/dot.png (1x1))']
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='utils.images'):
        images.read_images_dir(str(tmp_path), shorter_side=20)
        images.read_images_dir(str(tmp_path))
    [warning] = [record.getMessage() for record in caplog.records]
    assert warning.startswith(f'enlarged 1 of 3 images under {tmp_path} to 20 pixels')
