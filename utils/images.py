"""Photographs cut into overlapping square tiles: inputs for the examples that need no dataset.

Images are held as uint8 BGR arrays `[height, width, 3]` (OpenCV's order, so that kept tiles can be written
with `cv2.imwrite` as they are). Each image is resized so that its shorter side is a given length, then cut
into square tiles on a regular grid whose first and last tiles touch the image borders; every tile is used
as it is and mirrored left to right.
"""

import logging
import os

import cv2
import numpy as np

logger = logging.getLogger(__name__)

# Colour photographs that ship inside the scikit-image wheel (no download): a person, a cat, food, a
# rocket launch, galaxies, a retina, stained tissue and a motorbike.
SKIMAGE_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'hubble_deep_field', 'retina',
                  'immunohistochemistry', 'stereo_motorcycle')


def skimage_photos(names=SKIMAGE_PHOTOS):
    """The colour photographs bundled with scikit-image.

    Args:
        names: functions of `skimage.data` to call; a function returning several images (a stereo pair)
            gives its first one.

    Returns:
        list of `(name, uint8 BGR image)`.

    Raises:
        FileNotFoundError: scikit-image is not installed, or lacks a photograph.
    """
    try:
        import skimage.data
    except ImportError as error:
        raise FileNotFoundError('the default images come with scikit-image, which is not installed: run '
                                '`pip install -r requirements.txt` (or `pip install scikit-image`), or pass '
                                '--images_dir with a folder of your own images.') from error
    photos = []
    for name in names:
        try:
            image = getattr(skimage.data, name)()
        except Exception as error:  # a missing function, or a file that this scikit-image would download
            raise FileNotFoundError(f'scikit-image has no bundled image {name!r} ({error}); install a recent '
                                    'scikit-image or pass --images_dir.') from error
        if isinstance(image, tuple):
            image = image[0]
        photos.append((name, cv2.cvtColor(np.asarray(image, np.uint8)[..., :3], cv2.COLOR_RGB2BGR)))
    return photos


def read_image(path):
    """Reads an image file as uint8 BGR, or returns None when it is not a readable image.

    Only regular files are opened: a FIFO, socket or device under a folder would block or never end.
    """
    if not os.path.isfile(path):
        return None
    try:
        data = np.fromfile(path, np.uint8)  # not cv2.imread: it cannot open every non-ASCII path
    except OSError:
        return None
    # IMREAD_COLOR turns grey and 16-bit images into 8-bit BGR and drops alpha.
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


def read_images_dir(folder, shorter_side=None):
    """Every readable image under a folder, recursively, in sorted path order.

    Files that are not readable images (FIFOs and other non-regular files included, never opened) are
    skipped, and so are subfolders that cannot be listed; each kind is counted in a warning, and so are
    images smaller than `shorter_side`, which are enlarged.

    Args:
        folder: the folder to search.
        shorter_side: if given, each image is resized as soon as it is read (`resize_shorter_side`), so
            that a folder of large photographs is never held in memory at full size.

    Returns:
        `(images, skipped)`: a list of `(path, uint8 BGR image)` and a list of skipped paths (files and
        unlistable subfolders).

    Raises:
        FileNotFoundError: the folder does not exist, or holds no readable image.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'--images_dir {folder} is not a folder; give a folder of images (searched '
                                'recursively).')
    unlisted = []
    paths = sorted(os.path.join(root, name) for root, _, names in os.walk(folder, onerror=unlisted.append)
                   for name in names)
    images, skipped, enlarged = [], [], []
    for path in paths:
        image = read_image(path)
        if image is None:
            skipped.append(path)
            logger.debug('skipping %s: not a readable image', path)
            continue
        if shorter_side is not None:
            if min(image.shape[:2]) < shorter_side:
                enlarged.append(f'{path} ({image.shape[0]}x{image.shape[1]})')
            image = resize_shorter_side(image, shorter_side)
        images.append((path, image))
    if skipped:
        logger.warning('skipped %d of %d files under %s that are not readable images (first: %s)',
                       len(skipped), len(paths), folder, skipped[0])
    if unlisted:
        logger.warning('skipped %d subfolders under %s that cannot be listed (first: %s)', len(unlisted),
                       folder, unlisted[0])
        skipped += sorted(error.filename for error in unlisted)
    if enlarged:
        logger.warning('enlarged %d of %d images under %s to %d pixels on their shorter side: they come out '
                       'blurred, or flat if tiny (first: %s)', len(enlarged), len(images), folder, shorter_side,
                       enlarged[0])
    if not images:
        raise FileNotFoundError(f'no readable image under {folder} ({len(paths)} files); OpenCV must be able to '
                                'decode them (JPEG, PNG, BMP, TIFF, ...).')
    return images, skipped


def resize_shorter_side(image, length):
    """The image resized, keeping its aspect ratio, so that its shorter side is `length` pixels."""
    height, width = image.shape[:2]
    scale = length / min(height, width)
    size = (max(length, round(width * scale)), max(length, round(height * scale)))  # cv2 wants (w, h)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation)


def _starts(length, tile_size, step):
    """Tile starts along one axis: about `step` apart, the first at 0 and the last at `length - tile_size`."""
    count = -(-(length - tile_size) // step) + 1
    return np.linspace(0, length - tile_size, count).round().astype(int) if count > 1 else np.zeros(1, int)


def tile_positions(images, tile_size, step, mirror=True):
    """Where the tiles of each image are.

    Args:
        images: sequence of images `[h, w, ...]`, each at least `tile_size` on both sides.
        tile_size: side of the square tiles.
        step: approximate distance between neighbouring tiles (overlap is `tile_size - step`).
        mirror: also list every tile mirrored left to right.

    Returns:
        list of `(image_index, y, x, mirrored)`.
    """
    positions = []
    for index, image in enumerate(images):
        for y in _starts(image.shape[0], tile_size, step):
            for x in _starts(image.shape[1], tile_size, step):
                positions += [(index, int(y), int(x), mirrored) for mirrored in (False, True)[:1 + mirror]]
    return positions


def spread(items, count):
    """`count` items spread evenly over `items` (all of them when `count` is 0 or at least their number)."""
    if not count or count >= len(items):
        return list(items)
    return [items[index] for index in np.linspace(0, len(items) - 1, count).round().astype(int)]


def tile_batches(images, positions, tile_size, batch_size):
    """Yields the tiles at `positions` in batches, uint8 `[<= batch_size, tile_size, tile_size, channels]`.

    Tiles are cut when their batch is needed, so that only the resized images are held in memory.
    """
    for start in range(0, len(positions), batch_size):
        tiles = []
        for index, y, x, mirrored in positions[start:start + batch_size]:
            tile = images[index][y:y + tile_size, x:x + tile_size]
            tiles.append(tile[:, ::-1] if mirrored else tile)
        yield np.stack(tiles)


def load_photo_tiles(images_dir, tile_size, max_images=0):
    """The VGG16 example's images: photographs resized for tiling, and the tiles to use.

    The photographs are every readable image under `images_dir` (`read_images_dir`), or scikit-image's
    (`skimage_photos`) when it is None, resized so that their shorter side is 2.5 tiles; tiles are half a tile
    apart, each also mirrored (`tile_positions`): every photograph gives 4 x 4 or more.

    Args:
        images_dir: a folder of images, or None.
        tile_size: side of the square tiles.
        max_images: use this many tiles, spread over all of them (`spread`); 0 for all.

    Returns:
        `(names, resized, positions)`: a name per photograph that is the same on every machine (its path
        relative to `images_dir` with `/` separators, or scikit-image's name), the resized photographs, and
        the tiles' `(image_index, y, x, mirrored)`.

    Raises:
        FileNotFoundError: see `read_images_dir` and `skimage_photos`.
    """
    shorter_side = tile_size * 5 // 2
    if images_dir:
        photos = read_images_dir(images_dir, shorter_side)[0]
        names = [os.path.relpath(path, images_dir).replace(os.sep, '/') for path, _ in photos]
        resized = [image for _, image in photos]
    else:
        photos = skimage_photos()
        names = [name for name, _ in photos]
        resized = [resize_shorter_side(image, shorter_side) for _, image in photos]
    positions = tile_positions(resized, tile_size, tile_size // 2)
    logger.info('%d images give %d tiles (mirror images included)', len(resized), len(positions))
    return names, resized, spread(positions, max_images)


def tile_id(names, position):
    """A tile's name, `<photograph>:y=<y>,x=<x>` with `,mirrored` for a mirror image (see `load_photo_tiles`)."""
    index, y, x, mirrored = position
    return f'{names[index]}:y={y},x={x}' + (',mirrored' if mirrored else '')
