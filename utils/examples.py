"""The examples' networks and datasets, opened from their scripts' flags: what a shard of a scan needs.

A shard (`utils.shards`) scans part of an example's dataset with its network, in a process of its own or
on a Dask worker, from nothing but the example's name (`EXAMPLES`) and the script's parsed flags.
`open_network(name, args)` builds the network the script builds; `open_dataset(name, args, network)` lists
the images the script scans, in the same order, each under a name that is the same on every machine:

    vgg16     <photograph>:y=<y>,x=<x>[,mirrored]   the photograph's path under --images_dir, or its
                                                     scikit-image name, and where the tile is
    cifar10   data_batch_<n>.bin:<record>            the record's number in its file
    facenet   <Name>/<Name>_<number>.jpg             the path under --lfw_dir

A network's `model_id` tells whether two shards ran the same model: the example, and a SHA-256 of its
weights file or checkpoint files (the file contents, so the same model on another machine has the same id).
"""

import collections
import contextlib
import glob
import hashlib
import os

import numpy as np

from utils import cifar10_input, cifar10_model, facenet, images, lfw, vgg16
from utils.cli import layer_names
from utils.layers import resolve_layers
from utils.load import latest_checkpoint

EXAMPLES = ('vgg16', 'cifar10', 'facenet')

Network = collections.namedtuple('Network', 'session images_ph layers feed_dict imshape value_range model_id')
Network.__doc__ = """An opened network: its session, input placeholder and `--layers` tensors, what to feed with
every batch, the `[batch_size, height, width, channels]` of the receptive-field probes, the range of input values
(see `recfield.ReceptiveField`), and the model's `model_id`."""

Dataset = collections.namedtuple('Dataset', 'ids batch_size read')
Dataset.__doc__ = """A listed dataset: a name per image (`ids`, in dataset order), the batch size, and `read(start,
stop)` yielding `(network_inputs, display_images, indices)` batches of the images `start` (a multiple of
`batch_size`) to `stop`, with their dataset indices."""


def open_network(name, args):
    """Builds an example's network and finds its `--layers`, as the example's script does.

    Unlike `utils.cli.prepare_layers`, it writes nothing (no output folder is created): on a Dask worker the
    output folder is the client's.

    Args:
        name: one of `EXAMPLES`.
        args: the script's parsed flags.

    Returns:
        a `Network`; close its session when done.

    Raises:
        ValueError, FileNotFoundError: an unknown example or layer, a missing model or checkpoint.
    """
    opener = {'vgg16': _vgg16_network, 'cifar10': _cifar10_network, 'facenet': _facenet_network}.get(name)
    if opener is None:
        raise ValueError(f'unknown example {name!r}; the examples are {", ".join(EXAMPLES)}.')
    return opener(args)


def open_dataset(name, args, network):
    """Lists an example's images, as the example's script scans them.

    Args:
        name: one of `EXAMPLES`.
        args: the script's parsed flags.
        network: the example's `Network` (FaceNet's image size comes from its graph).

    Returns:
        a `Dataset`.

    Raises:
        ValueError, FileNotFoundError: missing or unreadable data.
    """
    opener = {'vgg16': _vgg16_dataset, 'cifar10': _cifar10_dataset, 'facenet': _facenet_dataset}[name]
    return opener(args, network)


def model_id(example, paths):
    """`<example> <file names> sha256:<first 16 hex digits>`, over the contents of `paths` in order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, 'rb') as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b''):
                digest.update(chunk)
    return f'{example} {"+".join(os.path.basename(path) for path in paths)} sha256:{digest.hexdigest()[:16]}'


def checkpoint_files(prefix):
    """The files of a TensorFlow checkpoint (`<prefix>.index` and its `.data-*` shards), sorted."""
    return [prefix + '.index'] + sorted(glob.glob(glob.escape(prefix) + '.data-*'))


@contextlib.contextmanager
def _closed_on_error(session):
    """Closes `session` if the block raises."""
    try:
        yield
    except BaseException:
        session.close()
        raise


def _layers(session, images_ph, args):
    return resolve_layers(session.graph, layer_names(args.layers), images_ph)


def _numbered(batches, start):
    """`(inputs, display_images)` batches with the dataset indices of their images, counting from `start`."""
    for inputs, display_images in batches:
        yield inputs, display_images, np.arange(start, start + len(display_images))
        start += len(display_images)


def _vgg16_network(args):
    session, images_ph = vgg16.build_session(args.image_size)
    with _closed_on_error(session):
        imshape = [args.batch_size, args.image_size, args.image_size, 3]
        return Network(session, images_ph, _layers(session, images_ph, args), {}, imshape, vgg16.VALUE_RANGE,
                       model_id('vgg16', [vgg16.default_weights_path()]))


def _vgg16_dataset(args, network):
    names, resized, positions = images.load_photo_tiles(args.images_dir, args.image_size, args.max_images)

    def read(start, stop):
        tiles = images.tile_batches(resized, positions[start:stop], args.image_size, args.batch_size)
        return _numbered(((vgg16.preprocess(batch), batch) for batch in tiles), start)

    return Dataset([images.tile_id(names, position) for position in positions], args.batch_size, read)


def _cifar10_network(args):
    session, images_ph = cifar10_model.build_session(args.batch_size, args.cifar10_dir)
    with _closed_on_error(session):
        layers = _layers(session, images_ph, args)
        checkpoint = cifar10_model.restore_checkpoint(session, args.train_dir)
        return Network(session, images_ph, layers, {}, images_ph.shape.as_list(), cifar10_model.VALUE_RANGE,
                       model_id('cifar10', checkpoint_files(checkpoint)))


def _cifar10_dataset(args, network):
    paths = cifar10_input.find_batch_files(args.data_dir, train=True)
    _, num_batches = cifar10_input.scan_batches(paths, args.batch_size, args.batches)  # checks, warns
    ids = [f'{os.path.basename(path)}:{record}' for path in paths
           for record in range(cifar10_input.count_records([path]))][:num_batches * args.batch_size]

    def read(start, stop):
        batches, _ = cifar10_input.scan_batches(paths, args.batch_size, -(-stop // args.batch_size),
                                                first_batch=start // args.batch_size)
        return _numbered(batches, start)

    return Dataset(ids, args.batch_size, read)


def _facenet_network(args):
    model_path = facenet.find_path(args.model_path, args.facenet_dir)
    loaded = facenet.load_network(model_path)
    with _closed_on_error(loaded.session):
        layers = _layers(loaded.session, loaded.images_ph, args)
        if os.path.isdir(model_path):
            files = sorted(glob.glob(os.path.join(glob.escape(model_path), '*.meta')))
            files += checkpoint_files(latest_checkpoint(model_path))
        else:
            files = [model_path]
        imshape = [args.batch_size, loaded.image_size, loaded.image_size, 3]
        return Network(loaded.session, loaded.images_ph, layers, loaded.feed_dict, imshape, facenet.VALUE_RANGE,
                       model_id('facenet', files))


def _facenet_dataset(args, network):
    paths = facenet.image_paths(args)
    if args.batches:  # the first --batches batches of the list; unreadable images leave them short
        paths = paths[:args.batches * args.batch_size]
    root = facenet.find_path(args.lfw_dir, args.facenet_dir)
    image_size = network.imshape[1]

    def read(start, stop):
        return lfw.load_indexed_batches(paths[start:stop], image_size, args.batch_size, first_index=start)

    return Dataset([os.path.relpath(path, root).replace(os.sep, '/') for path in paths], args.batch_size, read)
