"""The adapter of Keras 3 model files (`.keras`, or a legacy `.h5`): a file as a `utils.core.model.Model`.

The model is loaded in Keras' safe mode (no deserialising of arbitrary Python code) and always run in
inference mode (BatchNorm with its moving statistics, Dropout off). Layers are Keras layer names; any layer
with a 4-D output `[batch, height, width, channels]` can be drawn. One forward call runs a sub-model on the
chosen layers' outputs as a compiled function. The example of the keras_*.py scripts (flags, preprocessing,
images) is `utils.examples.keras_model`.
"""

import logging
import os
import re
import zipfile

import h5py
import numpy as np

from utils.base.files import digest_files
from utils.base.layer_names import suggest_names
from utils.base.quiet_tf import tf
from utils.core import memory
from utils.core.model import Layer, Model, held_where_reached, model_id, probe_shape
from utils.data import images
from utils.models.tf_session import channel_maxima, limit_eager_threads, unit_value_tensor

import keras  # noqa: E402,I100 (after utils.base.quiet_tf: importing keras imports TensorFlow)

logger = logging.getLogger(__name__)

MODEL_EXTENSIONS = ('.keras', '.h5', '.hdf5')
# Layers that pool a whole map into one value per channel (squeeze-and-excitation gates start with one).
GLOBAL_POOLS = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
# TensorFlow's rule for a name scope, which a compiled Keras call opens for every layer.
SCOPE_NAME = re.compile(r'^[A-Za-z0-9_.\\/>-]*$')


def load_model(path, unsafe_load=False):
    """Loads a `.keras` or `.h5` model in safe mode, without its training configuration.

    Args:
        path: the model file.
        unsafe_load: allow deserialising Python code (Lambda layers); warned about.

    Returns:
        a `keras.Model`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a Keras model file, or one that needs `--unsafe_load`.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'no model file at {path}; give a Keras model saved with model.save() (.keras or '
                                '.h5).')
    if not path.lower().endswith(MODEL_EXTENSIONS):
        raise ValueError(f'{path} is not a Keras model file: --model takes a .keras file (or a legacy .h5).')
    # Keras says "File not found" for a .keras file that is not a zip archive: say what is wrong instead.
    if not (zipfile.is_zipfile(path) if path.lower().endswith('.keras') else h5py.is_hdf5(path)):
        raise ValueError(f'{path} is not a Keras model file: a .keras file is a zip archive and an .h5 file an '
                         'HDF5 file, as model.save() writes them.')
    if unsafe_load:
        logger.warning('--unsafe_load: %s may run Python code of its own while it loads; use only files you '
                       'trust.', path)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not unsafe_load)
    except Exception as error:  # Keras raises many kinds for a bad file: say which file and what to do
        message = ' '.join(str(error).split())
        if 'lambda' in message.lower():
            raise ValueError(f'{path} holds Python code (a Lambda layer) that safe mode will not run; if you '
                             'trust the file, add --unsafe_load.') from error
        if 'safe_mode' in message or 'unsafe' in message.lower():  # another layer safe mode refuses (TFSMLayer...)
            raise ValueError(f'{path} holds something that safe mode will not load ({message[:200]}); if you trust '
                             'the file, add --unsafe_load.') from error
        unknown = re.search(r"Could not locate (?:class|function) '([^']+)'", message)
        if unknown:  # the name is at the end of a long message
            raise ValueError(f'{path} uses {unknown[1]}, which is not part of Keras: the Keras scripts cannot import '
                             "your code, so they load models of Keras' own layers only.") from error
        raise ValueError(f'cannot load {path} as a Keras model: {message[:300]}') from error


def feature_layers(model):
    """The layers with a 4-D output `[batch, height, width, channels]`, in the model's order.

    Returns:
        list of `keras.layers.Layer` (input layers left out).
    """
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):  # a layer used at several places has no single output
            continue
        if len(shape) == 4:
            found.append(layer)
    return found


def describe_layers(model):
    """One line per 4-D layer, `<name> <output shape>`, for `--print_all_names`."""
    return '\n'.join(f'{layer.name} {tuple(layer.output.shape)}' for layer in feature_layers(model))


def check_image_model(model, path):
    """Refuses a model without a layer of 4-D output (a dense, Conv1D or other non-image model): nothing to draw.

    Raises:
        ValueError: saying so.
    """
    if not feature_layers(model):
        raise ValueError(f'no layer of {path} has a 4-D output [batch, height, width, channels]: the Keras scripts '
                         'draw the feature maps of image models (Conv2D and the like), and this one has none.')


def default_layers(model, count=5):
    """The last layer of each spatial resolution (where the network downsamples next), at most `count` of them
    spread over the depth. Zero-padding layers (ResNet's `conv1_pad`) and 1x1 maps (squeeze-and-excitation)
    are no resolution of their own and left out.

    Returns:
        list of layer names.
    """
    last_of_size = {}
    for layer in feature_layers(model):
        size = tuple(layer.output.shape[1:3])
        if isinstance(layer, keras.layers.ZeroPadding2D) or size == (1, 1):
            continue
        last_of_size[size] = layer.name  # later layers of a size replace earlier
    names = list(last_of_size.values())
    return images.spread(names, count)


def find_layers(model, names):
    """The Keras layers `names` refer to.

    Raises:
        ValueError: no names; a name that is not a layer (the closest names are suggested); a layer whose output
            is not 4-D.
    """
    if not names:
        raise ValueError('no layers given; name at least one with --layers (see --print_all_names).')
    by_name = {layer.name: layer for layer in model.layers}
    candidates = [layer.name for layer in feature_layers(model)]
    chosen = []
    for name in names:
        layer = by_name.get(name)
        if layer is None:
            raise ValueError(f'no layer {name!r} in the model. {suggest_names(name, by_name)} Run with '
                             '--print_all_names to list the layers.')
        if isinstance(layer, keras.layers.InputLayer):
            raise ValueError(f'layer {name} is the model\'s input: its map is the image itself. Name a layer that '
                             'computes something (see --print_all_names).')
        if name not in candidates:
            raise ValueError(f'layer {name} has output shape {_shape_text(layer)}; a layer must have a 4-D output '
                             '[batch, height, width, channels], such as a convolution (see --print_all_names).')
        calls = layer_calls(model, layer)
        if calls > 1:
            logger.warning('layer %s is called %d times in the model (its weights shared); its first call, output '
                           '%s, is the one drawn.', name, calls, _shape_text(layer))
        chosen.append(layer)
    return chosen


def _shape_text(layer):
    try:
        return str(tuple(layer.output.shape))
    except (AttributeError, ValueError):
        return 'that differs where the layer is used'


def input_size(model, image_size=None):
    """`(height, width)` of the model's input: `image_size` where given, else the model's own.

    Raises:
        ValueError: the model takes several inputs or not images, or its size is free and not given, or
            `image_size` contradicts a fixed size.
    """
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise ValueError('the model must take one batch of images [batch, height, width, channels]; its inputs '
                         f'are {[tuple(tensor.shape) for tensor in model.inputs]}.')
    fixed = tuple(model.inputs[0].shape[1:3])
    if image_size is not None:
        image_size = tuple(int(value) for value in image_size)
        if any(size is not None and size != given for size, given in zip(fixed, image_size)):
            raise ValueError(f'--image_size {image_size[0]} {image_size[1]} differs from the model\'s input size '
                             f'{fixed[0]}x{fixed[1]}; leave --image_size out.')
        if min(image_size) < 1:
            raise ValueError(f'--image_size must be positive, got {image_size[0]} {image_size[1]}.')
        return image_size
    if None in fixed:
        raise ValueError('the model takes images of any size; give the size to use with --image_size H W.')
    return fixed


def layer_calls(model, layer):
    """How many times `layer` is called in `model`'s own graph. Keras keeps no public count: its layers'
    `_inbound_nodes` also count the calls made while a Sequential model is loaded (7 for a first convolution), so the
    nodes of the model's graph are counted (a Sequential model's graph is its `_functional`)."""
    graph = getattr(model, '_functional', None) or model
    nodes = getattr(graph, '_nodes_by_depth', None)
    if nodes is None:
        return len(getattr(layer, '_inbound_nodes', ()))
    return sum(node.operation is layer for depth in nodes.values() for node in depth)


def forward_function(model, layers):
    """`forward_func(x, layers=layers)` returning the maps of `layers`, in inference mode, as numpy arrays.

    `layers` are Keras layers of `model`, or anything with the `name` of one (`utils.core.model.Layer`). One
    sub-model (compiled with `tf.function`) per set of layers asked for, made on first use.
    """
    compiled = {}

    def forward_func(batch, layers=layers):
        key = tuple(layer.name for layer in layers)  # Keras layers, or anything named after one
        if key not in compiled:
            sub_model = keras.Model(model.inputs, [model.get_layer(name).output for name in key])
            compiled[key] = compiled_call(lambda x: sub_model(x, training=False), model)
        outputs = compiled[key](tf.constant(batch, tf.float32))
        return [np.asarray(output) for output in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
    return forward_func


def gradient_function(model, layers):
    """The `gradient_func` of a `utils.core.model.Model` of `layers` (Keras layers of `model`): `GradientTape` of each
    image's unit (`utils.models.tf_session.unit_value_tensor`) with respect to the input, in inference mode; one
    compiled function per layer, made on first use."""
    compiled = {}

    def gradient_func(batch, index, units):
        if index not in compiled:
            sub_model = keras.Model(model.inputs, model.get_layer(layers[index].name).output)

            def run(inputs, units):
                with tf.GradientTape() as tape:
                    tape.watch(inputs)
                    value = tf.reduce_sum(unit_value_tensor(sub_model(inputs, training=False), units))
                return tape.gradient(value, inputs)
            compiled[index] = compiled_call(run, model)
        return np.asarray(compiled[index](tf.constant(batch, tf.float32), tf.constant(units, tf.int32)))
    return gradient_func


def maxima_forward_function(model, layers):
    """`maxima_forward_func(batch)` of a `utils.core.model.Model` of `layers` (Keras layers of `model`): every layer's
    `(feature map, maxima)`, the maxima by `utils.models.tf_session.channel_maxima`, in one compiled function."""
    sub_model = keras.Model(model.inputs, [layer.output for layer in layers])

    def run(batch):
        outputs = sub_model(batch, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return [(output, channel_maxima(output)) for output in outputs]

    run = compiled_call(run, model)

    def maxima_forward_func(batch):
        return [(np.asarray(feature_map), np.asarray(maxima))
                for feature_map, maxima in run(tf.constant(batch, tf.float32))]
    return maxima_forward_func


def open_model(path, layer_names=None, image_size=None, batch_size=16, value_range=(0.0, 255.0),
               unsafe_load=False, num_samples=None, num_channels=None):
    """A Keras model file as a `utils.core.model.Model` of some of its layers, run in inference mode.

    Args:
        path: the `.keras` or `.h5` file (`load_model`).
        layer_names: the layers to draw; None: `default_layers`.
        image_size: `(height, width)` for a model whose input size is free (`input_size`).
        batch_size: the scan's batch size (for the memory check and the probes' batch, `utils.core.model.probe_shape`).
        value_range: `(low, high)` of the values the model is fed.
        unsafe_load: see `load_model`.
        num_samples, num_channels: the run's `--num_samples` and `--num_channels`, for the memory check.

    Returns:
        the `Model`; its forward function is a compiled sub-model on the layers' outputs.

    Raises:
        FileNotFoundError, ValueError: see `load_model`, `check_image_model`, `check_channels_last`, `find_layers`,
            `input_size`, `check_image_size` and `check_memory`; a model that does not take colour images.
    """
    limit_eager_threads()
    model = load_model(path, unsafe_load)
    check_image_model(model, path)
    check_channels_last(model, path)
    unscoped = unscoped_layer_names(model)
    if unscoped:
        logger.warning('%d layers of %s have names that TensorFlow cannot compile (first: %r): the model runs '
                       'eagerly, slower; rename them to letters, digits and _ . - / > for speed.', len(unscoped),
                       path, unscoped[0])
    layers = find_layers(model, default_layers(model) if layer_names is None else layer_names)
    height, width = input_size(model, image_size)
    shape = tuple(model.inputs[0].shape)
    channels = int(shape[-1])
    if channels != 3 and len(shape) == 4 and shape[1] in (1, 3):
        raise ValueError(f'the model\'s input {shape} looks channels-first [batch, channels, height, width]; the '
                         'Keras scripts feed channels-last colour images [batch, height, width, 3].')
    if channels != 3:
        raise ValueError(f'the model takes {channels}-channel images; the Keras scripts feed colour images (3).')
    check_image_size(model, layers, height, width)
    check_memory(model, layers, height, width, batch_size, num_samples, num_channels)
    digest = digest_files([path])
    # Squeeze-and-excitation and other global paths: probes hold the global poolings at fixed values.
    pools = [layer for layer in model.layers if isinstance(layer, GLOBAL_POOLS)]
    local_layers = [index for index, layer in enumerate(layers) if layer not in pools and pools_reaching(model, layer)]
    forward_func, local_forward_func = forward_function(model, layers), None
    if local_layers:
        held = held_global_pools(model, pools, (height, width), value_range)
        local_forward_func = held_where_reached(forward_function(held, layers), forward_func,
                                                {pool.name for pool in pools}, layers)
    return Model(forward_func, [Layer(layer.name, int(layer.output.shape[-1])) for layer in layers],
                 probe_shape(batch_size, height, width, channels), value_range, model_id('keras', [path]),
                 fingerprint=f'keras file sha256:{digest}',
                 maxima_forward_func=maxima_forward_function(model, layers),
                 any_batch_size=True, local_forward_func=local_forward_func, local_layers=local_layers,
                 gradient_func=gradient_function(model, layers))


class HeldValue(keras.layers.Layer):
    """A global pooling's output held at one value for every image of the batch (`held_global_pools`)."""

    def __init__(self, value, **kwargs):
        super().__init__(**kwargs)
        self.value = np.asarray(value, np.float32)

    def call(self, inputs):
        return keras.ops.repeat(keras.ops.convert_to_tensor(self.value), keras.ops.shape(inputs)[0], axis=0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.value.shape[1:])


def pools_reaching(model, layer):
    """The global poolings (`GLOBAL_POOLS`) of `model` that the output of `layer` is computed from."""
    names = {other.name for other in keras.Model(model.inputs, layer.output).layers}
    return [other for other in model.layers if isinstance(other, GLOBAL_POOLS) and other.name in names]


def held_global_pools(model, pools, image_size, value_range):
    """A copy of `model` (same weights) whose global poolings `pools` output their values on a mid-range grey
    image whatever the input: probes of it find the pixels that reach a unit other than through a global pooling,
    the local receptive field.
    """
    grey = np.full((1, *image_size, int(model.inputs[0].shape[-1])), (value_range[0] + value_range[1]) / 2,
                   np.float32)
    values = keras.Model(model.inputs[0], [pool.output for pool in pools])(grey, training=False)
    held = {pool.name: np.asarray(value) for pool, value in zip(pools, values if len(pools) > 1 else [values])}

    def clone(layer):
        if layer.name in held:
            return HeldValue(held[layer.name], name=layer.name)
        return layer.__class__.from_config(layer.get_config())
    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if layer.weights:
            copy.get_layer(layer.name).set_weights(layer.get_weights())
    return copy


def check_channels_last(model, path):
    """Refuses a model with a layer (nested models' included) that works on channels-first maps `[batch, channels,
    height, width]`: TensorFlow runs none of them on a CPU, and the scripts read maps channels last.

    Raises:
        ValueError: naming the first such layer.
    """
    for layer in all_layers(model):
        if getattr(layer, 'data_format', None) == 'channels_first':
            raise ValueError(f'layer {layer.name} of {path} works on channels-first maps (data_format='
                             '"channels_first"), which TensorFlow cannot run on a CPU and the Keras scripts do not '
                             'read; save the model with channels_last layers (the Keras default).')


def all_layers(model):
    """Every layer of a Keras model, those of the models nested in it included, outermost first."""
    layers, pending = [], list(model.layers)
    while pending:
        layer = pending.pop(0)
        layers.append(layer)
        pending += list(getattr(layer, 'layers', ()))
    return layers


def unscoped_layer_names(model):
    """The names of the model's layers (`all_layers`) that TensorFlow refuses as name scopes (a space, `:`, a
    quote...): a compiled call, which opens a scope per layer, fails on them."""
    return [layer.name for layer in all_layers(model) if not SCOPE_NAME.match(layer.name)]


def compiled_call(function, model):
    """`function` compiled as a `tf.function`, or as it is (run eagerly, slower) where the model has layer names
    a compiled call cannot take (`unscoped_layer_names`)."""
    return function if unscoped_layer_names(model) else tf.function(function, reduce_retracing=True)


def check_image_size(model, layers, height, width):
    """Makes sure that `layers` have feature maps on `height x width` images (a free-size model can be given too
    small a `--image_size` for its kernels), without running the model.

    Raises:
        ValueError: a layer's input would be smaller than its kernel or pool.
    """
    sub_model = keras.Model(model.inputs[0], [layer.output for layer in layers])
    try:
        sub_model.compute_output_shape((None, height, width, int(model.inputs[0].shape[-1])))
    except ValueError as error:
        raise ValueError(f'--image_size {height} {width} is too small for the layers: '
                         f'{" ".join(str(error).split())}') from error


def check_memory(model, layers, height, width, batch_size, num_samples=None, num_channels=None):
    """Refuses a run that cannot fit in memory (`utils.core.memory`), from the shapes Keras infers on `height x width`
    images for every layer with one 4-D output (float32), before the model runs.

    Raises:
        ValueError: see `utils.core.memory.check_memory`.
    """
    maps = []
    for layer in model.layers:
        try:
            if len(layer.output.shape) == 4:
                maps.append(layer.output)
        except (AttributeError, ValueError):  # a layer with several outputs, or called more than once
            continue
    layer_shapes = _image_shapes(model, [layer.output for layer in layers], height, width)
    try:
        shapes = _image_shapes(model, maps, height, width)
    except ValueError:  # a layer past the chosen ones that this image size is too small for: it never runs
        shapes = layer_shapes
    largest = max((4 * int(np.prod(shape)) for shape in shapes), default=0)
    needed = memory.needed_bytes(batch_size, (height, width, int(model.inputs[0].shape[-1])), largest, layer_shapes,
                                 num_samples, num_channels)
    free_size = None in tuple(model.inputs[0].shape[1:3])  # only then can --image_size lower what is needed
    memory.check_memory(needed, image_size_flag='--image_size' if free_size else None)


def _image_shapes(model, tensors, height, width):
    """The shapes of `tensors` (outputs of `model`'s layers) for one `height x width` image, without the batch."""
    if not tensors:
        return []
    shapes = keras.Model(model.inputs[0], list(tensors)).compute_output_shape(
        (None, height, width, int(model.inputs[0].shape[-1])))
    if not isinstance(shapes[0], (tuple, list)):  # one shape, not a list of them
        shapes = [shapes]
    return [tuple(int(size) for size in shape[1:]) for shape in shapes]
