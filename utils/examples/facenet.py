"""FaceNet's Inception-ResNet-v1 (github.com/davidsandberg/facenet) as the FaceNet examples load it.

The model is a frozen graph (`20170512-110547.pb`) or a checkpoint folder (see `utils.models.tf_load`). Its interface
is two tensors: `input:0`, a float batch `[n, 160, 160, 3]` of prewhitened RGB faces (see `utils.examples.lfw`), and
`phase_train:0`, a bool that switches BatchNorm between batch statistics (training) and its stored moving
averages. It is always fed False here: in training mode every output pixel depends on every pixel of every
image in the batch, which would make top activations depend on batch order and receptive fields cover
the whole image.

Nothing from the facenet repository is imported; `--facenet_dir` only says where to look for
`data/pairs.txt` and for relative `--model_path` and `--lfw_dir`.
"""

import collections
import glob
import logging
import os

from utils.base.quiet_tf import tf
from utils.core import pipeline
from utils.core.model import Example, Model, closed_on_error, model_id, probe_shape
from utils.data import images
from utils.examples import lfw
from utils.models.tf_load import checkpoint_files, latest_checkpoint, load_model
from utils.models.tf_session import (find_layers, held_forward_func, print_tensor_names, session_config,
                                      session_forward_funcs, session_gradient_func)

tf1 = tf.compat.v1
logger = logging.getLogger(__name__)

INPUT_NAME = 'input:0'
PHASE_TRAIN_NAME = 'phase_train:0'
IMAGE_SIZE = 160
# Prewhitened images have mean 0 and deviation 1 per image; nearly all values lie within 3 deviations.
VALUE_RANGE = (-3.0, 3.0)
# Layers from the stem to the first Inception-ResNet-A block, and the Reduction-A block that ends that stage.
DEFAULT_LAYERS = (
    'InceptionResnetV1/Conv2d_2b_3x3/convolution:0',
    'InceptionResnetV1/Conv2d_4a_3x3/convolution:0',
    'InceptionResnetV1/Conv2d_4b_3x3/convolution:0',
    'InceptionResnetV1/Repeat/block35_1/add:0',
    'InceptionResnetV1/Mixed_6a/concat:0',
)

Network = collections.namedtuple('Network', 'session images_ph feed_dict image_size')


def add_model_arguments(parser):
    """Adds `--model_path` (required) and `--facenet_dir`."""
    parser.add_argument('--model_path', required=True,
                        help='the frozen graph (.pb), or a folder with a .meta graph and a checkpoint')
    parser.add_argument('--facenet_dir',
                        help='a checkout of davidsandberg/facenet (optional): its data/pairs.txt picks the LFW '
                             'images, and relative --model_path and --lfw_dir not found as given are looked for '
                             'in it')


def find_path(path, facenet_dir):
    """`path` as given if it exists (or there is no `facenet_dir`), else under `facenet_dir` if it is there."""
    if facenet_dir and not os.path.isabs(path) and not os.path.exists(path):
        inside = os.path.join(facenet_dir, path)
        if os.path.exists(inside):
            return inside
    return path


def load_network(model_path):
    """Loads a FaceNet model into a new graph and session.

    Args:
        model_path: see `utils.models.tf_load.load_model`.

    Returns:
        a `Network`: the session (its graph holds the model), the input tensor, the values to feed with
        every batch (`{phase_train: False}`, or empty if the graph has no `phase_train`), and the image side
        (the input's, if the graph fixes it, else 160).

    Raises:
        FileNotFoundError, ValueError: see `load_model`; also a graph without an `input:0` tensor.
    """
    graph = tf.Graph()
    session = tf1.Session(graph=graph, config=session_config())
    try:
        with graph.as_default():
            load_model(model_path, session)
        images_ph = _tensor(graph, INPUT_NAME)
        if images_ph is None:
            placeholders = [op.name for op in graph.get_operations() if op.type == 'Placeholder']
            raise ValueError(f'{model_path} has no input tensor {INPUT_NAME}; its placeholders are '
                             f'{", ".join(placeholders) or "none"}. Is it a FaceNet model?')
        phase_train = _tensor(graph, PHASE_TRAIN_NAME)
        if phase_train is None:
            logger.info('the graph has no %s; nothing switches BatchNorm to inference', PHASE_TRAIN_NAME)
        feed_dict = {} if phase_train is None else {phase_train: False}
    except BaseException:
        session.close()
        raise
    return Network(session, images_ph, feed_dict, _image_size(images_ph))


def open_model(args):
    """FaceNet with the scripts' flags (`--model_path`, `--facenet_dir`, `--layers`, `--batch_size`) as a
    `utils.core.model.Model`, BatchNorm in inference mode; close it when done.

    Raises:
        FileNotFoundError, ValueError: see `load_network` and `utils.models.tf_session.find_layers`.
    """
    model_path = find_path(args.model_path, args.facenet_dir)
    net = load_network(model_path)
    with closed_on_error(net.session):
        layers = find_layers(net.session.graph, net.images_ph, args)
        # forward_func: session.run of the layers, fed net.feed_dict too (phase_train False: BatchNorm in inference
        # mode, see the README's note on BatchNorm); maxima_forward_func: the same with each channel's maxima.
        forward_func, maxima_forward_func = session_forward_funcs(net.session, net.images_ph, layers, net.feed_dict)
        if os.path.isdir(model_path):
            files = sorted(glob.glob(os.path.join(glob.escape(model_path), '*.meta')))
            files += checkpoint_files(latest_checkpoint(model_path))
        else:
            files = [model_path]
        # Probes hold any global pooling at a fixed value: local receptive fields (for frozen graphs that have one).
        local_forward_func, local_layers = held_forward_func(net.session, net.images_ph, layers, VALUE_RANGE,
                                                             forward_func, net.feed_dict)
        return Model(forward_func, layers, probe_shape(args.batch_size, net.image_size, net.image_size),
                     VALUE_RANGE, model_id('facenet', files), net.session.close,
                     maxima_forward_func=maxima_forward_func, any_batch_size=True,
                     local_forward_func=local_forward_func, local_layers=local_layers,
                     gradient_func=session_gradient_func(net.session, net.images_ph, layers, net.feed_dict))


def print_all_names(args):
    """`--print_all_names`: prints every tensor computed from the input, with its shape."""
    net = load_network(find_path(args.model_path, args.facenet_dir))
    with net.session:
        print_tensor_names(net.session.graph, net.images_ph)


def open_dataset(args, model):
    """The LFW faces of the scripts' flags (`image_paths`), the first `--batches` batches, as a
    `utils.core.pipeline.Dataset`; each face is named by its path under `--lfw_dir` (`Name/Name_0001.jpg`).

    Args:
        args: the script's flags.
        model: the `utils.core.model.Model`, whose input size the faces are cut to.

    Raises:
        FileNotFoundError, ValueError: see `image_paths`.
    """
    paths = image_paths(args)
    if args.batches:  # the first --batches batches of the list; unreadable images leave them short
        paths = paths[:args.batches * args.batch_size]
    root = find_path(args.lfw_dir, args.facenet_dir)
    image_size = model.imshape[1]

    def read(start, stop):
        return lfw.load_batches(paths[start:stop], image_size, args.batch_size, first_index=start)

    return pipeline.Dataset([images.relative_name(path, root) for path in paths], args.batch_size, read)


def pairs_file(args):
    """--pairs, else <facenet_dir>/data/pairs.txt if it exists, else None (every image)."""
    if args.pairs or not args.facenet_dir:
        return args.pairs
    path = os.path.join(args.facenet_dir, 'data', 'pairs.txt')
    if os.path.isfile(path):
        return path
    logger.warning('no pairs file at %s; using every image under --lfw_dir', path)
    return None


def image_paths(args):
    """The LFW images of the FaceNet example, from its flags `--lfw_dir`, `--pairs` and `--facenet_dir`.

    Returns:
        list of file paths (see `utils.examples.lfw.image_paths`).

    Raises:
        ValueError: no `--lfw_dir`; see also `utils.examples.lfw.image_paths`.
        FileNotFoundError: see `utils.examples.lfw.image_paths`.
    """
    if not args.lfw_dir:
        raise ValueError('--lfw_dir is required: the LFW folder, e.g. --lfw_dir lfw after tar -xzf lfw.tgz.')
    return lfw.image_paths(find_path(args.lfw_dir, args.facenet_dir), pairs_file(args))


def _image_size(images_ph):
    """The input's height if the graph fixes it (a model made for another size), else `IMAGE_SIZE`."""
    shape = images_ph.shape
    height = shape[1] if shape.rank == 4 else None
    return int(height) if height is not None else IMAGE_SIZE


def _tensor(graph, name):
    try:
        return graph.get_tensor_by_name(name)
    except KeyError:
        return None


EXAMPLE = Example('facenet', open_model, open_dataset)
