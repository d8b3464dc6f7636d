"""Small generated datasets in CIFAR-10's binary format, for the CIFAR-10 tests.

Images are made of random 2x2-pixel blocks of random colours: any two crops differ clearly, even after
JPEG compression, so a test can tell which image and which place a picture shows. Red is always bright
(128..255) and blue dark (0..127), so that swapped colour channels show.
"""

import glob
import io
import os
import tarfile

import numpy as np
import pytest

from utils import cifar10_train
from utils.examples.cifar10_input import BATCHES_DIR, IMAGE_SIZE, TEST_FILES, TRAIN_FILES

RECORDS_PER_FILE = 60
NUM_TRAIN_FILES = 2
# Ops of the CIFAR-10 network that cifar10_activations.py builds, and ops only its training graph has.
CIFAR10_OPS = {'images', 'conv1/conv1', 'pool1', 'norm1', 'conv2/conv2', 'pool2', 'softmax_linear/softmax_linear'}


def make_records(num_records, seed):
    """`(labels, images)`: uint8 `[n]` labels 0..9 and uint8 RGB images `[n, 32, 32, 3]`."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, num_records, dtype=np.uint8)
    blocks = rng.integers(0, 256, (num_records, IMAGE_SIZE // 2, IMAGE_SIZE // 2, 3), dtype=np.uint8)
    blocks[..., 0] |= 128
    blocks[..., 2] &= 127
    return labels, blocks.repeat(2, axis=1).repeat(2, axis=2)


def encode_records(labels, images):
    """The bytes of a batch file: per record the label byte, then the red, green and blue planes."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return np.concatenate([labels[:, None], planes], axis=1).tobytes()


def write_dataset(folder, records_per_file=RECORDS_PER_FILE, num_train_files=NUM_TRAIN_FILES, seed=0):
    """Writes `cifar-10-batches-bin` under `folder`: `num_train_files` training files (the first ones of the
    real dataset's names) and a test file.

    Returns:
        `(labels, images)` of the training files, concatenated in order.
    """
    batches = os.path.join(folder, BATCHES_DIR)
    os.makedirs(batches, exist_ok=True)
    all_labels, all_images = [], []
    for number, name in enumerate(TRAIN_FILES[:num_train_files] + TEST_FILES):
        labels, images = make_records(records_per_file, seed + number)
        with open(os.path.join(batches, name), 'wb') as stream:
            stream.write(encode_records(labels, images))
        if name in TRAIN_FILES:
            all_labels.append(labels)
            all_images.append(images)
    return np.concatenate(all_labels), np.concatenate(all_images)


def full_dataset_archive(tmp_dir, extra_members=()):
    """A `.tar.gz` (bytes) laid out like the real download: all six batch files, tiny.

    Args:
        tmp_dir: a scratch folder.
        extra_members: `(name, bytes)` added to the archive, e.g. a `../` member.
    """
    write_dataset(tmp_dir, records_per_file=3, num_train_files=len(TRAIN_FILES))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w:gz') as tar:
        tar.add(os.path.join(tmp_dir, BATCHES_DIR), arcname=BATCHES_DIR)
        for name, data in extra_members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope='session')
def cifar10_data(tmp_path_factory):
    """`(data_dir, labels, images)`: a generated dataset of 2 x 60 training records (and a test file)."""
    data_dir = str(tmp_path_factory.mktemp('cifar10_data'))
    labels, images = write_dataset(data_dir)
    return data_dir, labels, images


@pytest.fixture(scope='session')
def cifar10_train_dir(cifar10_data, tmp_path_factory):
    """A training folder of utils/cifar10_train.py: checkpoints of steps 1 and 2, each with its .meta file."""
    train_dir = str(tmp_path_factory.mktemp('cifar10_train'))
    assert cifar10_train.main(['--data_dir', cifar10_data[0], '--train_dir', train_dir, '--max_steps', '2',
                               '--save_steps', '1', '--batch_size', '8', '--logging_level', 'WARNING']) == 0
    assert len(glob.glob(os.path.join(train_dir, '*.meta'))) == 2  # load_model alone would refuse this folder
    return train_dir
