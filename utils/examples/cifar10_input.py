"""CIFAR-10, binary version: download, file checks, and the `tf.data` input pipeline.

The binary version (`cifar-10-binary.tar.gz`) unpacks to a folder `cifar-10-batches-bin` holding five
training files `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin`. Each is a sequence of 3073-byte
records: one label byte (0..9), then a 32x32 colour image as 1024 red, 1024 green and 1024 blue bytes, each
plane row by row.

The pipeline cuts 24x24 crops (a random crop, randomly mirrored, for training; the centre crop otherwise) and
standardises every crop on its own (`tf.image.per_image_standardization`: zero mean, unit variance). That
happens here, before the network's input placeholder, so that the network itself stays local and its
receptive fields can be measured (a per-image normalisation inside the graph would make every feature pixel
depend on the whole image).
"""

import logging
import os

import numpy as np

from utils.base.files import digest_files
from utils.base.quiet_tf import tf
from utils.core import pipeline
from utils.data.downloads import download, extract_tar

logger = logging.getLogger(__name__)

DATA_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz'
DATA_MD5 = 'c32a1d4ab5d03f1284b67883e8d87530'
ARCHIVE_NAME = 'cifar-10-binary.tar.gz'
BATCHES_DIR = 'cifar-10-batches-bin'
TRAIN_FILES = tuple(f'data_batch_{number}.bin' for number in range(1, 6))
TEST_FILES = ('test_batch.bin',)
DEFAULT_DATA_DIR = '/tmp/cifar10_data'

NUM_CLASSES = 10
# The names of labels 0..9 (the dataset's batches.meta.txt), in that order, which is also their sorted order.
CLASS_NAMES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')
IMAGE_SIZE = 32  # side of the stored images
CROP_SIZE = 24  # side of the crops the network sees
LABEL_BYTES = 1
RECORD_BYTES = LABEL_BYTES + IMAGE_SIZE * IMAGE_SIZE * 3


def batches_dir(data_dir):
    """The folder holding the `.bin` files.

    Args:
        data_dir: the folder given with `--data_dir`.

    Returns:
        `data_dir/cifar-10-batches-bin`, or `data_dir` itself if the files are right there.
    """
    if os.path.isfile(os.path.join(data_dir, TRAIN_FILES[0])):
        return data_dir
    return os.path.join(data_dir, BATCHES_DIR)


def find_batch_files(data_dir, train=True):
    """The batch files of the training (or test) set, checked.

    Training uses the files `data_batch_1.bin` .. `data_batch_5.bin` that are there (a warning says when some
    are missing), so a subset of the dataset works too.

    Args:
        data_dir: the folder given with `--data_dir` (see `batches_dir`).
        train: the training files, or else the test file.

    Returns:
        list of paths, in the dataset's order.

    Raises:
        FileNotFoundError: no file of the set is there; the message says how to get the data.
        ValueError: a file is truncated or corrupt (see `check_batch_file`).
    """
    folder = batches_dir(data_dir)
    names = TRAIN_FILES if train else TEST_FILES
    paths = [os.path.join(folder, name) for name in names if os.path.isfile(os.path.join(folder, name))]
    if not paths:
        raise FileNotFoundError(
            f'no CIFAR-10 data in {data_dir}: found none of {", ".join(names)} there or in {BATCHES_DIR}/. '
            f'`python utils/cifar10_train.py --data_dir {data_dir}` downloads the data before training; or '
            f'download {DATA_URL} yourself and unpack it into {data_dir}.')
    if len(paths) < len(names):
        logger.warning('using %d of the %d CIFAR-10 files %s in %s; the others are missing', len(paths),
                       len(names), ', '.join(names), folder)
    for path in paths:
        check_batch_file(path)
    return paths


def check_batch_file(path):
    """Checks that a file holds whole CIFAR-10 records with labels 0..9.

    Args:
        path: a `.bin` batch file.

    Returns:
        the number of records.

    Raises:
        ValueError: the file is empty, not a whole number of records long (truncated), or has a label
            above 9 (corrupt). The message names the file.
    """
    size = os.path.getsize(path)
    advice = ('Delete it (or its whole folder) and get the data again: '
              '`python utils/cifar10_train.py --data_dir <folder>` downloads it.')
    if size == 0 or size % RECORD_BYTES:
        raise ValueError(f'CIFAR-10 batch file {path} is {size} bytes, not a whole number of {RECORD_BYTES}-byte '
                         f'records: it is truncated or corrupt. {advice}')
    records = _records(path)
    bad = np.flatnonzero(records[:, 0] >= NUM_CLASSES)
    if bad.size:
        raise ValueError(f'CIFAR-10 batch file {path} is corrupt: record {bad[0]} has label {records[bad[0], 0]}, '
                         f'but labels are 0..{NUM_CLASSES - 1}. {advice}')
    return len(records)


def count_records(paths):
    """Returns the total number of records in batch files (checked ones: see `check_batch_file`)."""
    return sum(os.path.getsize(path) // RECORD_BYTES for path in paths)


def read_labels(paths):
    """Every record's label, in file order: the first byte of each record, read without decoding any image.

    Args:
        paths: checked batch files (`find_batch_files`).

    Returns:
        uint8 array `[records]`, values 0..9.
    """
    return np.concatenate([_records(path)[:, 0] for path in paths])


def _records(path):
    """A batch file's whole records as a read-only memory map, uint8 `[records, RECORD_BYTES]`: its labels are column
    0, read from the file only where looked at."""
    return np.memmap(path, np.uint8, 'r', shape=(os.path.getsize(path) // RECORD_BYTES, RECORD_BYTES))


def maybe_download_and_extract(data_dir, url=DATA_URL, md5=DATA_MD5):
    """Makes sure the CIFAR-10 binary files are in `data_dir`, downloading and unpacking them if not.

    The archive is streamed into `data_dir/cifar-10-binary.tar.gz` with a progress bar, renamed into place
    only once complete with the right MD5 (`utils.data.downloads.download`), and unpacked all or nothing, refusing
    members that would land outside `data_dir` (`utils.data.downloads.extract_tar`). An archive already there is
    reused if its MD5 is right. Nothing is done when `data_dir` already holds training files.

    Args:
        data_dir: folder for the archive and `cifar-10-batches-bin`; created if missing.
        url: where to download from.
        md5: expected hex MD5 of the archive, or None to skip the check.

    Returns:
        the folder holding the batch files.

    Raises:
        ConnectionError: the download failed (nothing is left behind).
        ValueError: wrong MD5, an unsafe or damaged archive (nothing is extracted), or an archive without the
            CIFAR-10 batch files.
    """
    os.makedirs(data_dir, exist_ok=True)
    folder = batches_dir(data_dir)
    if any(os.path.isfile(os.path.join(folder, name)) for name in TRAIN_FILES):
        logger.debug('CIFAR-10 is already in %s', folder)
        return folder
    archive = os.path.join(data_dir, ARCHIVE_NAME)
    if os.path.isfile(archive) and (md5 is None or digest_files([archive], 'md5') == md5.lower()):
        logger.info('reusing %s', archive)
    else:
        logger.info('downloading CIFAR-10 from %s to %s', url, archive)
        download(url, archive, md5=md5)
    extracted = extract_tar(archive, data_dir)
    folder = os.path.join(data_dir, BATCHES_DIR)
    missing = [name for name in TRAIN_FILES + TEST_FILES if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise ValueError(f'{archive} (from {url}) unpacked to {extracted} but has no {BATCHES_DIR}/{missing[0]}: '
                         'it is not the binary version of CIFAR-10.')
    logger.info('CIFAR-10 unpacked into %s', folder)
    return folder


def dataset(paths, batch_size, train, seed=None, skip=0):
    """The input pipeline.

    Args:
        paths: checked batch files (`find_batch_files`), read in order.
        batch_size: images per batch; an incomplete last batch is dropped.
        train: shuffle and repeat forever, with random crops and mirroring; otherwise one pass in file order
            with centre crops.
        seed: seed of the shuffling and the random crops (training only).
        skip: records to pass over at the start, before any decoding (one pass only: a shard that starts
            further on).

    Returns:
        a `tf.data.Dataset` of `(images, labels, display_images)` batches: float32
        `[batch_size, 24, 24, 3]` standardised crops (the network's input), int32 `[batch_size]` labels, and
        the same crops as uint8 BGR `[batch_size, 24, 24, 3]` for drawing with OpenCV.
    """
    records = tf.data.FixedLengthRecordDataset(list(paths), RECORD_BYTES)
    if train:
        records = records.shuffle(min(count_records(paths), 20000), seed=seed, reshuffle_each_iteration=True)
        records = records.repeat()
    elif skip:
        records = records.skip(skip)

    def parse(record):
        values = tf.io.decode_raw(record, tf.uint8)
        label = tf.cast(values[0], tf.int32)
        image = tf.transpose(tf.reshape(values[LABEL_BYTES:], [3, IMAGE_SIZE, IMAGE_SIZE]), [1, 2, 0])  # RGB
        if train:
            crop = tf.image.random_crop(image, [CROP_SIZE, CROP_SIZE, 3], seed=seed)
            crop = tf.image.random_flip_left_right(crop, seed=seed)
        else:
            crop = tf.image.resize_with_crop_or_pad(image, CROP_SIZE, CROP_SIZE)
        return tf.image.per_image_standardization(crop), label, tf.reverse(crop, axis=[-1])

    batches = records.map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size, drop_remainder=True)
    return batches.prefetch(tf.data.AUTOTUNE)


def scan_batches(paths, batch_size, max_batches, first_batch=0):
    """The first batches of centre crops, in file order, as `open_dataset` reads them.

    Args:
        paths: checked batch files.
        batch_size: images per batch.
        max_batches: how many batches at most (`--batches`); fewer if the data holds fewer (a warning says so).
        first_batch: start with this batch instead of the first one (a shard of the batches below
            `max_batches`); the batches are those a scan from the start would give.

    Returns:
        `(batches, num_batches)`: an iterator of numpy `(network_inputs, display_images)` batches (see
        `dataset`), to be iterated eagerly (outside any `tf.Graph.as_default()`), and its length (from
        `first_batch` on).

    Raises:
        ValueError: the data holds fewer than `batch_size` images.
    """
    num_batches = min(max_batches, count_records(paths) // batch_size)
    if not num_batches:
        raise ValueError(f'the CIFAR-10 files hold {count_records(paths)} images, fewer than one batch of '
                         f'{batch_size}; pass a smaller --batch_size.')
    if num_batches < max_batches:
        logger.warning('the CIFAR-10 files hold %d batches of %d images, fewer than --batches %d: using them all',
                       num_batches, batch_size, max_batches)
    num_batches = max(num_batches - first_batch, 0)
    batches = dataset(paths, batch_size, train=False, skip=first_batch * batch_size).take(num_batches)
    return ((images, display_images) for images, _, display_images in batches.as_numpy_iterator()), num_batches


def open_dataset(args, model=None):
    """The first `--batches` batches of `--batch_size` centre crops of the training files in `--data_dir`, as a
    `utils.core.pipeline.Dataset`; each image is named `data_batch_<n>.bin:<record>`, and its class is its label's
    name (`CLASS_NAMES`), so that channels get their class selectivity.

    Raises:
        FileNotFoundError, ValueError: see `find_batch_files` and `scan_batches`.
    """
    paths = find_batch_files(args.data_dir, train=True)
    _, num_batches = scan_batches(paths, args.batch_size, args.batches)  # checks the sizes, warns
    ids = [f'{os.path.basename(path)}:{record}' for path in paths
           for record in range(count_records([path]))][:num_batches * args.batch_size]
    classes = [CLASS_NAMES[label] for label in read_labels(paths)[:len(ids)]]

    def read(start, stop):
        batches, _ = scan_batches(paths, args.batch_size, -(-stop // args.batch_size),
                                  first_batch=start // args.batch_size)
        return pipeline.numbered(batches, start)

    return pipeline.Dataset(ids, args.batch_size, read, classes)
