"""The network of the classic TensorFlow CIFAR-10 tutorial, on `tensorflow.compat.v1` graphs and sessions.

Same layers, initialisation and names as the tutorial's `cifar10.inference`, so that its layer names (an
interface other tools address) and its checkpoints' variable names (`conv1/weights`, ...) still hold:

    conv1/conv1:0           5x5 convolution, 64 channels, ReLU           [batch, 24, 24, 64]
    pool1:0                 3x3 max-pool, stride 2                         [batch, 12, 12, 64]
    norm1:0                 local response normalisation
    conv2/conv2:0           5x5 convolution, 64 channels, ReLU           [batch, 12, 12, 64]
    norm2:0, pool2:0                                                       [batch, 6, 6, 64]
    local3/local3:0         fully connected, 384, ReLU
    local4/local4:0         fully connected, 192, ReLU
    softmax_linear/softmax_linear:0   the 10 logits

The network takes standardised 24x24 crops (see `utils.examples.cifar10_input`). `build_session` can use the
tutorial's own `cifar10` module instead (`--cifar10_dir`) if that still builds under `tensorflow.compat.v1`.
"""

import importlib.util
import logging
import os
import sys

from utils.base.quiet_tf import tf
from utils.core.model import Example, Model, closed_on_error, model_id
from utils.examples.cifar10_input import CROP_SIZE, NUM_CLASSES, open_dataset
from utils.models.tf_load import checkpoint_files
from utils.models.tf_session import (find_layers, held_forward_func, print_tensor_names, session_config,
                                      session_forward_funcs, session_gradient_func)

tf1 = tf.compat.v1
logger = logging.getLogger(__name__)

DEFAULT_LAYERS = ('conv1/conv1:0', 'conv2/conv2:0')
DEFAULT_TRAIN_DIR = '/tmp/cifar10_train'
# Standardised crops have zero mean and unit variance: most values lie within two standard deviations.
VALUE_RANGE = (-2.0, 2.0)
LOSSES = 'losses'  # graph collection of the loss terms, as in the tutorial
TRAIN_COMMAND = 'python utils/cifar10_train.py'


def _weights(name, shape, stddev, weight_decay=None):
    """A truncated-normal weight variable; `weight_decay` adds `weight_decay * l2_loss` to the LOSSES."""
    variable = tf1.get_variable(name, shape, tf.float32, tf1.truncated_normal_initializer(stddev=stddev))
    if weight_decay:
        tf1.add_to_collection(LOSSES, tf.multiply(tf.nn.l2_loss(variable), weight_decay, name='weight_loss'))
    return variable


def _biases(name, size, value):
    return tf1.get_variable(name, [size], tf.float32, tf1.constant_initializer(value))


def _conv_relu(inputs, name, bias):
    """5x5 SAME convolution with 64 channels and ReLU in variable scope `name`; the output is `name/name:0`."""
    with tf1.variable_scope(name) as scope:
        kernel = _weights('weights', [5, 5, int(inputs.shape[-1]), 64], stddev=5e-2)
        convolved = tf.nn.conv2d(inputs, kernel, [1, 1, 1, 1], padding='SAME')
        return tf.nn.relu(tf.nn.bias_add(convolved, _biases('biases', 64, bias)), name=scope.name)


def _fully_connected(inputs, name, size, stddev, bias, weight_decay=None, relu=True):
    """A fully connected layer in variable scope `name`; the output is `name/name:0`."""
    with tf1.variable_scope(name) as scope:
        weights = _weights('weights', [int(inputs.shape[-1]), size], stddev, weight_decay)
        pre_activation = tf.matmul(inputs, weights) + _biases('biases', size, bias)
        return tf.nn.relu(pre_activation, name=scope.name) if relu else tf.identity(pre_activation, scope.name)


def _pool(inputs, name):
    return tf.nn.max_pool2d(inputs, ksize=3, strides=2, padding='SAME', name=name)


def _norm(inputs, name):
    return tf.nn.local_response_normalization(inputs, depth_radius=4, bias=1.0, alpha=0.001 / 9.0, beta=0.75,
                                              name=name)


def inference(images):
    """Builds the network in the current graph.

    Args:
        images: float32 `[batch, 24, 24, 3]` standardised crops.

    Returns:
        the logits, float32 `[batch, 10]` (`softmax_linear/softmax_linear:0`).
    """
    conv1 = _conv_relu(images, 'conv1', bias=0.0)
    norm1 = _norm(_pool(conv1, 'pool1'), 'norm1')
    conv2 = _conv_relu(norm1, 'conv2', bias=0.1)
    pool2 = _pool(_norm(conv2, 'norm2'), 'pool2')
    flat = tf.reshape(pool2, [-1, pool2.shape[1] * pool2.shape[2] * pool2.shape[3]])
    local3 = _fully_connected(flat, 'local3', 384, stddev=0.04, bias=0.1, weight_decay=0.004)
    local4 = _fully_connected(local3, 'local4', 192, stddev=0.04, bias=0.1, weight_decay=0.004)
    return _fully_connected(local4, 'softmax_linear', NUM_CLASSES, stddev=1 / 192.0, bias=0.0, relu=False)


def loss(logits, labels):
    """The training loss: mean cross entropy plus the weight decay terms of `inference`.

    Args:
        logits: `inference`'s output.
        labels: int `[batch]` class indices.

    Returns:
        the scalar total loss (`total_loss:0`).
    """
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int64), logits=logits, name='cross_entropy_per_example')
    tf1.add_to_collection(LOSSES, tf.reduce_mean(cross_entropy, name='cross_entropy'))
    return tf.add_n(tf1.get_collection(LOSSES), name='total_loss')


def load_tutorial_inference(cifar10_dir):
    """The `inference` function of the tutorial's `cifar10.py` in `cifar10_dir`, imported with `tensorflow`
    standing for `tensorflow.compat.v1`.

    The tutorial was written for TensorFlow 1.x; its last versions use APIs that TensorFlow 2 dropped even
    from `compat.v1` (`tf.contrib`, `Dimension.value`, ...), so this usually fails, with a clear message.

    Args:
        cifar10_dir: the folder of the tutorial (`models/tutorials/image/cifar10`).

    Returns:
        a function from an images tensor to logits, building the tutorial's network; it raises ValueError when
        the network does not build.

    Raises:
        FileNotFoundError: no `cifar10.py` in the folder.
        ValueError: the module does not import under `tensorflow.compat.v1`, or has no `inference`.
    """
    path = os.path.join(cifar10_dir, 'cifar10.py')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'--cifar10_dir {cifar10_dir} has no cifar10.py; give the folder of the tutorial '
                                '(models/tutorials/image/cifar10), or drop --cifar10_dir to use this project\'s '
                                'port of the network.')
    advice = ('It was written for TensorFlow 1.x. Drop --cifar10_dir: this project\'s port of the same network '
              '(utils/examples/cifar10.py) has the same layer and variable names.')
    saved = sys.modules['tensorflow'], list(sys.path), list(sys.argv)
    sys.modules['tensorflow'] = tf1  # `import tensorflow as tf` in the tutorial gets compat.v1
    sys.path.insert(0, os.path.abspath(cifar10_dir))  # for its `import cifar10_input`
    sys.argv = [path]  # some versions parse the command line when imported
    try:
        spec = importlib.util.spec_from_file_location('cifar10_tutorial', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        flags = getattr(module, 'FLAGS', None)
        if hasattr(flags, 'is_parsed') and not flags.is_parsed():
            flags.mark_as_parsed()  # absl flags (tf.app.flags): use their defaults
    except (Exception, SystemExit) as error:
        raise ValueError(f'cannot import the tutorial\'s {path} under tensorflow.compat.v1 '
                         f'({type(error).__name__}: {error}). {advice}') from error
    finally:
        sys.modules['tensorflow'], sys.path[:], sys.argv[:] = saved
    if not callable(getattr(module, 'inference', None)):
        raise ValueError(f'{path} has no function inference(images); is it the CIFAR-10 tutorial? {advice}')

    def tutorial_inference(images):
        try:
            return module.inference(images)
        except Exception as error:
            raise ValueError(f'the tutorial\'s {path} imports but its inference() does not build under '
                             f'tensorflow.compat.v1 ({type(error).__name__}: {error}). {advice}') from error
    return tutorial_inference


def build_session(batch_size, cifar10_dir=None):
    """A session holding the network on a `[batch_size, 24, 24, 3]` placeholder; variables not yet set.

    Args:
        batch_size: the placeholder's batch dimension.
        cifar10_dir: None for this project's `inference`, or the tutorial's folder (see
            `load_tutorial_inference`).

    Returns:
        `(session, images_placeholder)`. Give the variables values with `restore_checkpoint`.

    Raises:
        FileNotFoundError, ValueError: see `load_tutorial_inference`.
    """
    build = inference if cifar10_dir is None else load_tutorial_inference(cifar10_dir)
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)  # the same fresh weights every run, for checkpoint-free receptive fields
        images = tf1.placeholder(tf.float32, [batch_size, CROP_SIZE, CROP_SIZE, 3], name='images')
        build(images)
    return tf1.Session(graph=graph, config=session_config()), images


def open_model(args, checkpoint_required=True):
    """The network with the scripts' flags (`--batch_size`, `--cifar10_dir`, `--layers`) and the latest checkpoint
    of `--train_dir`, as a `utils.core.model.Model`; close it when done.

    Args:
        args: the script's flags.
        checkpoint_required: raise if `--train_dir` has no checkpoint; False (receptive fields only): fresh
            weights, which give the same receptive fields.

    Raises:
        FileNotFoundError, ValueError: see `build_session`, `utils.models.tf_session.find_layers` and
            `restore_checkpoint`.
    """
    session, images_ph = build_session(args.batch_size, args.cifar10_dir)
    with closed_on_error(session):
        layers = find_layers(session.graph, images_ph, args)
        checkpoint = restore_checkpoint(session, args.train_dir, required=checkpoint_required)
        # forward_func: session.run of the layers; maxima_forward_func: the same with each channel's maxima.
        forward_func, maxima_forward_func = session_forward_funcs(session, images_ph, layers)
        # Probes hold any global pooling at a fixed value: local receptive fields (none in this network).
        local_forward_func, local_layers = held_forward_func(session, images_ph, layers, VALUE_RANGE,
                                                             forward_func)
        return Model(forward_func, layers, images_ph.shape.as_list(), VALUE_RANGE,
                     model_id('cifar10', checkpoint_files(checkpoint) if checkpoint else []), session.close,
                     maxima_forward_func=maxima_forward_func, local_forward_func=local_forward_func,
                     local_layers=local_layers, gradient_func=session_gradient_func(session, images_ph, layers))


def print_all_names(args):
    """`--print_all_names`: prints every tensor computed from the input, with its shape."""
    session, images_ph = build_session(args.batch_size, args.cifar10_dir)
    with session:
        print_tensor_names(session.graph, images_ph)


def restore_checkpoint(session, train_dir, required=True):
    """Restores the latest checkpoint in `train_dir`, or initialises fresh variables if there is none.

    Args:
        session: a session whose graph holds the network.
        train_dir: folder of the checkpoints (`utils/cifar10_train.py --train_dir`).
        required: raise if there is no checkpoint (instead of initialising fresh variables).

    Returns:
        the checkpoint's path, or None where fresh variables were initialised.

    Raises:
        FileNotFoundError: `required` and no checkpoint; the message gives the training command.
        ValueError: the checkpoint does not hold this network's variables, or its files are damaged (truncated,
            overwritten, half copied).
    """
    damaged = (f'delete the checkpoint files in {train_dir} and train again (`{TRAIN_COMMAND} --train_dir '
               f'{train_dir}`), or point --train_dir at a folder with a good checkpoint.')
    try:
        checkpoint = tf1.train.latest_checkpoint(train_dir) if os.path.isdir(train_dir) else None
    except (tf.errors.OpError, ValueError) as error:  # an unreadable `checkpoint` file
        raise ValueError(f'cannot read {os.path.join(train_dir, "checkpoint")}, the file naming the latest '
                         f'checkpoint ({_first_line(error)}); {damaged}') from error
    with session.graph.as_default():
        if checkpoint is None:
            if required:
                raise FileNotFoundError(
                    f'no checkpoint in {train_dir}. Train the network first: `{TRAIN_COMMAND} --train_dir '
                    f'{train_dir}` (downloads CIFAR-10; --max_steps for a shorter run), or pass --train_dir with '
                    'the folder of your checkpoints.')
            logger.info('no checkpoint in %s: using freshly initialised weights', train_dir)
            session.run(tf1.global_variables_initializer())
            return None
        if len(checkpoint_files(checkpoint)) < 2:
            raise ValueError(f'checkpoint {checkpoint} has an index but no .data-* file; {damaged}')
        saver = tf1.train.Saver(tf1.global_variables())
        try:
            saver.restore(session, checkpoint)
        except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, ValueError) as error:
            raise ValueError(f'cannot restore {checkpoint}: {_first_line(error)}. It was not written for this '
                             f'network; train one with `{TRAIN_COMMAND} --train_dir <folder>`.') from error
        except tf.errors.OpError as error:  # DataLossError, OutOfRangeError, ...: damaged files
            raise ValueError(f'checkpoint {checkpoint} is damaged ({_op_error_reason(error)}); {damaged}') from error
    logger.info('restored %s', checkpoint)
    return checkpoint


def _first_line(error):
    """The first line of an exception's message."""
    return str(error).strip().split('\n')[0]


def _op_error_reason(error):
    """What a TensorFlow op error says went wrong: its last line that is not the failing node's name."""
    lines = [line.strip() for line in error.message.splitlines()]
    reasons = [line for line in lines if line and not line.startswith(('[[', 'Node:'))]
    return reasons[-1] if reasons else type(error).__name__


def add_arguments(parser, train_dir_help):
    """Adds `--cifar10_dir` and `--train_dir`, the flags of both CIFAR-10 scripts.

    Args:
        parser: an `argparse.ArgumentParser`.
        train_dir_help: what the script does with `--train_dir`.
    """
    parser.add_argument('--cifar10_dir',
                        help='folder of the TensorFlow CIFAR-10 tutorial, to build its cifar10.inference instead of '
                             'this project\'s port (only works if it imports under tensorflow.compat.v1)')
    parser.add_argument('--train_dir', default=DEFAULT_TRAIN_DIR, help=f'{train_dir_help} (default: %(default)s)')


EXAMPLE = Example('cifar10', open_model, open_dataset)
