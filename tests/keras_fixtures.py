"""Small Keras 3 models saved as users save them, for `utils/models/keras_file.py` and the keras_*.py scripts, with the
receptive fields their architectures give in closed form (`utils.benchmarks.closed_form`).

The models (`keras_models`, built and saved once per session; seeded weights):
- `sequential`: 32x32 RGB -> conv1 (3x3 SAME, ReLU) -> pool1 (2x2 max) -> conv2 (3x3 VALID) -> bn (moving
  statistics far from 0 and 1, so that training mode would differ) -> drop (Dropout 0.5) -> flat -> dense;
  saved as `.keras` and as a legacy `.h5`.
- `residual`: a functional model: stem, branch and their `Add` (residual); two stride-2 branches, `down`
  (3x3 SAME) and `shifted` (3x3 VALID after a ZeroPadding2D of 2 lines before: it looks up and left), joined
  by a `Concatenate` (merged) whose boxes are neither branch's; a dilated 3x3 convolution; pooling and dense.
- `lambda`: a convolution and a Lambda layer (Python code in the file: safe mode refuses it).
- `free_size`: input `(None, None, 3)`, two linear convolutions: it needs `--image_size`.
`mobilenet_v2_path` is `keras.applications.MobileNetV2(weights=None)` at 96x96 (random weights), built only by
the tests that need it (slow).
"""

import os

import cv2
import keras
import numpy as np
import pytest

from recfield import ReceptiveField
from utils.benchmarks.closed_form import boxes_from_dependencies, chain_dependencies
from utils.pictures.drawing import describe_layer

IMAGE_SIZE = 32  # the input size of the sequential, residual and lambda models
FREE_SIZE = (23, 32)  # the --image_size the tests give the free-size model: SAME pads an odd size otherwise
MOBILENET_SIZE = 96

# Channels of each layer with a 4-D output, by model, in the model's order.
SEQUENTIAL_CHANNELS = {'conv1': 4, 'pool1': 4, 'conv2': 6, 'bn': 6, 'drop': 6}
RESIDUAL_CHANNELS = {'stem': 4, 'branch': 4, 'residual': 4, 'shifted_pad': 4, 'down': 3, 'shifted': 3, 'merged': 6,
                     'dilated': 5}
FREE_SIZE_CHANNELS = {'conv': 3, 'conv2': 2}
LAMBDA_CHANNELS = {'conv': 2, 'double': 2}


def seeded(seed):
    """A Glorot-uniform initializer with a seed: the same weights in every session."""
    return keras.initializers.GlorotUniform(seed=seed)


def build_sequential():
    """The `sequential` model (see the module docstring)."""
    model = keras.Sequential([
        keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3)),
        keras.layers.Conv2D(4, 3, padding='same', activation='relu', kernel_initializer=seeded(1), name='conv1'),
        keras.layers.MaxPooling2D(2, name='pool1'),
        keras.layers.Conv2D(6, 3, kernel_initializer=seeded(2), name='conv2'),
        keras.layers.BatchNormalization(name='bn'),
        keras.layers.Dropout(0.5, name='drop'),
        keras.layers.Flatten(name='flat'),
        keras.layers.Dense(3, kernel_initializer=seeded(3), name='dense'),
    ], name='sequential_cnn')
    # Moving statistics unlike any batch's, so that a forward pass in training mode gives other maps.
    rng = np.random.default_rng(4)
    model.get_layer('bn').set_weights([rng.uniform(0.5, 2, 6), rng.uniform(-1, 1, 6), rng.uniform(-50, 50, 6),
                                       rng.uniform(10, 400, 6)])
    return model


def build_residual():
    """The `residual` model (see the module docstring)."""
    layers = keras.layers
    images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    stem = layers.Conv2D(4, 3, padding='same', activation='relu', kernel_initializer=seeded(11), name='stem')(images)
    branch = layers.Conv2D(4, 3, padding='same', activation='relu', kernel_initializer=seeded(12),
                           name='branch')(stem)
    residual = layers.Add(name='residual')([stem, branch])
    down = layers.Conv2D(3, 3, strides=2, padding='same', kernel_initializer=seeded(13), name='down')(residual)
    padded = layers.ZeroPadding2D(((2, 0), (2, 0)), name='shifted_pad')(residual)
    shifted = layers.Conv2D(3, 3, strides=2, kernel_initializer=seeded(14), name='shifted')(padded)
    merged = layers.Concatenate(name='merged')([down, shifted])
    dilated = layers.Conv2D(5, 3, dilation_rate=2, padding='same', activation='relu', kernel_initializer=seeded(15),
                            name='dilated')(merged)
    pooled = layers.GlobalAveragePooling2D(name='pooled')(dilated)
    scores = layers.Dense(2, kernel_initializer=seeded(16), name='scores')(pooled)
    return keras.Model(images, scores, name='residual_concat')


def build_lambda():
    """The `lambda` model: conv (3x3 SAME) and double (a Lambda layer that doubles it)."""
    return keras.Sequential([
        keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3)),
        keras.layers.Conv2D(2, 3, padding='same', kernel_initializer=seeded(21), name='conv'),
        keras.layers.Lambda(lambda x: x * 2, name='double'),
    ], name='with_lambda')


def build_free_size():
    """The `free_size` model: conv (3x3, stride 2, SAME) and conv2 (3x3 SAME) on images of any size."""
    return keras.Sequential([
        keras.Input((None, None, 3)),
        keras.layers.Conv2D(3, 3, strides=2, padding='same', kernel_initializer=seeded(31), name='conv'),
        # Linear: a ReLU with 2 channels can stay dead at the probes' references near the border, and masked
        # probes are test_recfield.py's subject, not this model's.
        keras.layers.Conv2D(2, 3, padding='same', kernel_initializer=seeded(32), name='conv2'),
    ], name='free_size')


@pytest.fixture(scope='session')
def keras_models(tmp_path_factory):
    """`{name: path}` of the saved models: `sequential` (.keras), `sequential_h5`, `residual`, `lambda`,
    `free_size`."""
    folder = tmp_path_factory.mktemp('keras_models')
    paths = {'sequential': folder / 'sequential.keras', 'sequential_h5': folder / 'sequential.h5',
             'residual': folder / 'residual.keras', 'lambda': folder / 'lambda.keras',
             'free_size': folder / 'free_size.keras'}
    sequential = build_sequential()
    sequential.save(paths['sequential'])
    sequential.save(paths['sequential_h5'])  # Keras warns that .h5 is legacy: that is the point
    build_residual().save(paths['residual'])
    build_lambda().save(paths['lambda'])
    build_free_size().save(paths['free_size'])
    return {name: str(path) for name, path in paths.items()}


@pytest.fixture(scope='session')
def mobilenet_v2_path(tmp_path_factory):
    """`keras.applications.MobileNetV2(weights=None)` at 96x96, with its classifier, saved as .keras."""
    path = tmp_path_factory.mktemp('mobilenet_v2') / 'mobilenet_v2.keras'
    keras.applications.MobileNetV2(weights=None, input_shape=(MOBILENET_SIZE, MOBILENET_SIZE, 3)).save(path)
    return str(path)


def write_photos(folder, count=10):
    """Fills `folder` with `count` random photographs of assorted sizes and shapes (one in a subfolder) and one
    text file, which the scripts skip.

    Returns:
        the photographs' names under `folder`, sorted (as the scripts name them).
    """
    rng = np.random.default_rng(5)
    os.makedirs(os.path.join(folder, 'more'), exist_ok=True)
    shapes = [(40, 50), (50, 40), (32, 32), (70, 20), (20, 70), (16, 24), (45, 45), (100, 60), (33, 90), (28, 28)]
    names = []
    for index in range(count):
        name = f'more/photo_{index:02d}.png' if index == 3 else f'photo_{index:02d}.png'
        cv2.imwrite(os.path.join(folder, name), rng.integers(0, 256, (*shapes[index % len(shapes)], 3), np.uint8))
        names.append(name)
    with open(os.path.join(folder, 'notes.txt'), 'w') as stream:
        stream.write('not a photograph')
    return sorted(names)


@pytest.fixture(scope='session')
def photos_dir(tmp_path_factory):
    """A folder of 10 photographs and a text file (`write_photos`)."""
    folder = str(tmp_path_factory.mktemp('photos'))
    write_photos(folder)
    return folder


# -- the closed form ----------------------------------------------------------------------------------------

def conv(kernel, stride=1, padding='SAME', dilation=1):
    """A layer for `utils.benchmarks.closed_form.chain_dependencies`."""
    return dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation)


def zero_padded(reads, before, after):
    """The dependencies `[out, in]` of a ZeroPadding2D along one axis: the added lines read no input."""
    return np.concatenate([np.zeros((before, reads.shape[1]), bool), reads, np.zeros((after, reads.shape[1]), bool)])


def sequential_reads(length):
    """bool `[out, length]` dependencies along one axis, by layer of the `sequential` model."""
    conv1 = chain_dependencies(length, [conv(3)])
    pool1 = chain_dependencies(length, [conv(2, 2, 'VALID')], conv1)
    conv2 = chain_dependencies(length, [conv(3, 1, 'VALID')], pool1)
    return {'conv1': conv1, 'pool1': pool1, 'conv2': conv2, 'bn': conv2, 'drop': conv2}


def residual_reads(length):
    """bool `[out, length]` dependencies along one axis, by layer of the `residual` model (but `shifted_pad`,
    whose padding lines read nothing and have no box)."""
    stem = chain_dependencies(length, [conv(3)])
    branch = chain_dependencies(length, [conv(3)], stem)
    residual = stem | branch  # the Add: the union of its inputs' dependencies
    down = chain_dependencies(length, [conv(3, 2)], residual)
    shifted = chain_dependencies(length, [conv(3, 2, 'VALID')], zero_padded(residual, 2, 0))
    merged = down | shifted  # the Concatenate: each pixel's channels come from both branches
    dilated = chain_dependencies(length, [conv(3, dilation=2)], merged)
    return {'stem': stem, 'branch': branch, 'residual': residual, 'down': down, 'shifted': shifted,
            'merged': merged, 'dilated': dilated}


# The same by hand: size, stride and padding (google-research convention), from the kernels along the path.
# shifted reads residual lines 2y-2..2y, each 5 wide from p-2: image lines 2y-4..2y+2. merged adds down's
# 2y-2..2y+4: 2y-4..2y+4. dilated reads merged y-2, y, y+2: 2y-8..2y+8.
RESIDUAL_GEOMETRY = {'stem': (3, 1, 1), 'branch': (5, 1, 2), 'residual': (5, 1, 2), 'down': (7, 2, 2),
                     'shifted': (7, 2, 4), 'merged': (9, 2, 4), 'dilated': (17, 2, 8)}


def free_size_reads(length):
    """bool `[out, length]` dependencies along one axis, by layer of the `free_size` model."""
    first = chain_dependencies(length, [conv(3, 2)])
    return {'conv': first, 'conv2': chain_dependencies(length, [conv(3)], first)}


# MobileNetV2 as keras.applications builds it: Conv1 (3x3, stride 2, SAME), then 17 inverted-residual blocks
# (expanded_conv, block_1 .. block_16): a 1x1 expansion (none in the first), a 3x3 depthwise convolution and a
# 1x1 projection. A stride-2 block pads its input with one line of zeros after (block_N_pad; correct_pad on an
# even size) and runs its depthwise convolution VALID; a stride-1 one runs it SAME. Blocks of stride 1 whose
# input and output widths agree add their input back (block_N_add). Conv_1 (1x1) and out_relu end it.
MOBILENET_V2_STRIDES = [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1]
MOBILENET_V2_RESIDUAL_BLOCKS = {2, 4, 5, 7, 8, 9, 11, 12, 14, 15}


def mobilenet_v2_reads(length):
    """bool `[out, length]` dependencies along one axis, for Conv1_relu, each block's expand_relu (blocks 1 to
    16), add (residual blocks) and depthwise_relu, and out_relu."""
    net = chain_dependencies(length, [conv(3, 2)])
    reads = {'Conv1_relu': net}
    for block, stride in enumerate(MOBILENET_V2_STRIDES):
        prefix = f'block_{block}_' if block else 'expanded_conv_'
        if block:
            reads[prefix + 'expand_relu'] = net  # 1x1: reads what its input reads
        if stride == 2:
            depthwise = chain_dependencies(length, [conv(3, 2, 'VALID')], zero_padded(net, 0, 1))
        else:
            depthwise = chain_dependencies(length, [conv(3)], net)
        reads[prefix + 'depthwise_relu'] = depthwise
        net = depthwise | net if block in MOBILENET_V2_RESIDUAL_BLOCKS else depthwise
        if block in MOBILENET_V2_RESIDUAL_BLOCKS:
            reads[prefix + 'add'] = net
    reads['out_relu'] = net
    return reads


def closed_form_fields(reads_of, height, width):
    """`{layer: recfield.ReceptiveField}` of the closed form: boxes from the dependencies along each axis.

    Args:
        reads_of: `function(length)` returning `{layer: bool [out, length]}` (`sequential_reads`, ...).
        height, width: the input size.
    """
    rows, columns = reads_of(height), reads_of(width)
    return {name: ReceptiveField.from_arrays(boxes_from_dependencies(rows[name], columns[name]), (height, width))
            for name in rows}


def closed_form_lines(fields, channels, names):
    """The lines the scripts print for the layers `names`, from closed-form fields and the channel counts."""
    return [describe_layer(name, fields[name], channels[name]) for name in names]


def build_squeeze_excitation(size=32):
    """conv 3x3 `c1` -> [global average `gap` -> 1x1 conv, sigmoid `gate`] -> `scaled` = c1 x gate -> conv 3x3 `c2`:
    through `gap` every pixel reaches `scaled` and `c2`; other than through it, 3x3 and 5x5 windows do."""
    layers = keras.layers
    inputs = keras.Input((size, size, 3))
    c1 = layers.Conv2D(6, 3, padding='same', activation='relu', kernel_initializer=seeded(21), name='c1')(inputs)
    gap = layers.GlobalAveragePooling2D(keepdims=True, name='gap')(c1)
    gate = layers.Conv2D(6, 1, activation='sigmoid', kernel_initializer=seeded(22), name='gate')(gap)
    scaled = layers.Multiply(name='scaled')([c1, gate])
    c2 = layers.Conv2D(6, 3, padding='same', activation='relu', kernel_initializer=seeded(23), name='c2')(scaled)
    return keras.Model(inputs, c2)


def keras_geometry(model, layer_name, length):
    """`(size, stride, padding)` along the rows of a Keras layer's receptive field, from the layers' arithmetic on
    square `length` inputs, not counting what reaches it through a global pooling: the local field, closed form.

    Follows convolutions, depthwise convolutions, poolings (kernel, stride, dilation, TensorFlow's SAME or VALID)
    and zero padding; a layer of several inputs takes the hull of their boxes; other layers keep their input's
    geometry. None where only global poolings reach the layer.
    """
    states = {}

    def state_of(layer):
        if layer.name in states:
            return states[layer.name]
        if isinstance(layer, keras.layers.InputLayer):
            states[layer.name] = (length, 1, 1, 0)  # (map length, size, stride, padding)
            return states[layer.name]
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        known = [state for state in (state_of(tensor._keras_history.operation) for tensor in inputs) if state]
        if not known or isinstance(layer, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)):
            states[layer.name] = None
            return None
        map_length, size, stride, padding = known[0]
        if len(known) > 1:  # Add, Multiply, Concatenate: the hull of the boxes
            padding = max(state[3] for state in known)
            size = max(state[1] - state[3] for state in known) + padding
        if isinstance(layer, keras.layers.ZeroPadding2D):
            (top, bottom), _ = layer.padding
            map_length, padding = map_length + top + bottom, padding + top * stride
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.MaxPooling2D,
                                keras.layers.AveragePooling2D)):
            kernel = (layer.kernel_size if hasattr(layer, 'kernel_size') else layer.pool_size)[0]
            step = layer.strides[0]
            dilation = getattr(layer, 'dilation_rate', (1,))[0]
            span = (kernel - 1) * dilation + 1
            if layer.padding == 'same':
                out_length = -(-map_length // step)
                before = max((out_length - 1) * step + span - map_length, 0) // 2
            else:
                out_length, before = -(-(map_length - span + 1) // step), 0
            map_length, size, padding = out_length, size + (span - 1) * stride, padding + before * stride
            stride *= step
        states[layer.name] = (map_length, size, stride, padding)
        return states[layer.name]
    state = state_of(model.get_layer(layer_name))
    return None if state is None else state[1:]
