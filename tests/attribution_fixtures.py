"""Small TF1 networks whose attributions and effective receptive fields are known in closed form, opened as a
`utils.core.model.Model` with the TF adapter's functions (`session_forward_funcs`, `session_gradient_func`).

- linear stacks: 3x3 convolutions whose weights are all equal, no bias, no non-linearity, SAME padding; a layer is
  `(stride, dilation)`. Their input-space kernel (`stack_kernel`) is the composition of the layers' kernels.
- `relu_pool`: conv (ReLU) -> 2x2 max-pool -> conv (ReLU), seeded weights.
- `detector`: channel 0 of its first 1x1 conv is red minus green minus blue, biased to stay 0 on the grey reference
  and on a slightly noisy grey; a 5x5 conv of equal weights and a 3x3 max-pool of stride 2 make its field wider
  than the red squares the tests plant (`planted_square_images`).

The Keras and ONNX fixture models (`keras_fixtures`, `onnx_fixtures`) are opened by their adapters, and every network
is reached by name through `opened_network`.
"""

import numpy as np
import pytest
import tensorflow as tf

from recfield import measure_model
from utils.core.model import Model
from utils.models import keras_file, onnx_file
from utils.models.tf_session import session_config, session_forward_funcs, session_gradient_func

tf1 = tf.compat.v1

LINEAR_CHANNELS = 2
LINEAR_VALUE_RANGE = (0.0, 1.0)
# name: (image size, layers as (stride, dilation)); images large enough that the centre unit's field is unclipped.
LINEAR_STACKS = {
    **{f'linear{n}': (33, [(1, 1)] * n) for n in range(1, 5)},
    'linear_strided': (41, [(2, 1), (1, 1), (1, 1)]),
    'linear_dilated': (41, [(1, 1), (1, 2), (1, 1)]),
    'linear_strided_dilated': (41, [(2, 1), (1, 2), (2, 1)]),
}
RELU_POOL_SIZE = 24
DETECTOR_SIZE = 28
DETECTOR_VALUE_RANGE = (0.0, 1.0)  # the reference is the grey 0.5
DETECTOR_MARGIN = 0.2  # the detector is relu(R - G - B + 0.5 - margin): 0 on grey, and on grey 0.5 +- margin / 3
DETECTOR_POOL = 3  # the last layer's max-pool (stride 2)


def stack_kernel(layers):
    """The input-space kernel, along one axis, of a linear stack of 3-tap convolutions whose taps are all 1: the
    convolution of the layers' kernels, each spread out to the image's scale. Layer l reads its input map at taps
    `dilation` apart, and one step of that map is the product of the strides before it in image pixels, so its
    kernel in the image has 3 taps `dilation x (strides before)` apart; a chain of convolutions is the convolution
    of their kernels (strides only change the scale of the later ones)."""
    kernel, scale = np.ones(1), 1
    for stride, dilation in layers:
        spread = np.zeros(2 * dilation * scale + 1)
        spread[::dilation * scale] = 1
        kernel = np.convolve(kernel, spread)
        scale *= stride
    return kernel


def stack_kernel_2d(layers):
    """The normalised 2-D input-space kernel of a linear stack: every weight equal, so it is the outer product of
    the kernel along each axis (`stack_kernel`), summing to 1 like an effective receptive field."""
    kernel = stack_kernel(layers)
    kernel_2d = np.outer(kernel, kernel)
    return kernel_2d / kernel_2d.sum()


def build_linear_stack(images, layers):
    """The maps of a linear stack on `images`: one per layer."""
    maps, net = [], images
    for stride, dilation in layers:
        in_channels = int(net.shape[-1])
        weights = tf.constant(np.full((3, 3, in_channels, LINEAR_CHANNELS), 1 / (9 * in_channels), np.float32))
        net = tf.nn.conv2d(net, weights, stride, 'SAME', dilations=dilation)
        maps.append(net)
    return maps


def build_relu_pool(images):
    """conv1 (3x3, 4 channels, ReLU) -> pool1 (2x2 max, stride 2) -> conv2 (3x3, 5 channels, ReLU); small positive
    biases keep most units alive."""
    rng = np.random.default_rng(3)
    conv1 = tf.nn.relu(tf.nn.conv2d(images, tf.constant(rng.normal(0, 0.4, (3, 3, 3, 4)).astype(np.float32)), 1,
                                    'SAME') + 0.1)
    pool1 = tf.nn.max_pool2d(conv1, 2, 2, 'VALID')
    conv2 = tf.nn.relu(tf.nn.conv2d(pool1, tf.constant(rng.normal(0, 0.4, (3, 3, 4, 5)).astype(np.float32)), 1,
                                    'SAME') + 0.1)
    return [conv1, pool1, conv2]


def build_detector(images):
    """detect (1x1: channel 0 red minus green minus blue, channel 1 green minus red minus blue, both biased to 0 on
    grey and ReLU) -> spread (5x5 SAME, each channel the mean of its own, ReLU-free) -> pool (3x3 max, stride 2)."""
    bias = 0.5 - DETECTOR_MARGIN
    colours = np.array([[1, -1], [-1, 1], [-1, -1]], np.float32).reshape(1, 1, 3, 2)
    detect = tf.nn.relu(tf.nn.conv2d(images, tf.constant(colours), 1, 'SAME') + bias)
    spread = tf.nn.conv2d(detect, tf.constant(np.eye(2, dtype=np.float32)[None, None] * np.ones((5, 5, 1, 1),
                                                                                             np.float32) / 25),
                          1, 'SAME')
    pool = tf.nn.max_pool2d(spread, DETECTOR_POOL, 2, 'SAME')
    return [detect, spread, pool]


def session_model(build, size, value_range):
    """A `Model` of the maps `build(images)` returns for images `[None, size, size, 3]`, run by a TF1 session: the
    forward function of the TF adapter and its `gradient_func`, batches of any size (probes of 16)."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, size, size, 3], name='images')
        layers = build(images)
        session = tf1.Session(graph=graph, config=session_config())
    forward_func, maxima_forward_func = session_forward_funcs(session, images, layers)
    return Model(forward_func, layers, [16, size, size, 3], value_range, close=session.close,
                 maxima_forward_func=maxima_forward_func, any_batch_size=True,
                 gradient_func=session_gradient_func(session, images, layers))


class Networks:
    """The networks of this module, each built and its receptive fields measured (`recfield.measure_model`) on
    first use: `get(name)` gives `(model, fields)`."""

    def __init__(self):
        self._built = {}

    def get(self, name):
        if name not in self._built:
            if name in LINEAR_STACKS:
                size, layers = LINEAR_STACKS[name]
                model = session_model(lambda images: build_linear_stack(images, layers), size, LINEAR_VALUE_RANGE)
            elif name == 'relu_pool':
                model = session_model(build_relu_pool, RELU_POOL_SIZE, (-1.0, 1.0))
            elif name == 'detector':
                model = session_model(build_detector, DETECTOR_SIZE, DETECTOR_VALUE_RANGE)
            else:
                raise KeyError(name)
            self._built[name] = model, measure_model(model)
        return self._built[name]

    def close(self):
        for model, _ in self._built.values():
            model.close()


@pytest.fixture(scope='session')
def attribution_networks():
    """The `Networks` of this module, shared by the test session and closed at its end."""
    networks = Networks()
    yield networks
    networks.close()


# name: (fixture model, layers), opened by the Keras adapter.
KERAS_NETWORKS = {'keras_sequential': ('sequential', ['conv1', 'pool1', 'bn']),
                  'keras_residual': ('residual', ['residual', 'merged', 'dilated'])}
ONNX_NETWORK, ONNX_LAYERS = 'nhwc', ['relu1', 'relu2', 'merged']  # opened by the ONNX adapter (no gradients)


@pytest.fixture(scope='session')
def keras_attribution_models(keras_models):
    """`{name: (model, fields)}` of `KERAS_NETWORKS`, opened by `utils.models.keras_file.open_model`."""
    opened = {}
    for name, (fixture, layers) in KERAS_NETWORKS.items():
        model = keras_file.open_model(keras_models[fixture], layers)
        opened[name] = model, measure_model(model)
    return opened


@pytest.fixture(scope='session')
def onnx_attribution_model(onnx_networks):
    """`(model, fields)` of the NHWC fixture network's `ONNX_LAYERS`, opened by `utils.models.onnx_file.open_model`."""
    model = onnx_file.open_model(onnx_networks[ONNX_NETWORK].path, ONNX_LAYERS)
    return model, measure_model(model)


def opened_network(request, name):
    """`(model, fields)` of any network of this module by name: a TF one (`Networks`), one of `KERAS_NETWORKS`, or
    'onnx'; the fixture that holds it is asked for through the test's `request`, so that a test builds only what it
    uses."""
    if name in KERAS_NETWORKS:
        return request.getfixturevalue('keras_attribution_models')[name]
    if name == 'onnx':
        return request.getfixturevalue('onnx_attribution_model')
    return request.getfixturevalue('attribution_networks').get(name)


def random_images(model, count, seed=0):
    """`count` float32 images of the model's probe size, uniform over its value range."""
    low, high = model.value_range
    return np.random.default_rng(seed).uniform(low, high, (count, *model.imshape[1:])).astype(np.float32)


def planted_square_images(count, side, seed=0, size=DETECTOR_SIZE, noise=0.05):
    """`count` grey images (0.5, plus uniform noise of +- `noise`) with a pure red square of `side` pixels at a
    random place at least `side` pixels from the border.

    Returns:
        `(images, squares)`: float32 `[count, size, size, 3]`, and int `[count, 4]` boxes `[y1, x1, y2, x2]`.
    """
    rng = np.random.default_rng(seed)
    images = (0.5 + rng.uniform(-noise, noise, (count, size, size, 3))).astype(np.float32)
    squares = []
    for image in images:
        top, left = rng.integers(side, size - 2 * side + 1, 2)
        image[top:top + side, left:left + side] = [1, 0, 0]
        squares.append([top, left, top + side, left + side])
    return images, np.array(squares, np.int64)
