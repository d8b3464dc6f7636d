"""Face images of the LFW dataset (Labeled Faces in the Wild) as FaceNet takes them.

LFW is a folder per person, `<lfw_dir>/<Name>/<Name>_<4-digit number>.jpg`. FaceNet's evaluation uses the
images named in `pairs.txt`: after a header line, each line is a pair of the same person
(`Name<TAB>n1<TAB>n2`) or of two people (`Name1<TAB>n1<TAB>Name2<TAB>n2`). The examples use the unique
images of those pairs, in the order they first appear, or every image under the folder when there is no
pairs file.

Each image is read as RGB, cut to a centred square of `image_size` pixels (resized first where it is
smaller), and prewhitened for the network: minus its mean, divided by its standard deviation (floored at
`1 / sqrt(number of values)`, so that a flat image does not blow up). A uint8 BGR copy is kept for the
pictures (OpenCV's order, as `utils.pictures.drawing` writes them).
"""

import logging
import os

import cv2
import numpy as np

from utils.data.images import decoded_batches, resize_shorter_side

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


def read_pairs(path):
    """The pairs of a `pairs.txt` file.

    Args:
        path: the file. A first line of numbers only (`10<TAB>300`, the number of folds and of pairs per
            fold) is a header; blank lines are ignored.

    Returns:
        list of `((name, number), (name, number))` pairs.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not text, or has a line that is neither `Name n1 n2` nor `Name1 n1 Name2 n2`.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'no pairs file at {path}; give it with --pairs, or leave --pairs and '
                                '--facenet_dir out to use every image under --lfw_dir.')
    with open(path, 'rb') as stream:
        data = stream.read()
    try:
        lines = data.decode('utf-8').splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f'{path} is not a text file (byte {error.start} is not UTF-8): expected LFW\'s pairs.txt, '
                         'lines of "Name n1 n2" or "Name1 n1 Name2 n2".') from error
    pairs = []
    for line_number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or (line_number == 1 and all(field.isdigit() for field in fields)):
            continue
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            pairs.append(((fields[0], int(fields[1])), (fields[0], int(fields[2]))))
        elif len(fields) == 4 and fields[1].isdigit() and fields[3].isdigit():
            pairs.append(((fields[0], int(fields[1])), (fields[2], int(fields[3]))))
        else:
            raise ValueError(f'{path}, line {line_number}: expected "Name n1 n2" or "Name1 n1 Name2 n2", '
                             f'got {line.strip()!r}.')
    return pairs


def image_path(lfw_dir, name, number):
    """`<lfw_dir>/<name>/<name>_<number as 4 digits>.jpg`, or the `.png` of that name if only it exists."""
    stem = os.path.join(lfw_dir, name, f'{name}_{number:04d}')
    return stem + '.png' if not os.path.exists(stem + '.jpg') and os.path.exists(stem + '.png') else stem + '.jpg'


def image_paths(lfw_dir, pairs_path=None):
    """The images to use, without repeats.

    Args:
        lfw_dir: the LFW folder.
        pairs_path: a `pairs.txt`: use the images of its pairs, in the order they first appear, skipping
            pairs with a missing image (logged as a warning). None: every image file under `lfw_dir`,
            recursively, in sorted path order.

    Returns:
        list of file paths.

    Raises:
        FileNotFoundError: `lfw_dir` is not a folder, or it has none of the images.
        ValueError: see `read_pairs`.
    """
    if not os.path.isdir(lfw_dir):
        raise FileNotFoundError(f'--lfw_dir {lfw_dir} is not a folder; download and unpack LFW (see the README).')
    if pairs_path is None:
        paths = sorted(os.path.join(root, name) for root, _, names in os.walk(lfw_dir)
                       for name in names if name.lower().endswith(IMAGE_EXTENSIONS))
        source = f'under {lfw_dir}'
    else:
        pairs = read_pairs(pairs_path)
        paths, missing = [], []
        for pair in pairs:
            pair_paths = [image_path(lfw_dir, name, number) for name, number in pair]
            absent = [path for path in pair_paths if not os.path.isfile(path)]
            missing.extend(absent)
            if not absent:
                paths.extend(pair_paths)
        paths = list(dict.fromkeys(paths))
        if missing:
            logger.warning('skipped pairs with missing images: %d images of %s are not under %s (first: %s)',
                           len(set(missing)), pairs_path, lfw_dir, missing[0])
        source = f'for the pairs of {pairs_path} under {lfw_dir}'
    if not paths:
        raise FileNotFoundError(f'no images {source}; is --lfw_dir the folder that holds one folder per person?')
    logger.info('%d images %s', len(paths), source)
    return paths


def prewhiten(image):
    """An image minus its mean, divided by its standard deviation floored at `1 / sqrt(image.size)`.

    Args:
        image: array of any shape.

    Returns:
        float32 array of the same shape.
    """
    image = np.asarray(image, np.float64)
    deviation = max(image.std(), 1.0 / np.sqrt(image.size))
    return ((image - image.mean()) / deviation).astype(np.float32)


def centre_square(image, size):
    """The centred `size x size` part of an image, resized first (keeping its aspect) if a side is smaller."""
    if min(image.shape[:2]) < size:
        image = resize_shorter_side(image, size)
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return image[top:top + size, left:left + size]


def load_batches(paths, image_size, batch_size, first_index=0):
    """Reads faces in batches of `batch_size` files, decoded ahead on worker threads, for
    `utils.core.pipeline.Dataset` (`utils.data.images.decoded_batches`: an unreadable image leaves its batch one short).

    Args:
        paths: image files.
        image_size: side of the square network input.
        batch_size: files per batch.
        first_index: the dataset index of `paths[0]` (the first image of a shard in the whole list).

    Yields:
        `(network_inputs, display_images, indices)`: prewhitened float32 RGB `[n, size, size, 3]`, the same
        images as uint8 BGR, and int64 `first_index` plus their positions in `paths`.

    Raises:
        ValueError: not one image could be read.
    """
    for squares, indices in decoded_batches(paths, lambda image: centre_square(image, image_size), batch_size,
                                            first_index):
        inputs = np.stack([prewhiten(cv2.cvtColor(square, cv2.COLOR_BGR2RGB)) for square in squares])
        yield inputs, squares, indices
