"""Image files as datasets: listed from their headers, decoded batch by batch on worker threads, tiled.

Images are held as uint8 BGR arrays `[height, width, 3]` (OpenCV's order, so that kept tiles can be written
with `cv2.imwrite` as they are). A folder or list of files is listed up front with each image's size read
from its header (`list_images`); an image is decoded only when its batch is read (`decoded_batches`), a few
batches ahead of the network. The VGG16 example resizes each photograph so that its shorter side is a given
length and cuts it into square tiles on a regular grid whose first and last tiles touch the image borders;
every tile is used as it is and mirrored left to right (`load_photo_tiles`). A tile's *place* says where it lies in
its photograph (`tile_places`), so that boxes in tiles can be compared in the photograph (`photo_boxes`).
"""

import collections
import contextlib
import logging
import os
import struct

import cv2
import numpy as np
import PIL.Image

from utils.base.prefetch import num_threads, ordered_map
from utils.base.progress import progress_bar

logger = logging.getLogger(__name__)

# --max_image_pixels: larger images are skipped unread (a 30000x30000 PNG of 875 KB decodes to 2.7 GB).
MAX_IMAGE_PIXELS = 100_000_000
# A file larger than this for its pixels is not an image (whatever its header says): 4 channels of float64, and
# room for metadata (EXIF, ICC profiles, thumbnails).
MAX_BYTES_PER_PIXEL, MAX_METADATA_BYTES = 32, 64 << 20
# The formats OpenCV decodes whose headers Pillow reads, by Pillow's names.
DECODED_FORMATS = ('JPEG', 'MPO', 'PNG', 'BMP', 'TIFF', 'WEBP', 'PPM', 'GIF', 'JPEG2000', 'AVIF', 'SUN')
EXIF_ORIENTATION = 0x0112
TIFF_WIDTH, TIFF_HEIGHT = 256, 257  # tags of a TIFF's stored size
# Batches decoded ahead of the one the network runs (`decoded_batches`): the scan's prefetch depth.
BATCHES_AHEAD = 2
# Colour photographs that ship inside the scikit-image wheel (no download): a person, a cat, food, a
# rocket launch, galaxies, a retina, stained tissue and a motorbike.
SKIMAGE_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'hubble_deep_field', 'retina',
                  'immunohistochemistry', 'stereo_motorcycle')
# A place, one int64 row per image: its photograph (an index), the top-left pixel and the size of the part of the
# photograph it shows, and 1 where it shows that part mirrored left to right.
PLACE_COLUMNS = ('photo', 'y', 'x', 'height', 'width', 'mirrored')


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


class UnusableImage(Exception):
    """A file that is skipped: `kind` is `'unreadable'` (not a regular file, not an image, cannot be decoded) or
    `'too large'` (more pixels than the limit); the message says why."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def _open_header(stream):
    """The Pillow image of a file's header (nothing decoded), by the first of `DECODED_FORMATS` that accepts its
    first bytes, or None.

    Pillow's own `Image.open` is not used: it refuses or warns about large images by a process-wide limit and
    warning filter, which threads reading headers side by side cannot set for themselves; the limit is ours.
    """
    PIL.Image.init()  # registers every format plugin (`PIL.Image.OPEN`)
    prefix = stream.read(16)
    for name in DECODED_FORMATS:
        factory, accept = PIL.Image.OPEN.get(name, (None, None))
        accepted = factory is not None and (accept is None or accept(prefix))
        if not accepted or isinstance(accepted, str):  # a string says why a plugin cannot read it here
            continue
        stream.seek(0)
        try:
            return factory(stream, stream.name)
        except (SyntaxError, IndexError, TypeError, struct.error):  # not this format after all (as Pillow does)
            continue
    return None


def image_size(path, max_pixels=MAX_IMAGE_PIXELS):
    """The size of an image file as `read_image` decodes it, from the file's header, without decoding it.

    The format is recognised from the file's first bytes (Pillow's header readers, for the formats OpenCV
    decodes: `DECODED_FORMATS`), so a file that is not an image is never read whole; an EXIF orientation that
    turns the image is applied, as OpenCV does.

    Args:
        path: the file.
        max_pixels: the largest image accepted, in pixels (height times width).

    Returns:
        `(height, width)`.

    Raises:
        UnusableImage: not a regular file (a FIFO or device would block: never opened), not an image of those
            formats, larger than any encoding of its pixels (`MAX_BYTES_PER_PIXEL`), or more than `max_pixels`
            pixels.
    """
    if not os.path.isfile(path):
        raise UnusableImage('unreadable', 'not a regular file')
    try:
        with open(path, 'rb') as stream:
            image = _open_header(stream)
            if image is None:
                raise UnusableImage('unreadable', f'not an image of the formats read ({", ".join(DECODED_FORMATS)})')
            width, height = _stored_size(image)
            orientation = _orientation(image)
    except (OSError, ValueError, EOFError) as error:
        raise UnusableImage('unreadable', f'not an image ({error})') from None
    if orientation in (5, 6, 7, 8):  # a quarter turn: OpenCV gives the image upright
        height, width = width, height
    if height * width > max_pixels:
        raise UnusableImage('too large', f'{height}x{width}')
    size = os.path.getsize(path)
    if size > MAX_BYTES_PER_PIXEL * height * width + MAX_METADATA_BYTES:  # decoding reads the file whole
        raise UnusableImage('unreadable', f'{size} bytes, more than any encoding of {height}x{width} pixels takes')
    return height, width


def _stored_size(image):
    """`(width, height)` of an opened Pillow image as its file stores it, before any EXIF orientation (Pillow turns
    the size of a TIFF by its orientation tag, and not that of other formats)."""
    tags = getattr(image, 'tag_v2', None)
    if tags is not None and TIFF_WIDTH in tags and TIFF_HEIGHT in tags:
        return int(tags[TIFF_WIDTH]), int(tags[TIFF_HEIGHT])
    return image.size


def _orientation(image):
    """The EXIF orientation (1 to 8) of an opened Pillow image, from what its header held, or None.

    Only metadata read with the header is looked at: Pillow's `getexif()` decodes a PNG to find its EXIF.
    """
    try:
        if 'exif' in image.info:
            exif = PIL.Image.Exif()
            exif.load(image.info['exif'])
            return exif.get(EXIF_ORIENTATION)
        tags = getattr(image, 'tag_v2', None)  # TIFF keeps it among its own tags
        return None if tags is None else tags.get(EXIF_ORIENTATION)
    except Exception:  # broken metadata: OpenCV ignores it too; a wrong guess is caught by the decoded size
        return None


def read_image(path, max_pixels=MAX_IMAGE_PIXELS):
    """Reads an image file as uint8 BGR, or returns None when it is not a readable image of at most `max_pixels`
    pixels (see `image_size`: the header is checked before the file is read)."""
    try:
        image_size(path, max_pixels)
        data = np.fromfile(path, np.uint8)  # not cv2.imread: it cannot open every non-ASCII path
    except (UnusableImage, OSError):
        return None
    # IMREAD_COLOR turns grey and 16-bit images into 8-bit BGR and drops alpha.
    try:
        return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error:  # a header that lies about the size
        return None


ImageFile = collections.namedtuple('ImageFile', 'path name height width')
ImageFile.__doc__ = """An image of a dataset, listed but not decoded: its file, its name (the same on every machine),
and its size as `image_size` read it from the header."""


def list_images(images_dir=None, images_list=None, shorter_side=None, max_pixels=MAX_IMAGE_PIXELS):
    """The images of a folder (every file under it, recursively, in sorted path order) or of a list file (one
    path per line, in the file's order), checked from their headers only (`image_size`), nothing decoded.

    Files that are not images (never opened if they are not regular files), missing files of a list, images
    of more than `max_pixels` pixels and subfolders that cannot be listed are skipped, each kind counted in a
    warning naming the first; so are images smaller than `shorter_side` (they will be enlarged).

    Args:
        images_dir: a folder; images are named by their path under it, with `/` separators.
        images_list: a text file of paths instead (UTF-8, one per line, relative to the file's folder or
            absolute; blank lines and lines starting with `#` are ignored); images are named as the lines say.
        shorter_side: the length the shorter sides will be resized to, for the warning about small images.
        max_pixels: see `image_size`.

    Returns:
        `(files, skipped)`: a list of `ImageFile` and a list of the skipped paths (files and subfolders).

    Raises:
        FileNotFoundError: the folder or list does not exist, or gives no usable image.
        ValueError: both or neither of `images_dir` and `images_list`, or a list that is not UTF-8 text.
    """
    if (images_dir is None) == (images_list is None):
        raise ValueError('give --images_dir (a folder of images) or --images_list (a file of paths), not both.')
    unlisted = []
    if images_dir is not None:
        where = f'under {images_dir}'
        if not os.path.isdir(images_dir):
            raise FileNotFoundError(f'--images_dir {images_dir} is not a folder; give a folder of images '
                                    '(searched recursively).')
        with progress_bar('listing images (files) ') as bar:
            paths = []
            for root, _, names in os.walk(images_dir, onerror=unlisted.append):
                paths += [os.path.join(root, name) for name in names]
                bar.update(len(paths))
        paths.sort()
        names = [relative_name(path, images_dir) for path in paths]
    else:
        where = f'listed in {images_list}'
        names, paths = read_images_list(images_list)
    files, skipped, unreadable, too_large, enlarged = [], [], [], [], []
    # Headers are read on worker threads: on a network file system a file's first bytes take a round trip.
    sizes = ordered_map(_checked_size(max_pixels), paths, ahead=64)
    with contextlib.closing(sizes), progress_bar('reading image headers (files) ', len(paths)) as bar:
        for number, (path, name, size) in enumerate(zip(paths, names, sizes), start=1):
            if isinstance(size, UnusableImage):
                (too_large if size.kind == 'too large' else unreadable).append((path, size))
                skipped.append(path)
                logger.debug('skipping %s: %s', path, size)
            else:
                files.append(ImageFile(path, name, *size))
                if shorter_side is not None and min(size) < shorter_side:
                    enlarged.append(f'{path} ({size[0]}x{size[1]})')
            bar.update(number)
    if unreadable:
        logger.warning('skipped %d of %d files %s that are not readable images (first: %s)', len(unreadable),
                       len(paths), where, unreadable[0][0])
    if too_large:
        logger.warning('skipped %d images %s with more than %d pixels (--max_image_pixels; first: %s, %s)',
                       len(too_large), where, max_pixels, *too_large[0])
    if unlisted:
        logger.warning('skipped %d subfolders %s that cannot be listed (first: %s)', len(unlisted), where,
                       unlisted[0])
        skipped += sorted(error.filename for error in unlisted)
    if enlarged:
        logger.warning('enlarged %d of %d images %s to %d pixels on their shorter side: they come out blurred, or '
                       'flat if tiny (first: %s)', len(enlarged), len(files), where, shorter_side, enlarged[0])
    if not files:
        raise FileNotFoundError(f'no readable image {where} ({len(paths)} files); OpenCV must be able to decode them '
                                f'(JPEG, PNG, BMP, TIFF, WebP, ...) and they must have at most {max_pixels} pixels.')
    return files, skipped


def relative_name(path, folder):
    """A file's name in a dataset: its path under `folder` with `/` separators, as text any UTF-8 file takes.

    A name holding bytes that are not UTF-8 (which Python keeps as lone surrogates, `bad\\udcff.jpg`) shows
    them escaped (`bad\\xff.jpg`), so that the gallery, `activations.json` and shard states can hold it; the
    file itself is read by its real path.
    """
    name = os.path.relpath(path, folder).replace(os.sep, '/')
    return name.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')


def folder_classes(names):
    """The classes of images in class subfolders (`<images_dir>/<class>/...`, ImageNet's layout): the first folder of
    each name, or None unless every image lies in a subfolder.

    Args:
        names: the images' names under the folder, `/`-separated (`list_images`).
    """
    if not names or not all('/' in name for name in names):
        return None
    return [name.split('/', 1)[0] for name in names]


def _checked_size(max_pixels):
    """`image_size` with that limit, returning the `UnusableImage` instead of raising it (for `ordered_map`)."""
    def checked(path):
        try:
            return image_size(path, max_pixels)
        except UnusableImage as error:
            return error
    return checked


def read_images_list(path):
    """The paths of an `--images_list` file (see `list_images`).

    Returns:
        `(names, paths)`: each line as written (with `/` separators), and the path it gives, made absolute
        from the list's folder.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not UTF-8 text.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'--images_list {path} is not a file; give a text file with one image path per line.')
    try:
        with open(path, encoding='utf-8') as stream:
            lines = [line.strip() for line in stream]
    except UnicodeDecodeError as error:
        raise ValueError(f'--images_list {path} is not UTF-8 text (byte {error.start}); give one image path per '
                         'line.') from error
    names = [line.replace(os.sep, '/') for line in lines if line and not line.startswith('#')]
    folder = os.path.dirname(os.path.abspath(path))
    return names, [os.path.normpath(os.path.join(folder, name)) for name in names]


def decoded_batches(paths, prepare, batch_size, first_index=0, max_pixels=MAX_IMAGE_PIXELS):
    """Reads image files in batches, decoding them on worker threads while the caller uses the previous batch.

    Every image stays in the batch of its position (`position // batch_size`), so that any part of the list
    is read in the same batches as the whole: an unreadable image (`read_image`) is skipped (logged at DEBUG,
    their number as a warning at the end) and leaves its batch one short. At most `BATCHES_AHEAD` batches of
    prepared images are held ahead.

    Args:
        paths: image files.
        prepare: function from a decoded uint8 BGR image to the array to batch (all of one shape).
        batch_size: files per batch.
        first_index: the dataset index of `paths[0]`.
        max_pixels: see `read_image`.

    Yields:
        `(images, indices)`: the prepared images stacked, and int64 `first_index` plus their positions.

    Raises:
        ValueError: not one image could be read.
    """
    def load(path):
        image = read_image(path, max_pixels)
        return None if image is None else prepare(image)

    skipped = []
    with contextlib.closing(ordered_map(load, paths, ahead=BATCHES_AHEAD * batch_size)) as loaded:
        for start in range(0, len(paths), batch_size):
            kept, indices = [], []
            for position in range(start, min(start + batch_size, len(paths))):
                image = next(loaded)
                if image is None:
                    skipped.append(paths[position])
                    logger.debug('skipping %s: not a readable image', paths[position])
                    continue
                kept.append(image)
                indices.append(first_index + position)
            if kept:
                yield np.stack(kept), np.array(indices, np.int64)
    if skipped:
        logger.warning('skipped %d unreadable images (first: %s)', len(skipped), skipped[0])
        if len(skipped) == len(paths):
            raise ValueError(f'none of the {len(paths)} images can be read (first: {paths[0]}); OpenCV must '
                             'be able to decode them (JPEG, PNG, ...).')


def resized_size(height, width, length):
    """`(height, width)` of an image of that size once `resize_shorter_side` makes its shorter side `length`."""
    scale = length / min(height, width)
    return max(length, round(height * scale)), max(length, round(width * scale))


def resize_shorter_side(image, length):
    """The image resized, keeping its aspect ratio, so that its shorter side is `length` pixels."""
    height, width = resized_size(*image.shape[:2], length)
    interpolation = cv2.INTER_AREA if length < min(image.shape[:2]) else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def _starts(length, tile_size, step):
    """Tile starts along one axis: about `step` apart, the first at 0 and the last at `length - tile_size`."""
    count = -(-(length - tile_size) // step) + 1
    return np.linspace(0, length - tile_size, count).round().astype(int) if count > 1 else np.zeros(1, int)


def tile_positions(sizes, tile_size, step, mirror=True, count=0):
    """Where the tiles of each image are.

    Args:
        sizes: `(height, width)` of each image, each at least `tile_size`.
        tile_size: side of the square tiles.
        step: approximate distance between neighbouring tiles (overlap is `tile_size - step`).
        mirror: also list every tile mirrored left to right.
        count: only this many tiles, spread evenly over all of them (`spread`), found without listing the
            others (a quick try over a large folder holds `count` tiles, not all); 0 for all.

    Returns:
        list of `(image_index, y, x, mirrored)`, by image.
    """
    variants = 2 if mirror else 1
    grids = np.array([(len(_starts(height, tile_size, step)), len(_starts(width, tile_size, step)))
                      for height, width in sizes], np.int64).reshape(-1, 2)
    per_image = grids.prod(axis=1) * variants
    if count and count < per_image.sum():
        firsts = np.cumsum(per_image) - per_image  # the number of each image's first tile
        positions = []
        for number in spread(range(int(per_image.sum())), count):
            index = int(np.searchsorted(firsts, number, side='right')) - 1
            cell, mirrored = divmod(number - int(firsts[index]), variants)
            row, column = divmod(cell, int(grids[index, 1]))
            height, width = sizes[index]
            positions.append((index, int(_starts(height, tile_size, step)[row]),
                              int(_starts(width, tile_size, step)[column]), bool(mirrored)))
        return positions
    positions = []
    for index, (height, width) in enumerate(sizes):
        for y in _starts(height, tile_size, step):
            for x in _starts(width, tile_size, step):
                positions += [(index, int(y), int(x), mirrored) for mirrored in (False, True)[:variants]]
    return positions


def spread(items, count):
    """`count` items spread evenly over `items` (all of them when `count` is 0 or at least their number)."""
    if not count or count >= len(items):
        return list(items)
    return [items[index] for index in np.linspace(0, len(items) - 1, count).round().astype(int)]


def tile_batches(read_photo, positions, tile_size, batch_size, first_index=0):
    """Yields the tiles at `positions` in batches, cut when their batch is read.

    Photographs are read (`read_photo`) on worker threads, each once, in the order of their first tile, a few
    ahead of the batch being cut, and let go after their last tile: memory holds a few photographs, not the
    dataset. A photograph that cannot be read (None) leaves its tiles out of their batches.

    Args:
        read_photo: function from an image index to its uint8 BGR photograph, or None.
        positions: `(image_index, y, x, mirrored)` of the tiles (see `tile_positions`).
        tile_size, batch_size: side of the tiles, tiles per batch.
        first_index: the dataset index of `positions[0]`.

    Yields:
        `(tiles, indices)`: uint8 `[<= batch_size, tile_size, tile_size, channels]`, and int64 `first_index`
        plus their positions.
    """
    last_use = {index: number for number, (index, *_) in enumerate(positions)}  # in the order of first use
    held = {}
    ahead = 2 * num_threads()
    with contextlib.closing(ordered_map(lambda index: (index, read_photo(index)), last_use, ahead)) as photos:
        for start in range(0, len(positions), batch_size):
            tiles, indices = [], []
            for number in range(start, min(start + batch_size, len(positions))):
                index, y, x, mirrored = positions[number]
                while index not in held:
                    read_index, photo = next(photos)
                    held[read_index] = photo
                photo = held[index] if last_use[index] > number else held.pop(index)
                if photo is not None:
                    tile = photo[y:y + tile_size, x:x + tile_size]
                    tiles.append(tile[:, ::-1] if mirrored else tile)
                    indices.append(first_index + number)
            if tiles:
                yield np.stack(tiles), np.array(indices, np.int64)


def load_photo_tiles(images_dir, tile_size, max_images=0, images_list=None, max_pixels=MAX_IMAGE_PIXELS):
    """The VGG16 example's images: the tiles of photographs, listed without decoding them.

    The photographs are the images of `images_dir` or `images_list` (`list_images`: their sizes come from
    their headers), or scikit-image's (`skimage_photos`) when both are None, resized so that their shorter side
    is 2.5 tiles; tiles are half a tile apart, each also mirrored (`tile_positions`): every photograph gives
    4 x 4 or more. A photograph file is decoded only when a batch that holds one of its tiles is read.

    Args:
        images_dir, images_list, max_pixels: see `list_images`.
        tile_size: side of the square tiles.
        max_images: use this many tiles, spread over all of them (`spread`); 0 for all.

    Returns:
        `(names, positions, read_tiles)`: a name per photograph that is the same on every machine (see
        `list_images`, or scikit-image's name), the tiles' `(image_index, y, x, mirrored)`, and a function
        `read_tiles(start, stop, batch_size)` giving the `tile_batches` of `positions[start:stop]`.

    Raises:
        FileNotFoundError, ValueError: see `list_images` and `skimage_photos`.
    """
    shorter_side = tile_size * 5 // 2
    if images_dir is not None or images_list is not None:
        files = list_images(images_dir, images_list, shorter_side, max_pixels)[0]
        names = [file.name for file in files]
        sizes = [resized_size(file.height, file.width, shorter_side) for file in files]
        failed = []  # photographs whose header passed but that do not decode to that size

        def read_photo(index):
            image = read_image(files[index].path, max_pixels)
            image = None if image is None else resize_shorter_side(image, shorter_side)
            if image is None or image.shape[:2] != sizes[index]:
                failed.append(files[index].path)
                return None
            return image
    else:
        bundled = skimage_photos()
        names = [name for name, _ in bundled]
        photos = [resize_shorter_side(image, shorter_side) for _, image in bundled]
        sizes = [photo.shape[:2] for photo in photos]
        read_photo, failed = photos.__getitem__, []
    positions = tile_positions(sizes, tile_size, tile_size // 2, count=max_images)
    logger.info('%d images give %d tiles (mirror images included)', len(sizes), len(positions))

    def read_tiles(start, stop, batch_size):
        already_failed = len(failed)
        yield from tile_batches(read_photo, positions[start:stop], tile_size, batch_size, first_index=start)
        if len(failed) > already_failed:
            logger.warning('skipped the tiles of %d photographs that cannot be decoded, or not to the size their '
                           'header says (first: %s)', len(failed) - already_failed, failed[already_failed])

    return names, positions, read_tiles


def tile_places(positions, tile_size):
    """The places (`PLACE_COLUMNS`) of tiles at `positions` (`tile_positions`): int64 `[tiles, 6]`."""
    places = np.array([(index, y, x, tile_size, tile_size, mirrored) for index, y, x, mirrored in positions], np.int64)
    return places.reshape(-1, len(PLACE_COLUMNS))


def photo_boxes(boxes, places, image_size):
    """Boxes in images mapped into the photographs the images show.

    Args:
        boxes: `[..., 4]` boxes `[y1, x1, y2, x2]` (end-exclusive) in images of `image_size`.
        places: `[..., 6]` the images' places (`PLACE_COLUMNS`), one per box.
        image_size: `(height, width)` of the images.

    Returns:
        float64 `[..., 4]`: the boxes in photograph pixels, `[y1, x1, y2, x2]` with `y1 <= y2` and `x1 <= x2`.
    """
    boxes, places = np.asarray(boxes, np.float64), np.asarray(places, np.int64)
    height, width = image_size
    y1, x1, y2, x2 = np.moveaxis(boxes, -1, 0)
    mirrored = places[..., 5] != 0
    # Column c of a mirrored image shows column width - 1 - c of its part: [x1, x2) comes from [width - x2, width - x1).
    x1, x2 = np.where(mirrored, width - x2, x1), np.where(mirrored, width - x1, x2)
    scale_y, scale_x = places[..., 3] / height, places[..., 4] / width
    return np.stack([places[..., 1] + y1 * scale_y, places[..., 2] + x1 * scale_x,
                     places[..., 1] + y2 * scale_y, places[..., 2] + x2 * scale_x], axis=-1)


def tile_id(names, position):
    """A tile's name, `<photograph>:y=<y>,x=<x>` with `,mirrored` for a mirror image (see `load_photo_tiles`)."""
    index, y, x, mirrored = position
    return f'{names[index]}:y={y},x={x}' + (',mirrored' if mirrored else '')
