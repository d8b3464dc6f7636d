"""A small FaceNet and an LFW-style folder, for the FaceNet, LFW and shard tests.

The graph has the tensor names of FaceNet's Inception-ResNet-v1 (`input`, `phase_train`, the default
layers) and its stem's kernels, strides and paddings, two Inception-ResNet-A blocks and a Reduction-A block,
with 16 channels per convolution and BatchNorm switched by `phase_train` through `tf.cond`, frozen the way
FaceNet's models are (variables turned into constants).
"""

import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from utils.examples import lfw

tf1 = tf.compat.v1
CHANNELS = 16  # enough that a probe is never masked by every channel at once


def conv_bn_relu(net, scope, kernel, phase_train, rng, stride=1, padding='SAME'):
    """A slim-style convolution: `<scope>/convolution`, `<scope>/BatchNorm/...` switched by `phase_train`,
    `<scope>/Relu`."""
    with tf1.variable_scope(scope):
        fan_in = kernel * kernel * int(net.shape[-1])
        weights = tf1.get_variable('weights', initializer=rng.normal(
            0, np.sqrt(2 / fan_in), (kernel, kernel, int(net.shape[-1]), CHANNELS)).astype(np.float32))
        convolution = tf.nn.conv2d(net, weights, stride, padding, name='convolution')
        with tf1.variable_scope('BatchNorm'):
            beta = tf1.get_variable('beta', initializer=rng.normal(0, 0.1, CHANNELS).astype(np.float32))
            moving_mean = tf1.get_variable('moving_mean', trainable=False,
                                           initializer=rng.normal(0, 0.1, CHANNELS).astype(np.float32))
            moving_variance = tf1.get_variable('moving_variance', trainable=False,
                                               initializer=rng.uniform(0.5, 2, CHANNELS).astype(np.float32))
            mean, variance = tf.cond(phase_train, lambda: tf.nn.moments(convolution, [0, 1, 2]),
                                     lambda: (tf.identity(moving_mean), tf.identity(moving_variance)))
            normalised = tf.nn.batch_normalization(convolution, mean, variance, beta, None, 1e-3)
        return tf.nn.relu(normalised, name='Relu')


def block35(net, scope, phase_train, rng):
    """Inception-ResNet-A: three branches of 1x1 and 3x3 convolutions, concatenated, added to the input."""
    with tf1.variable_scope(scope):
        branch_0 = conv_bn_relu(net, 'Branch_0/Conv2d_1x1', 1, phase_train, rng)
        branch_1 = conv_bn_relu(net, 'Branch_1/Conv2d_0a_1x1', 1, phase_train, rng)
        branch_1 = conv_bn_relu(branch_1, 'Branch_1/Conv2d_0b_3x3', 3, phase_train, rng)
        branch_2 = conv_bn_relu(net, 'Branch_2/Conv2d_0a_1x1', 1, phase_train, rng)
        branch_2 = conv_bn_relu(branch_2, 'Branch_2/Conv2d_0b_3x3', 3, phase_train, rng)
        branch_2 = conv_bn_relu(branch_2, 'Branch_2/Conv2d_0c_3x3', 3, phase_train, rng)
        mixed = tf.concat([branch_0, branch_1, branch_2], 3, name='concat')
        weights = rng.normal(0, np.sqrt(1 / (3 * CHANNELS)), (1, 1, 3 * CHANNELS, CHANNELS)).astype(np.float32)
        up = tf.nn.conv2d(mixed, tf1.get_variable('Conv2d_1x1/weights', initializer=weights), 1, 'SAME')
        return tf.nn.relu(tf.add(net, 0.17 * up, name='add'), name='Relu')


def reduction_a(net, phase_train, rng):
    """Reduction-A (`Mixed_6a`): a strided 3x3, a 1x1-3x3-strided 3x3 tower and a max-pool, concatenated."""
    with tf1.variable_scope('Mixed_6a'):
        branch_0 = conv_bn_relu(net, 'Branch_0/Conv2d_1a_3x3', 3, phase_train, rng, 2, 'VALID')
        branch_1 = conv_bn_relu(net, 'Branch_1/Conv2d_0a_1x1', 1, phase_train, rng)
        branch_1 = conv_bn_relu(branch_1, 'Branch_1/Conv2d_0b_3x3', 3, phase_train, rng)
        branch_1 = conv_bn_relu(branch_1, 'Branch_1/Conv2d_1a_3x3', 3, phase_train, rng, 2, 'VALID')
        branch_2 = tf.nn.max_pool2d(net, 3, 2, 'VALID', name='Branch_2/MaxPool_1a_3x3')
        return tf.concat([branch_0, branch_1, branch_2], 3, name='concat')


def build_small_facenet(seed=3):
    """The graph's ops, in a new graph; returns the graph."""
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, 160, 160, 3], name='input')
        phase_train = tf1.placeholder(tf.bool, [], name='phase_train')
        with tf1.variable_scope('InceptionResnetV1'):
            net = conv_bn_relu(images, 'Conv2d_1a_3x3', 3, phase_train, rng, 2, 'VALID')
            net = conv_bn_relu(net, 'Conv2d_2a_3x3', 3, phase_train, rng, 1, 'VALID')
            net = conv_bn_relu(net, 'Conv2d_2b_3x3', 3, phase_train, rng)
            net = tf.nn.max_pool2d(net, 3, 2, 'VALID', name='MaxPool_3a_3x3')
            net = conv_bn_relu(net, 'Conv2d_3b_1x1', 1, phase_train, rng, 1, 'VALID')
            net = conv_bn_relu(net, 'Conv2d_4a_3x3', 3, phase_train, rng, 1, 'VALID')
            net = conv_bn_relu(net, 'Conv2d_4b_3x3', 3, phase_train, rng, 2, 'VALID')
            with tf1.variable_scope('Repeat'):
                for index in (1, 2):
                    net = block35(net, f'block35_{index}', phase_train, rng)
            net = reduction_a(net, phase_train, rng)
        tf.math.l2_normalize(tf.reduce_mean(net, [1, 2]), 1, name='embeddings')
    return graph


def freeze(graph, path):
    """Writes the graph with its variables turned into constants, as FaceNet's `.pb` models are."""
    with graph.as_default(), tf1.Session(graph=graph) as session:
        session.run(tf1.global_variables_initializer())
        frozen = tf1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), ['embeddings'])
    with open(path, 'wb') as stream:
        stream.write(frozen.SerializeToString())


PEOPLE = ('Ada_Lovelace', 'Alan_Turing', 'Grace_Hopper', 'Kurt_Godel')
# Both line formats: the same person twice, two people. Every image appears in some pair.
PAIRS = '''2\t3
Ada_Lovelace\t1\t2
Alan_Turing\t1\t3
Grace_Hopper\t2\t3

Ada_Lovelace\t3\tKurt_Godel\t1
Alan_Turing\t2\tGrace_Hopper\t1
Kurt_Godel\t2\tKurt_Godel\t3
Ada_Lovelace\t1\tAlan_Turing\t1
'''
# The order in which the pairs above name their images first.
PAIRS_ORDER = [('Ada_Lovelace', 1), ('Ada_Lovelace', 2), ('Alan_Turing', 1), ('Alan_Turing', 3),
               ('Grace_Hopper', 2), ('Grace_Hopper', 3), ('Ada_Lovelace', 3), ('Kurt_Godel', 1),
               ('Alan_Turing', 2), ('Grace_Hopper', 1), ('Kurt_Godel', 2), ('Kurt_Godel', 3)]


def make_lfw(folder, size=(250, 250), seed=0):
    """An LFW-style folder: 3 images per person of PEOPLE (`Name/Name_0001.jpg`), and `pairs.txt` beside it.

    Each image is a smooth colour gradient with a few bright and dark ellipses at random places, so that
    different images make different channels fire.

    Returns:
        `(lfw_dir, pairs_path)`.
    """
    rng = np.random.default_rng(seed)
    lfw_dir = os.path.join(folder, 'lfw')
    ys, xs = np.mgrid[0:size[0], 0:size[1]] / max(size)
    for name in PEOPLE:
        os.makedirs(os.path.join(lfw_dir, name))
        for number in (1, 2, 3):
            weights = rng.uniform(-1, 1, (3, 3))
            image = 128 + 60 * (weights[:, 0] * ys[..., None] + weights[:, 1] * xs[..., None] + weights[:, 2])
            for _ in range(6):
                centre = tuple(int(value) for value in rng.integers(20, min(size) - 20, 2))
                axes = tuple(int(value) for value in rng.integers(5, 30, 2))
                color = tuple(float(value) for value in rng.integers(0, 256, 3))
                cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, color, -1)
            cv2.imwrite(lfw.image_path(lfw_dir, name, number), np.clip(image, 0, 255).astype(np.uint8))
    pairs_path = os.path.join(folder, 'pairs.txt')
    with open(pairs_path, 'w') as stream:
        stream.write(PAIRS)
    return lfw_dir, pairs_path


@pytest.fixture(scope='session')
def small_facenet_path(tmp_path_factory):
    """The small FaceNet, frozen to a `.pb` file."""
    path = str(tmp_path_factory.mktemp('facenet') / 'small_facenet.pb')
    freeze(build_small_facenet(), path)
    return path


@pytest.fixture(scope='session')
def lfw_folder(tmp_path_factory):
    """`(lfw_dir, pairs_path)` of `make_lfw`."""
    return make_lfw(str(tmp_path_factory.mktemp('lfw')))
