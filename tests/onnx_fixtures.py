"""Small ONNX models written with `onnx.helper` (no exporter), for `utils/models/onnx_file.py` and the onnx_*.py
scripts, with the receptive fields their graphs give in closed form (`utils.benchmarks.closed_form`).

The network (`build_network`; float32 weights from a seeded RNG, opset 13, shapes inferred into the file):

    images -> conv1 (3x3, pads 1) -> relu1 -> pool1 (MaxPool 2x2, stride 2)
    pool1 -> conv2 (3x3, dilation 2, pads 2) -> relu2 --+
    pool1 -> side (5x5, pads 3 before, 1 after) --------+-> residual (Add)
    residual -> conv3 (3x3, stride 2, pads 1) -> relu3 ----------+
    residual -> shifted (3x3, stride 2, pads 2 before, 0 after) -+-> merged (Concat on channels)
    merged -> pooled (ReduceMean over height and width, 2-D) -> scores (Gemm)

Every map is NCHW, as ONNX's Conv and MaxPool compute them. The NHWC variant takes `[N, H, W, 3]` images and
transposes them first (`to_nchw`, perm 0,3,1,2); it also transposes `merged` back (`merged_nhwc`, perm 0,2,3,1),
the one NHWC map of the file, which `pooled` reads. Batch, height and width are free (named dims) or fixed.
`shifted` is a convolution, not a 3x3 max-pool: probing missed an edge line of such a pool over the residual sum
(a line seldom the window's maximum), and the closed form is checked against probing too.

ONNX pads are explicit, PyTorch's: conv3 pads one line before on either side, where TensorFlow's SAME pads none
before on an even length (and one after). The closed form here pads explicitly (`padded_reads`): lines of zeros
before and after, then a VALID layer; `test_onnx_fixtures.py` checks that it equals SAME where the pads are
SAME's (conv1, conv2), differs for conv3, and agrees with onnxruntime and with probing.

Files that are not what the adapter takes (`onnx_bad_files`): random bytes, a truncated model, two inputs, integer
inputs, a grey input, no 4-D tensor, an opset onnxruntime does not run, a TensorFlow GraphDef.
"""

import collections
import functools
import os

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from recfield import ReceptiveField
from utils.benchmarks.closed_form import boxes_from_dependencies, chain_dependencies
from utils.core.model import Layer, Model
from utils.pictures.drawing import describe_layer

OPSET = 13
IMAGE_SIZE = (24, 32)  # height, width of the fixed-size networks: not square, so that a swapped axis shows
FREE_SIZE = (20, 28)  # the image size the tests give the free-size networks
INPUT_NAME = 'images'

# The layers' arithmetic, shared by the graph and its closed form; pads are (before, after), the same on both axes.
CONV1 = dict(kernel=3, pads=(1, 1))
POOL1 = dict(kernel=2, stride=2)
CONV2 = dict(kernel=3, dilation=2, pads=(2, 2))
SIDE = dict(kernel=5, pads=(3, 1))
CONV3 = dict(kernel=3, stride=2, pads=(1, 1))
SHIFTED = dict(kernel=3, stride=2, pads=(2, 0))

# Channels of every 4-D tensor computed from the input, in graph order.
NCHW_CHANNELS = {'conv1': 4, 'relu1': 4, 'pool1': 4, 'conv2': 4, 'relu2': 4, 'side': 4, 'residual': 4, 'conv3': 5,
                 'relu3': 5, 'shifted': 4, 'merged': 9}
NHWC_CHANNELS = {'to_nchw': 3, **NCHW_CHANNELS, 'merged_nhwc': 9}
LAYERS = ['relu1', 'pool1', 'relu2', 'residual', 'relu3', 'shifted', 'merged']  # what the tests measure
NHWC_LAYERS = LAYERS + ['merged_nhwc']
NOT_4D = ['pooled', 'scores']  # tensors of the graph that are no feature maps

OnnxNetwork = collections.namedtuple('OnnxNetwork', 'path layout batch image_size channels')
OnnxNetwork.__doc__ = """A saved network: its `path`, input `layout` ('NCHW' or 'NHWC'), fixed `batch` (None: free),
`image_size` `(height, width)` of the file (None: free) and `channels` of its 4-D tensors, by name in graph order."""


def conv_attributes(kernel, stride=1, dilation=1, pads=(0, 0)):
    """ONNX Conv/MaxPool attributes of a square layer whose pads are `(before, after)` on both axes."""
    return dict(kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pads[0], pads[0], pads[1], pads[1]],
                **({'dilations': [dilation, dilation]} if dilation != 1 else {}))


def conv_node(rng, initializers, name, source, in_channels, out_channels, spec):
    """A Conv node `source -> name` with seeded He-normal weights and a small positive bias (few dead ReLUs),
    its initializers appended to `initializers`."""
    kernel = spec['kernel']
    weights = rng.normal(0, np.sqrt(2 / (in_channels * kernel * kernel)), (out_channels, in_channels, kernel, kernel))
    initializers += [numpy_helper.from_array(weights.astype(np.float32), f'{name}_w'),
                     numpy_helper.from_array(rng.uniform(0.05, 0.2, out_channels).astype(np.float32), f'{name}_b')]
    return helper.make_node('Conv', [source, f'{name}_w', f'{name}_b'], [name], name=name, **conv_attributes(**spec))


def image_dims(layout, batch, image_size):
    """The input's dims: ints where fixed, dim names where free."""
    height, width = image_size if image_size else ('height', 'width')
    batch = 'batch' if batch is None else batch
    return [batch, 3, height, width] if layout == 'NCHW' else [batch, height, width, 3]


def finished_model(graph, opset=OPSET):
    """A `ModelProto` of `graph` at `opset`, its intermediate shapes inferred into `value_info`, checked."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)], producer_name='onnx_fixtures')
    model.ir_version = min(model.ir_version, 8)  # what onnxruntime reads, whatever onnx writes by default
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def build_network(path, layout='NCHW', batch=None, image_size=IMAGE_SIZE, seed=0):
    """Saves the network of the module docstring to `path`.

    Args:
        layout: 'NCHW' (input `[N, 3, H, W]`) or 'NHWC' (input `[N, H, W, 3]`, transposed first, and `merged_nhwc`).
        batch: the fixed batch size N, or None (free).
        image_size: `(height, width)`, or None (free).
        seed: of the weights.

    Returns:
        its `OnnxNetwork`.
    """
    rng = np.random.default_rng(seed)
    initializers, nodes = [], []
    source = INPUT_NAME
    if layout == 'NHWC':
        nodes.append(helper.make_node('Transpose', [source], ['to_nchw'], name='to_nchw', perm=[0, 3, 1, 2]))
        source = 'to_nchw'
    nodes += [
        conv_node(rng, initializers, 'conv1', source, 3, 4, CONV1),
        helper.make_node('Relu', ['conv1'], ['relu1'], name='relu1'),
        helper.make_node('MaxPool', ['relu1'], ['pool1'], name='pool1', **conv_attributes(**POOL1)),
        conv_node(rng, initializers, 'conv2', 'pool1', 4, 4, CONV2),
        helper.make_node('Relu', ['conv2'], ['relu2'], name='relu2'),
        conv_node(rng, initializers, 'side', 'pool1', 4, 4, SIDE),
        helper.make_node('Add', ['relu2', 'side'], ['residual'], name='residual'),
        conv_node(rng, initializers, 'conv3', 'residual', 4, 5, CONV3),
        helper.make_node('Relu', ['conv3'], ['relu3'], name='relu3'),
        conv_node(rng, initializers, 'shifted', 'residual', 4, 4, SHIFTED),
        helper.make_node('Concat', ['relu3', 'shifted'], ['merged'], name='merged', axis=1),
    ]
    reduced, axes = 'merged', [2, 3]
    if layout == 'NHWC':
        nodes.append(helper.make_node('Transpose', ['merged'], ['merged_nhwc'], name='merged_nhwc', perm=[0, 2, 3, 1]))
        reduced, axes = 'merged_nhwc', [1, 2]
    nodes.append(helper.make_node('ReduceMean', [reduced], ['pooled'], name='pooled', axes=axes, keepdims=0))
    initializers += [numpy_helper.from_array(rng.normal(0, 0.3, (9, 3)).astype(np.float32), 'scores_w'),
                     numpy_helper.from_array(np.zeros(3, np.float32), 'scores_b')]
    nodes.append(helper.make_node('Gemm', ['pooled', 'scores_w', 'scores_b'], ['scores'], name='scores'))
    graph = helper.make_graph(
        nodes, f'network_{layout.lower()}',
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, image_dims(layout, batch, image_size))],
        [helper.make_tensor_value_info('scores', TensorProto.FLOAT, [batch if batch else 'batch', 3])], initializers)
    onnx.save(finished_model(graph), str(path))
    return OnnxNetwork(str(path), layout, batch, tuple(image_size) if image_size else None,
                       NHWC_CHANNELS if layout == 'NHWC' else NCHW_CHANNELS)


# name: (layout, fixed batch, image size of the file); the networks `onnx_networks` saves.
NETWORKS = {
    'nchw': ('NCHW', None, IMAGE_SIZE),
    'nchw_free_size': ('NCHW', None, None),
    'nhwc': ('NHWC', None, IMAGE_SIZE),
    'nhwc_free_size': ('NHWC', None, None),
    'fixed_batch': ('NCHW', 1, IMAGE_SIZE),
    'fixed_batch_2': ('NCHW', 2, IMAGE_SIZE),
}


@pytest.fixture(scope='session')
def onnx_networks(tmp_path_factory):
    """`{name: OnnxNetwork}` of `NETWORKS`, saved once per session (the same seed: the same weights)."""
    folder = tmp_path_factory.mktemp('onnx_networks')
    return {name: build_network(folder / f'{name}.onnx', layout, batch, image_size)
            for name, (layout, batch, image_size) in NETWORKS.items()}


def probe_image_size(network):
    """The `(height, width)` a network is run at: its own, or `FREE_SIZE` where free (`--image_size`)."""
    return network.image_size or FREE_SIZE


# -- files that are not what the adapter takes -------------------------------------------------------------------

def build_squeeze_excitation(path, pooling='GlobalAveragePool', size=24):
    """conv 3x3 `relu1` -> [global pooling `pooled` -> 1x1 conv, sigmoid `gate`] -> `scaled` = relu1 x gate -> conv
    3x3 `relu2`, NCHW with a free batch, saved at `path`. `pooling` is `GlobalAveragePool`, or `ReduceMean` over
    the spatial axes, as `x.mean((2, 3), keepdim=True)` exports (`ReduceMean18`: at opset 18, the axes an input).
    Other than through the pooling, 3x3 and 5x5 windows reach `scaled` and `relu2`."""
    rng, initializers, opset = np.random.default_rng(5), [], OPSET
    if pooling == 'GlobalAveragePool':
        pool = helper.make_node('GlobalAveragePool', ['relu1'], ['pooled'])
    elif pooling == 'ReduceMean':
        pool = helper.make_node('ReduceMean', ['relu1'], ['pooled'], axes=[2, 3], keepdims=1)
    else:  # 'ReduceMean18': from opset 18 the axes are an input
        opset = 18
        initializers.append(numpy_helper.from_array(np.array([-2, -1], np.int64), 'spatial_axes'))
        pool = helper.make_node('ReduceMean', ['relu1', 'spatial_axes'], ['pooled'], keepdims=1)
    nodes = [conv_node(rng, initializers, 'conv1', INPUT_NAME, 3, 4, dict(kernel=3, pads=(1, 1))),
             helper.make_node('Relu', ['conv1'], ['relu1']), pool,
             conv_node(rng, initializers, 'squeeze', 'pooled', 4, 4, dict(kernel=1)),
             helper.make_node('Sigmoid', ['squeeze'], ['gate']),
             helper.make_node('Mul', ['relu1', 'gate'], ['scaled']),
             conv_node(rng, initializers, 'conv2', 'scaled', 4, 4, dict(kernel=3, pads=(1, 1))),
             helper.make_node('Relu', ['conv2'], ['relu2'])]
    graph = small_graph([helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, image_dims('NCHW', None,
                                                                                                 (size, size)))],
                        nodes, [helper.make_tensor_value_info('relu2', TensorProto.FLOAT, None)], initializers)
    onnx.save(finished_model(graph, opset), path)
    return path


def small_graph(inputs, nodes, outputs, initializers=()):
    """A graph of `nodes` with value infos `inputs` and `outputs`."""
    return helper.make_graph(nodes, 'small', inputs, outputs, list(initializers))


def small_conv(source, out_channels=2, in_channels=3, name='conv'):
    """A 3x3 Conv node `source -> name` and its seeded weights (no bias)."""
    weights = np.random.default_rng(7).normal(0, 0.3, (out_channels, in_channels, 3, 3)).astype(np.float32)
    return helper.make_node('Conv', [source, f'{name}_w'], [name], kernel_shape=[3, 3]), \
        numpy_helper.from_array(weights, f'{name}_w')


def two_inputs_model():
    """Images and a float scale: `conv(images) * scale`."""
    conv, weights = small_conv('images')
    return finished_model(small_graph(
        [helper.make_tensor_value_info('images', TensorProto.FLOAT, ['batch', 3, 16, 16]),
         helper.make_tensor_value_info('scale', TensorProto.FLOAT, [1])],
        [conv, helper.make_node('Mul', ['conv', 'scale'], ['scaled'])],
        [helper.make_tensor_value_info('scaled', TensorProto.FLOAT, None)], [weights]))


def integer_input_model(data_type):
    """Integer images `[N, 3, 16, 16]` (`data_type`: TensorProto.UINT8, INT64), cast to float, convolved."""
    conv, weights = small_conv('as_float')
    return finished_model(small_graph(
        [helper.make_tensor_value_info('images', data_type, ['batch', 3, 16, 16])],
        [helper.make_node('Cast', ['images'], ['as_float'], to=TensorProto.FLOAT), conv],
        [helper.make_tensor_value_info('conv', TensorProto.FLOAT, None)], [weights]))


def grey_input_model():
    """Grey images `[N, 1, 16, 16]`: a 4-D float input, but of neither colour layout."""
    conv, weights = small_conv('images', in_channels=1)
    return finished_model(small_graph(
        [helper.make_tensor_value_info('images', TensorProto.FLOAT, ['batch', 1, 16, 16])], [conv],
        [helper.make_tensor_value_info('conv', TensorProto.FLOAT, None)], [weights]))


def matmul_model():
    """No 4-D tensor at all: `relu(x @ w)` on `[N, 10]`."""
    weights = numpy_helper.from_array(np.random.default_rng(8).normal(0, 0.3, (10, 4)).astype(np.float32), 'w')
    return finished_model(small_graph(
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['batch', 10])],
        [helper.make_node('MatMul', ['x', 'w'], ['product']), helper.make_node('Relu', ['product'], ['y'])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)], [weights]))


def future_opset_model():
    """A good colour-image model whose opset_import says 99: onnxruntime refuses it (no checker: onnx would too)."""
    conv, weights = small_conv('images')
    model = helper.make_model(small_graph(
        [helper.make_tensor_value_info('images', TensorProto.FLOAT, ['batch', 3, 16, 16])], [conv],
        [helper.make_tensor_value_info('conv', TensorProto.FLOAT, None)], [weights]),
        opset_imports=[helper.make_opsetid('', 99)])
    model.ir_version = 8
    return model


def tensorflow_graph_def_bytes():
    """A TensorFlow 1 GraphDef (an image placeholder, a convolution and a ReLU), serialised as a frozen `.pb`."""
    from utils.base.quiet_tf import tf

    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 16, 16, 3], name='images')
        kernel = tf.constant(np.random.default_rng(9).normal(0, 0.3, (3, 3, 3, 2)).astype(np.float32))
        tf.nn.relu(tf.nn.conv2d(images, kernel, 1, 'SAME'), name='relu')
    return graph.as_graph_def().SerializeToString()


def write_bytes(path, content):
    """Writes `content` to `path`; returns the path as a string."""
    with open(path, 'wb') as stream:
        stream.write(content)
    return str(path)


# The files of `onnx_bad_files`, each refused by load_model with a one-line ValueError.
BAD_FILES = ['random_bytes', 'truncated', 'two_inputs', 'uint8_input', 'int64_input', 'grey_input', 'no_4d_tensor',
             'opset_99', 'tensorflow_pb']


@pytest.fixture(scope='session')
def onnx_bad_files(tmp_path_factory, onnx_networks):
    """`{case: path}` of `BAD_FILES` (and `missing`, a path with no file)."""
    folder = tmp_path_factory.mktemp('onnx_bad_files')
    with open(onnx_networks['nchw'].path, 'rb') as stream:
        good = stream.read()
    paths = {
        'random_bytes': write_bytes(folder / 'random.onnx', np.random.default_rng(10).bytes(2000)),
        # cut inside the weights: a protobuf parser that stops there cannot take it for a shorter model
        'truncated': write_bytes(folder / 'truncated.onnx', good[:len(good) * 2 // 3]),
        'tensorflow_pb': write_bytes(folder / 'frozen.pb', tensorflow_graph_def_bytes()),
        'missing': str(folder / 'missing.onnx'),
    }
    models = {'two_inputs': two_inputs_model(), 'uint8_input': integer_input_model(TensorProto.UINT8),
              'int64_input': integer_input_model(TensorProto.INT64), 'grey_input': grey_input_model(),
              'no_4d_tensor': matmul_model(), 'opset_99': future_opset_model()}
    for case, model in models.items():
        paths[case] = str(folder / f'{case}.onnx')
        onnx.save(model, paths[case])
    assert sorted(paths) == sorted(BAD_FILES + ['missing'])
    return paths


# -- onnxruntime's own outputs -----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=32)
def runtime_session(path, names):
    """An onnxruntime session (one thread) of the model at `path` whose outputs are the tensors `names` (a tuple);
    one per path and names."""
    model = onnx.load(path)
    known = {info.name: info for info in list(model.graph.value_info) + list(model.graph.output)}
    del model.graph.output[:]
    model.graph.output.extend([known[name] for name in names])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=['CPUExecutionProvider'])


def tensor_layout(network, name):
    """'NHWC' or 'NCHW': the layout of tensor `name` of `network` (only `merged_nhwc` and the NHWC input are
    NHWC)."""
    return 'NHWC' if name == 'merged_nhwc' else 'NCHW'


def runtime_maps(network, names, batch_nhwc):
    """onnxruntime's maps of the tensors `names` for an NHWC float batch, each transposed to NHWC `[batch, h, w, c]`.

    The batch is fed in the input's layout, in runs of the network's fixed batch size where it has one (the last
    run filled with zeros, their maps dropped).
    """
    names = tuple(names)
    session = runtime_session(network.path, names)
    batch_nhwc = np.asarray(batch_nhwc, np.float32)
    fed = batch_nhwc if network.layout == 'NHWC' else batch_nhwc.transpose(0, 3, 1, 2)
    step = network.batch or len(fed)
    runs = []
    for start in range(0, len(fed), step):
        part = fed[start:start + step]
        padded = np.concatenate([part, np.zeros((step - len(part), *part.shape[1:]), np.float32)])
        runs.append([output[:len(part)] for output in session.run(names, {INPUT_NAME: padded})])
    maps = [np.concatenate(outputs) for outputs in zip(*runs)]
    return [output if tensor_layout(network, name) == 'NHWC' else output.transpose(0, 2, 3, 1)
            for name, output in zip(names, maps)]


def runtime_model(network, names, batch_size=4, value_range=(0.0, 1.0)):
    """A `utils.core.model.Model` of the tensors `names` run by onnxruntime (`runtime_maps`): what the adapter must
    match, built without it, to check the fixtures' closed form against probing."""
    def forward_func(batch, layers=None):
        chosen = [layer.name for layer in layers] if layers is not None else names
        return runtime_maps(network, chosen, batch)
    height, width = probe_image_size(network)
    return Model(forward_func, [Layer(name, network.channels[name]) for name in names],
                 [network.batch or batch_size, height, width, 3], value_range, any_batch_size=network.batch is None)


# -- the closed form ---------------------------------------------------------------------------------------------

def padded_reads(reads, kernel, stride=1, dilation=1, pads=(0, 0)):
    """bool `[out, in]` dependencies along one axis of an ONNX Conv or MaxPool with explicit `pads` (before,
    after) reading a map of dependencies `reads`: padding lines read no input, then the layer is VALID."""
    padded = np.concatenate([np.zeros((pads[0], reads.shape[1]), bool), reads,
                             np.zeros((pads[1], reads.shape[1]), bool)])
    return chain_dependencies(len(padded), [dict(kernel=kernel, stride=stride, dilation=dilation, padding='VALID')],
                              padded)


def network_reads(length):
    """bool `[out, length]` dependencies along one axis, by 4-D tensor of the network (NHWC variant's included)."""
    image = np.eye(length, dtype=bool)
    conv1 = padded_reads(image, **CONV1)
    pool1 = padded_reads(conv1, **POOL1)
    conv2 = padded_reads(pool1, **CONV2)
    side = padded_reads(pool1, **SIDE)
    residual = conv2 | side  # the Add: the union of its inputs' dependencies
    conv3 = padded_reads(residual, **CONV3)
    shifted = padded_reads(residual, **SHIFTED)
    merged = conv3 | shifted  # the Concat: each pixel's channels come from both branches
    return {'to_nchw': image, 'conv1': conv1, 'relu1': conv1, 'pool1': pool1, 'conv2': conv2, 'relu2': conv2,
            'side': side, 'residual': residual, 'conv3': conv3, 'relu3': conv3, 'shifted': shifted, 'merged': merged,
            'merged_nhwc': merged}


def same_padding_reads(length):
    """The same as `network_reads` for the chain conv1, pool1, conv2, conv3 with TensorFlow's SAME and VALID instead
    of explicit pads: equal where the ONNX pads are SAME's (conv1, conv2), not for conv3 on an even length."""
    conv1 = chain_dependencies(length, [dict(kernel=3)])
    pool1 = chain_dependencies(length, [dict(kernel=2, stride=2, padding='VALID')], conv1)
    conv2 = chain_dependencies(length, [dict(kernel=3, dilation=2)], pool1)
    conv3 = chain_dependencies(length, [dict(kernel=3, stride=2)], conv2)
    return {'conv1': conv1, 'pool1': pool1, 'conv2': conv2, 'conv3': conv3}


# Size, stride and padding per layer, worked out by hand (google-research convention). relu1 reads image lines
# y-1..y+1; pool1 (2y-1..2y+2) 4 wide; relu2 reads pool1 p-2, p, p+2: image 2p-5..2p+6, 12 wide; side reads pool1
# p-3..p+1: 2p-7..2p+4; residual: 2p-7..2p+6, 14; relu3 reads residual 2q-1..2q+1: 4q-9..4q+8, 18; shifted reads
# residual 2q-2..2q: 4q-11..4q+6, 18; merged: 4q-11..4q+8, 20.
GEOMETRY = {'relu1': (3, 1, 1), 'pool1': (4, 2, 1), 'relu2': (12, 2, 5), 'residual': (14, 2, 7),
            'relu3': (18, 4, 9), 'shifted': (18, 4, 11), 'merged': (20, 4, 11), 'merged_nhwc': (20, 4, 11)}


def closed_form_fields(height, width):
    """`{tensor: recfield.ReceptiveField}` of the closed form on `height x width` images (`to_nchw` excluded: the
    image itself)."""
    rows, columns = network_reads(height), network_reads(width)
    return {name: ReceptiveField.from_arrays(boxes_from_dependencies(rows[name], columns[name]), (height, width))
            for name in rows if name != 'to_nchw'}


def closed_form_lines(fields, channels, names):
    """The lines the scripts print for the tensors `names`, from closed-form fields and the channel counts."""
    return [describe_layer(name, fields[name], channels[name]) for name in names]


def expected_feature_tensors(network):
    """`[(name, shape)]` that `onnx_file.feature_tensors` must list for `network`: every 4-D tensor in graph order,
    in the file's layout, None for its free dims."""
    listed = []
    for name, channels in network.channels.items():
        if network.image_size:
            height, width = (len(network_reads(size)[name]) for size in network.image_size)
        else:
            height = width = None
        shape = (network.batch, height, width, channels) if tensor_layout(network, name) == 'NHWC' else (
            network.batch, channels, height, width)
        listed.append((name, shape))
    return listed


def write_images(folder, count=10, size=IMAGE_SIZE):
    """Fills `folder` with `count` random colour images, PNG and JPEG, around `size` (some larger, some smaller,
    one in a subfolder).

    Returns:
        their names under `folder`, sorted (as the scripts name them).
    """
    rng = np.random.default_rng(11)
    os.makedirs(os.path.join(folder, 'more'), exist_ok=True)
    height, width = size
    shapes = [(height, width), (2 * height, width), (height, 2 * width), (height + 5, width + 3), (height // 2, width)]
    names = []
    for index in range(count):
        extension = 'jpg' if index % 3 == 2 else 'png'
        name = f'more/image_{index:02d}.{extension}' if index == 4 else f'image_{index:02d}.{extension}'
        image = rng.integers(0, 256, (*shapes[index % len(shapes)], 3), np.uint8)
        image[:, : image.shape[1] * index // count] //= 3  # not all alike: some darker, some brighter
        assert cv2.imwrite(os.path.join(folder, name), image)
        names.append(name)
    return sorted(names)


@pytest.fixture(scope='session')
def onnx_images_dir(tmp_path_factory):
    """A folder of 10 small PNG and JPEG images (`write_images`)."""
    folder = str(tmp_path_factory.mktemp('onnx_images'))
    write_images(folder)
    return folder
