"""utils/examples/cifar10_input.py: the input pipeline against numpy, the example's dataset, file checks, and the
download against a real HTTP server on 127.0.0.1 serving generated archives."""

import argparse
import hashlib
import os

import numpy as np
import pytest

from conftest import assert_shards_read_like_the_whole, make_tar, send_bytes, send_half_then_hang_up
from cifar10_fixtures import full_dataset_archive
from utils.examples import cifar10_input
from utils.examples.cifar10_input import BATCHES_DIR, CLASS_NAMES, RECORD_BYTES, TEST_FILES, TRAIN_FILES


def standardize(crops):
    """numpy version of tf.image.per_image_standardization."""
    crops = crops.astype(np.float64)
    mean = crops.mean(axis=(1, 2, 3), keepdims=True)
    std = crops.std(axis=(1, 2, 3), keepdims=True)
    return (crops - mean) / np.maximum(std, 1 / np.sqrt(crops[0].size))


def test_eval_pipeline_gives_standardised_centre_crops_in_order(cifar10_data):
    data_dir, labels, images = cifar10_data
    paths = cifar10_input.find_batch_files(data_dir)
    assert [os.path.basename(path) for path in paths] == list(TRAIN_FILES[:2])
    batches = list(cifar10_input.dataset(paths, 32, train=False).as_numpy_iterator())
    assert len(batches) == len(images) // 32  # the incomplete last batch is dropped
    inputs, batch_labels, display = (np.concatenate(parts) for parts in zip(*batches))
    count = len(inputs)
    crops = images[:count, 4:28, 4:28]
    np.testing.assert_array_equal(batch_labels, labels[:count])
    np.testing.assert_array_equal(display, crops[..., ::-1])  # BGR for OpenCV
    assert inputs.dtype == np.float32 and inputs.shape == (count, 24, 24, 3)
    np.testing.assert_allclose(inputs, standardize(crops), atol=1e-4)


def test_scan_takes_at_most_the_batches_the_data_holds(cifar10_data, caplog):
    paths = cifar10_input.find_batch_files(cifar10_data[0])
    batches, num_batches = cifar10_input.scan_batches(paths, 32, 390)
    assert num_batches == 3 and 'fewer than --batches 390' in caplog.text
    assert [(inputs.shape, display.dtype) for inputs, display in batches] == [((32, 24, 24, 3), np.uint8)] * 3
    assert cifar10_input.scan_batches(paths, 32, 2)[1] == 2
    with pytest.raises(ValueError, match='fewer than one batch of 500'):
        cifar10_input.scan_batches(paths, 500, 390)


def test_training_pipeline_gives_random_crops_and_mirror_images(cifar10_data):
    data_dir, labels, images = cifar10_data
    paths = cifar10_input.find_batch_files(data_dir)
    batches = cifar10_input.dataset(paths, 16, train=True, seed=3).take(10)  # 160 > 120 images: it repeats
    # Every 24x24 window of every image: [image, y, x, 24, 24, 3].
    windows = np.lib.stride_tricks.sliding_window_view(images, (24, 24), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
    offsets, mirrored = set(), 0
    for inputs, batch_labels, display in batches.as_numpy_iterator():
        for network_input, label, crop in zip(inputs, batch_labels, display[..., ::-1]):
            np.testing.assert_allclose(network_input, standardize(crop[None])[0], atol=1e-4)
            same_label = windows[labels == label]
            found = [(y, x, flip) for flip in (0, 1) for _, y, x in
                     np.argwhere((same_label == (crop[:, ::-1] if flip else crop)).all(axis=(3, 4, 5)))]
            assert found, 'a training crop is not a window of an image with its label'
            offsets.add(found[0][:2])
            mirrored += found[0][2]
    assert len(offsets) > 10 and 0 < mirrored < 160


# -- open_dataset: the example's dataset --------------------------------------------------------------------

def open_dataset(data_dir, batch_size, batches):
    """`cifar10_input.open_dataset` with the scripts' flags."""
    return cifar10_input.open_dataset(argparse.Namespace(data_dir=data_dir, batch_size=batch_size, batches=batches))


def test_dataset_gives_every_image_the_class_named_by_its_label_byte(cifar10_data):
    data_dir, labels, _ = cifar10_data
    np.testing.assert_array_equal(cifar10_input.read_labels(cifar10_input.find_batch_files(data_dir)), labels)
    dataset = open_dataset(data_dir, 16, 5)  # 80 of the 120 records, across both files
    names = [CLASS_NAMES[label] for label in labels[:80]]
    assert dataset.class_names == tuple(sorted(set(names))) and len(dataset.labels) == 80
    assert [dataset.class_names[label] for label in dataset.labels] == names
    assert list(CLASS_NAMES) == sorted(CLASS_NAMES)  # label order is name order: labels index every dataset alike


def test_dataset_names_the_records_of_the_first_batches(cifar10_data):
    dataset = open_dataset(cifar10_data[0], 16, 5)
    assert len(dataset) == 80 and dataset.batch_size == 16
    assert dataset.ids[:2] == ['data_batch_1.bin:0', 'data_batch_1.bin:1']
    assert dataset.ids[59:61] == ['data_batch_1.bin:59', 'data_batch_2.bin:0']  # 60 records per file
    assert dataset.ids[-1] == 'data_batch_2.bin:19'


def test_dataset_has_at_most_the_batches_the_data_holds(cifar10_data, caplog):
    dataset = open_dataset(cifar10_data[0], 32, 390)
    assert len(dataset) == 96 and 'fewer than --batches 390' in caplog.text


@pytest.mark.parametrize('num_shards', [2, 3, 7])
def test_dataset_shards_read_the_batches_of_a_whole_read(cifar10_data, num_shards):
    _, labels, images = cifar10_data
    dataset = open_dataset(cifar10_data[0], 16, 7)
    whole = assert_shards_read_like_the_whole(dataset, num_shards)
    inputs, display, indices = (np.concatenate(parts) for parts in zip(*whole))
    np.testing.assert_array_equal(indices, np.arange(112))
    crops = images[:112, 4:28, 4:28]
    np.testing.assert_array_equal(display, crops[..., ::-1])  # BGR, as the pictures are drawn
    np.testing.assert_allclose(inputs, standardize(crops), atol=1e-4)


def test_folder_of_the_batch_files_itself_is_accepted(cifar10_data):
    data_dir = cifar10_data[0]
    assert cifar10_input.find_batch_files(os.path.join(data_dir, BATCHES_DIR)) == \
        cifar10_input.find_batch_files(data_dir)


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match='no CIFAR-10 data') as error:
        cifar10_input.find_batch_files(str(tmp_path))
    assert 'utils/cifar10_train.py --data_dir' in str(error.value) and cifar10_input.DATA_URL in str(error.value)


@pytest.mark.parametrize('damage, message', [
    (lambda data: data[:-100], 'truncated or corrupt'),
    (lambda data: b'', 'truncated or corrupt'),
    (lambda data: data[:RECORD_BYTES] + bytes([12]) + data[RECORD_BYTES + 1:], 'record 1 has label 12'),
], ids=['truncated', 'empty', 'bad-label'])
def test_damaged_batch_file_is_named(tmp_path, cifar10_data, damage, message):
    source = os.path.join(cifar10_data[0], BATCHES_DIR)
    for name in os.listdir(source):
        data = open(os.path.join(source, name), 'rb').read()
        (tmp_path / name).write_bytes(damage(data) if name == TRAIN_FILES[1] else data)
    with pytest.raises(ValueError, match=message) as error:
        cifar10_input.find_batch_files(str(tmp_path))
    assert str(tmp_path / TRAIN_FILES[1]) in str(error.value)


# -- download -------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def archive(tmp_path_factory):
    """A generated archive laid out like cifar-10-binary.tar.gz, and its MD5."""
    data = full_dataset_archive(str(tmp_path_factory.mktemp('archive')))
    return data, hashlib.md5(data).hexdigest()


def test_download_and_extract(http_server, tmp_path, archive):
    data, md5 = archive
    http_server.routes['/cifar.tar.gz'] = lambda handler: send_bytes(handler, data)
    data_dir = tmp_path / 'data'
    folder = cifar10_input.maybe_download_and_extract(str(data_dir), url=http_server.url + '/cifar.tar.gz', md5=md5)
    assert folder == str(data_dir / BATCHES_DIR)
    assert sorted(os.listdir(folder)) == sorted(TRAIN_FILES + TEST_FILES)
    assert sorted(os.listdir(data_dir)) == [BATCHES_DIR, cifar10_input.ARCHIVE_NAME]  # no temporary files
    assert len(cifar10_input.find_batch_files(str(data_dir))) == 5
    # Once the data is there, nothing is downloaded again.
    cifar10_input.maybe_download_and_extract(str(data_dir), url=http_server.url + '/cifar.tar.gz', md5=md5)
    assert len(http_server.requests) == 1


def test_archive_already_downloaded_is_reused(http_server, tmp_path, archive):
    data, md5 = archive
    (tmp_path / cifar10_input.ARCHIVE_NAME).write_bytes(data)
    cifar10_input.maybe_download_and_extract(str(tmp_path), url=http_server.url + '/none.tar.gz', md5=md5)
    assert http_server.requests == []
    assert len(cifar10_input.find_batch_files(str(tmp_path))) == 5


def test_wrong_md5_leaves_nothing(http_server, tmp_path, archive):
    http_server.routes['/cifar.tar.gz'] = lambda handler: send_bytes(handler, archive[0])
    with pytest.raises(ValueError, match='MD5'):
        cifar10_input.maybe_download_and_extract(str(tmp_path), url=http_server.url + '/cifar.tar.gz')
    assert os.listdir(tmp_path) == []


def test_archive_with_member_outside_the_folder_is_refused(http_server, tmp_path):
    data = full_dataset_archive(str(tmp_path / 'scratch'), extra_members=[('../escaped.bin', b'evil')])
    http_server.routes['/cifar.tar.gz'] = lambda handler: send_bytes(handler, data)
    data_dir = tmp_path / 'data'
    with pytest.raises(ValueError, match='unsafe member'):
        cifar10_input.maybe_download_and_extract(str(data_dir), url=http_server.url + '/cifar.tar.gz',
                                                 md5=hashlib.md5(data).hexdigest())
    assert os.listdir(data_dir) == [cifar10_input.ARCHIVE_NAME]  # nothing extracted
    assert not (tmp_path / 'escaped.bin').exists()


def test_connection_dropped_midway_leaves_nothing(http_server, tmp_path, archive):
    data, md5 = archive
    http_server.routes['/cifar.tar.gz'] = lambda handler: send_half_then_hang_up(handler, data)
    with pytest.raises(ConnectionError, match='run the command again'):
        cifar10_input.maybe_download_and_extract(str(tmp_path), url=http_server.url + '/cifar.tar.gz', md5=md5)
    assert os.listdir(tmp_path) == []


def test_archive_without_the_batch_files_is_clear(http_server, tmp_path):
    data = make_tar({'something-else/readme.txt': b'hello'})
    http_server.routes['/cifar.tar.gz'] = lambda handler: send_bytes(handler, data)
    with pytest.raises(ValueError, match='not the binary version of CIFAR-10'):
        cifar10_input.maybe_download_and_extract(str(tmp_path), url=http_server.url + '/cifar.tar.gz',
                                                 md5=hashlib.md5(data).hexdigest())
