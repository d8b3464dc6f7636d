"""utils.examples.lfw on a small LFW-style folder: pairs files, image lists, cropping, prewhitening, batches."""

import logging
import os

import numpy as np
import pytest

from conftest import assert_shards_read_like_the_whole
from facenet_fixtures import PAIRS_ORDER, PEOPLE
from utils.core import pipeline
from utils.data.images import read_image
from utils.examples import lfw


def test_read_pairs_both_formats(lfw_folder):
    pairs = lfw.read_pairs(lfw_folder[1])
    assert len(pairs) == 7
    assert pairs[0] == (('Ada_Lovelace', 1), ('Ada_Lovelace', 2))
    assert pairs[3] == (('Ada_Lovelace', 3), ('Kurt_Godel', 1))


@pytest.mark.parametrize('text, words', [
    ('10\t300\nAda_Lovelace\t1\n', 'line 2'),
    ('Ada_Lovelace\tone\ttwo\n', 'line 1'),
    ('Ada\t1\tBob\t2\tCid\t3\n', 'Name1 n1 Name2 n2'),
])
def test_read_pairs_bad_line(tmp_path, text, words):
    path = tmp_path / 'pairs.txt'
    path.write_text(text)
    with pytest.raises(ValueError, match=words):
        lfw.read_pairs(str(path))


def test_read_pairs_of_a_binary_file_names_it(tmp_path):
    path = tmp_path / 'pairs.txt'
    path.write_bytes(b'10\t300\nAda_Lovelace\t1\t2\n\x89PNG\r\n\x1a\n\x00\xff')  # byte 24 is 0x89
    with pytest.raises(ValueError) as raised:
        lfw.read_pairs(str(path))
    assert str(raised.value) == (f'{path} is not a text file (byte 24 is not UTF-8): expected LFW\'s pairs.txt, '
                                 'lines of "Name n1 n2" or "Name1 n1 Name2 n2".')


def test_pairs_give_unique_paths_in_first_appearance_order(lfw_folder):
    lfw_dir, pairs_path = lfw_folder
    paths = lfw.image_paths(lfw_dir, pairs_path)
    assert paths == [lfw.image_path(lfw_dir, name, number) for name, number in PAIRS_ORDER]


def test_pairs_with_missing_images_are_skipped(lfw_folder, tmp_path, caplog):
    lfw_dir, _ = lfw_folder
    pairs_path = tmp_path / 'pairs.txt'
    pairs_path.write_text('Ada_Lovelace\t1\t9\nNobody\t1\tAlan_Turing\t1\nKurt_Godel\t1\t2\n')
    with caplog.at_level(logging.WARNING, logger='utils.examples.lfw'):
        paths = lfw.image_paths(lfw_dir, str(pairs_path))
    assert paths == [lfw.image_path(lfw_dir, 'Kurt_Godel', 1), lfw.image_path(lfw_dir, 'Kurt_Godel', 2)]
    assert '2 images' in caplog.text and 'Ada_Lovelace_0009.jpg' in caplog.text


def test_without_pairs_every_image_sorted_recursively(lfw_folder):
    lfw_dir, _ = lfw_folder
    paths = lfw.image_paths(lfw_dir)
    assert paths == sorted(lfw.image_path(lfw_dir, name, number) for name in PEOPLE for number in (1, 2, 3))


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='is not a folder'):
        lfw.image_paths(str(tmp_path / 'missing'))
    (tmp_path / 'notes.txt').write_text('no images here')
    with pytest.raises(FileNotFoundError, match='no images'):
        lfw.image_paths(str(tmp_path))
    with pytest.raises(FileNotFoundError, match='no pairs file'):
        lfw.image_paths(str(tmp_path), str(tmp_path / 'pairs.txt'))


def test_prewhiten(rng):
    image = rng.integers(0, 256, (160, 160, 3)).astype(np.uint8)
    whitened = lfw.prewhiten(image)
    assert whitened.dtype == np.float32
    assert abs(whitened.mean()) < 1e-5 and abs(whitened.std() - 1) < 1e-5
    # A flat image has deviation 0: it is floored at 1 / sqrt(size), so the result is 0, not NaN.
    np.testing.assert_array_equal(lfw.prewhiten(np.full((4, 4, 3), 7, np.uint8)), 0)
    nearly_flat = np.zeros((10, 10), np.float64)
    nearly_flat[0, 0] = 0.1  # deviation 0.00995 < 1 / sqrt(100)
    np.testing.assert_allclose(lfw.prewhiten(nearly_flat), (nearly_flat - 0.001) * 10, rtol=1e-6)


def test_centre_square():
    image = np.arange(250 * 200).reshape(250, 200).astype(np.uint16)
    np.testing.assert_array_equal(lfw.centre_square(image, 160), image[45:205, 20:180])
    small = np.zeros((100, 140, 3), np.uint8)
    small[:, 70:] = 255  # the right half white: the centre column of the result is the boundary
    square = lfw.centre_square(small, 160)
    assert square.shape == (160, 160, 3)
    assert (square[:, :70] == 0).all() and (square[:, 90:] == 255).all()


def test_batches_rgb_prewhitened_and_bgr_for_display(lfw_folder):
    paths = lfw.image_paths(lfw_folder[0])
    batches = list(lfw.load_batches(paths, 160, 5))
    assert [len(display) for _, display, _ in batches] == [5, 5, 2]
    inputs, display, indices = batches[0]
    assert inputs.shape == (5, 160, 160, 3) and inputs.dtype == np.float32
    assert display.shape == (5, 160, 160, 3) and display.dtype == np.uint8
    expected_display = read_image(paths[0])[45:205, 45:205]
    np.testing.assert_array_equal(display[0], expected_display)
    np.testing.assert_allclose(inputs[0], lfw.prewhiten(expected_display[..., ::-1]), rtol=1e-6)
    assert indices.dtype == np.int64
    assert [list(indices) for _, _, indices in batches] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]


def write_broken_images(folder):
    """Two files that are not readable images, `broken.jpg` (a JPEG header only) and `empty.jpg`; their paths."""
    broken = [os.path.join(folder, 'broken.jpg'), os.path.join(folder, 'empty.jpg')]
    with open(broken[0], 'wb') as stream:
        stream.write(b'\xff\xd8 not really a JPEG')
    open(broken[1], 'wb').close()
    return broken


def test_unreadable_images_leave_their_batch_short(lfw_folder, tmp_path, caplog):
    paths = lfw.image_paths(lfw_folder[0])[:5]
    broken = write_broken_images(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger='utils.examples.lfw'):
        batches = list(lfw.load_batches(paths[:2] + broken + paths[2:], 160, 4))
    # Positions 2 and 3 are unreadable: the first batch has 2 images; nothing moves up from the second.
    assert [list(indices) for _, _, indices in batches] == [[0, 1], [4, 5, 6]]
    assert [len(display) for _, display, _ in batches] == [2, 3]
    np.testing.assert_array_equal(batches[1][1][0], read_image(paths[2])[45:205, 45:205])
    assert 'skipped 2 unreadable images' in caplog.text and 'broken.jpg' in caplog.text
    with pytest.raises(ValueError, match='none of the 2 images can be read'):
        list(lfw.load_batches(broken, 160, 4))


def test_a_batch_of_only_unreadable_images_is_left_out(lfw_folder, tmp_path):
    paths = lfw.image_paths(lfw_folder[0])[:3]
    batches = list(lfw.load_batches(paths[:2] + write_broken_images(str(tmp_path)) + paths[2:], 160, 2))
    assert [list(indices) for _, _, indices in batches] == [[0, 1], [4]]


@pytest.mark.parametrize('batch_size, num_shards', [(4, 2), (3, 3), (2, 4)])
def test_shards_read_the_batches_of_the_whole_list(lfw_folder, tmp_path, batch_size, num_shards):
    """Issue 10: with unreadable images in the list, a sharded scan must see the batches of a single one."""
    paths = lfw.image_paths(*lfw_folder)[:8]
    paths[1:1] = write_broken_images(str(tmp_path))  # 10 files, 2 unreadable, in the first batch or two
    dataset = pipeline.Dataset(paths, batch_size, lambda start, stop: lfw.load_batches(
        paths[start:stop], 64, batch_size, first_index=start))
    whole = assert_shards_read_like_the_whole(dataset, num_shards)
    assert list(np.concatenate([indices for _, _, indices in whole])) == [0] + list(range(3, 10))
