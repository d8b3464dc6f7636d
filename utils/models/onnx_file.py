"""The adapter of ONNX files (exported from PyTorch, Keras, TensorFlow and most frameworks): a file as a
`utils.core.model.Model`, run by onnxruntime on the CPU.

An ONNX file is data: it is loaded without custom-operator libraries, and weights stored beside it (external
data, `model.onnx.data`) are read from the model's own folder only. Layers are tensor names: any tensor computed
from the input with a 4-D shape can be drawn; the chosen ones are added to the graph's outputs (after shape
inference), so that one run gives them all.

The pipeline's batches are `[batch, height, width, 3]`. Inputs `[N, 3, H, W]` (PyTorch) are fed transposed;
inputs `[N, H, W, 3]` (TensorFlow exports) as they are. Each tensor's layout follows from the graph: ONNX
convolutions, poolings and normalisations work channels first; a Transpose of perm (0, 2, 3, 1) or (0, 3, 1, 2)
switches; other operators keep the layout of their first 4-D input. Maps are given back channels last.
"""

import logging
import os

import numpy as np
import onnx
import onnxruntime

from utils.base.files import digest_files
from utils.base.layer_names import suggest_names
from utils.base.threads import thread_counts
from utils.core import memory
from utils.core.model import Layer, Model, held_where_reached, model_id, probe_shape
from utils.data import images

logger = logging.getLogger(__name__)

NCHW, NHWC = 'NCHW', 'NHWC'
# Operators whose 4-D outputs are channels first whatever their input (the ONNX operator specification).
CHANNELS_FIRST_OPS = {'Conv', 'ConvTranspose', 'ConvInteger', 'QLinearConv', 'MaxPool', 'AveragePool', 'LpPool',
                      'GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool', 'MaxUnpool', 'BatchNormalization',
                      'InstanceNormalization', 'LRN', 'DepthToSpace', 'SpaceToDepth', 'MaxRoiPool'}
# (layout in, perm) -> layout out of a Transpose; the identity keeps it, other perms leave it unknown.
TRANSPOSES = {(NCHW, (0, 2, 3, 1)): NHWC, (NHWC, (0, 3, 1, 2)): NCHW, (NCHW, (0, 1, 2, 3)): NCHW,
              (NHWC, (0, 1, 2, 3)): NHWC}
TO_CHANNELS_LAST = {NCHW: (0, 2, 3, 1), NHWC: (0, 1, 2, 3)}
# Operators that pool a whole map into one value per channel (squeeze-and-excitation gates start with one).
GLOBAL_POOLS = {'GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool'}
SPATIAL_REDUCTIONS = {'ReduceMean', 'ReduceMax', 'ReduceSum', 'ReduceL1', 'ReduceL2', 'ReduceLogSumExp', 'ReduceMin',
                      'ReduceProd', 'ReduceSumSquare', 'ReduceLogSum'}
SPATIAL_AXES = {NCHW: {2, 3}, NHWC: {1, 2}}


class Graph:
    """An ONNX model as the adapter reads it: its one image input and the 4-D tensors computed from it.

    Attributes:
        model: the `onnx.ModelProto`, weights loaded.
        input_name: the image input's name; `layout` its layout, NCHW or NHWC.
        batch: the input's fixed batch size, or None where it is free.
        size: `(height, width)` of the input, each None where it is free.
    """

    def __init__(self, model, path='the model'):
        """Args:
            model: an `onnx.ModelProto`, weights loaded (`load_model`).
            path: its file, for errors.

        Raises:
            ValueError: several or no inputs, a non-float input, not colour images.
        """
        self.model, self.path = model, path
        initializers = {tensor.name for tensor in model.graph.initializer}
        inputs = [value for value in model.graph.input if value.name not in initializers]
        if len(inputs) != 1:
            raise ValueError(f'{path} takes {len(inputs)} inputs ({", ".join(value.name for value in inputs)}); '
                             'the ONNX scripts feed one batch of images.')
        value = inputs[0]
        tensor_type = value.type.tensor_type
        if not value.type.HasField('tensor_type') or tensor_type.elem_type != onnx.TensorProto.FLOAT:
            kind = onnx.TensorProto.DataType.Name(tensor_type.elem_type) if value.type.HasField('tensor_type') \
                else value.type.WhichOneof('value')
            raise ValueError(f'the input {value.name} of {path} is {kind}; the ONNX scripts feed float32 images '
                             '(export the model with a float input and its preprocessing inside or as --preprocess).')
        dims = [dim.dim_value if dim.HasField('dim_value') else None for dim in tensor_type.shape.dim]
        if len(dims) != 4 or 3 not in (dims[1], dims[3]):
            raise ValueError(f'the input {value.name} of {path} has shape {_shape_text(dims)}; the ONNX scripts feed '
                             'colour images [batch, 3, height, width] or [batch, height, width, 3].')
        self.input_name = value.name
        self.layout = NCHW if dims[1] == 3 else NHWC
        self.batch = dims[0] or None
        self.size = tuple(dims[2:4] if self.layout == NCHW else dims[1:3])
        self.layouts = self._layouts()

    def _layouts(self):
        """`{tensor name: layout}` of every tensor computed from the input, in graph order; None where the layout
        cannot be told (after a Transpose of another perm)."""
        layouts = {self.input_name: self.layout}
        for node in self.model.graph.node:
            known = [layouts[name] for name in node.input if name in layouts]
            if not known:
                continue
            if node.op_type in CHANNELS_FIRST_OPS:
                layout = NCHW
            elif node.op_type == 'Transpose':
                perm = next((tuple(attribute.ints) for attribute in node.attribute if attribute.name == 'perm'), None)
                layout = TRANSPOSES.get((known[0], perm))
            else:
                layout = known[0]
            for name in node.output:
                layouts[name] = layout
        return layouts

    def global_pools(self):
        """The outputs of the nodes that pool a whole map computed from the input (global poolings, reductions
        over both spatial axes): every pixel reaches them, and through them every later tensor."""
        constants = {tensor.name: tensor for tensor in self.model.graph.initializer}
        found = []
        for node in self.model.graph.node:
            layout = self.layouts.get(node.input[0]) if node.input else None
            if layout is None:
                continue
            if node.op_type in GLOBAL_POOLS:
                found.extend(node.output)
            elif node.op_type in SPATIAL_REDUCTIONS:
                axes = next((list(attribute.ints) for attribute in node.attribute if attribute.name == 'axes'), None)
                if axes is None and len(node.input) > 1 and node.input[1] in constants:  # opset 18: an input
                    axes = onnx.numpy_helper.to_array(constants[node.input[1]]).reshape(-1).tolist()
                if axes is not None and SPATIAL_AXES[layout] <= {axis % 4 for axis in axes}:
                    found.extend(node.output)
        return found

    def reached_from(self, names):
        """Every tensor computed from the tensors `names` (them included)."""
        reached = set(names)
        for node in self.model.graph.node:
            if reached.intersection(node.input):
                reached.update(node.output)
        return reached

    def shapes(self, image_size=None):
        """`{tensor name: shape}` of every tensor computed from the input whose shape is 4-D, in graph order, from
        shape inference: with `image_size` `(height, width)` and a batch of one where they are free, else as the
        file gives them (None where free or unknown).

        Raises:
            ValueError: shape inference fails (an operator or opset that onnx does not know).
        """
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        if image_size is not None:
            height, width = image_size
            batch = self.batch or 1
            dims = (batch, 3, height, width) if self.layout == NCHW else (batch, height, width, 3)
            for value in model.graph.input:
                if value.name == self.input_name:
                    for dim, size in zip(value.type.tensor_type.shape.dim, dims):
                        dim.Clear()
                        dim.dim_value = size
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        except Exception as error:  # onnx raises its own kinds for unknown operators and opsets
            raise ValueError(f'cannot infer the tensor shapes of {self.path}: {_first_line(error)}') from error
        known = {}
        for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
            if value.name in self.layouts and value.type.HasField('tensor_type'):
                dims = value.type.tensor_type.shape.dim
                if value.type.tensor_type.HasField('shape') and len(dims) == 4:
                    known[value.name] = tuple(dim.dim_value if dim.HasField('dim_value') else None for dim in dims)
        return {name: known[name] for name, layout in self.layouts.items()
                if name in known and layout is not None and name != self.input_name}

    def channels_last(self, name, shape):
        """`(height, width, channels)` of a tensor's shape (without its batch), by its layout."""
        order = TO_CHANNELS_LAST[self.layouts[name]]
        return tuple(shape[axis] for axis in order[1:])


def load_model(path):
    """Loads an ONNX file, with the weights stored beside it (from its own folder only), and checks that the
    scripts can run it.

    Args:
        path: the `.onnx` file.

    Returns:
        the `onnx.ModelProto`.

    Raises:
        FileNotFoundError: no such file, or weights it names missing.
        ValueError: not an ONNX model, an opset newer than onnx knows, weights outside its folder, several or no
            image inputs, a non-float input, no 4-D tensor computed from the input.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'no model file at {path}; give an ONNX file (torch.onnx.export, '
                                'model.export(..., format="onnx"), tf2onnx).')
    not_onnx = f'{path} is not an ONNX model: --model takes a .onnx file (a serialised onnx.ModelProto)'
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as error:  # protobuf's DecodeError and others, for bytes that are not a ModelProto
        raise ValueError(f'{not_onnx} ({_first_line(error)}).') from error
    if not model.ir_version or not model.graph.node or not model.opset_import:
        raise ValueError(f'{not_onnx}: it holds no graph.')
    newest = onnx.defs.onnx_opset_version()
    for opset in model.opset_import:
        if opset.domain in ('', 'ai.onnx') and opset.version > newest:
            raise ValueError(f'{path} uses ONNX opset {opset.version}; the installed onnx and onnxruntime know opsets '
                             f'up to {newest}: export the model with an older opset (torch.onnx.export(..., '
                             f'opset_version={newest})) or upgrade onnx and onnxruntime.')
    _load_external_data(model, path)
    if not Graph(model, path).shapes():
        raise ValueError(f'no tensor of {path} computed from its input is 4-D: the ONNX scripts draw the feature '
                         'maps of image models, and this one has none.')
    return model


def _load_external_data(model, path):
    """Reads the weights that `model` keeps in files beside `path`, refusing any outside its folder."""
    folder = os.path.dirname(os.path.abspath(path))
    external = [tensor for tensor in model.graph.initializer
                if tensor.data_location == onnx.TensorProto.EXTERNAL]
    for tensor in external:
        location = next((entry.value for entry in tensor.external_data if entry.key == 'location'), '')
        target = os.path.realpath(os.path.join(folder, location))
        inside = os.path.commonpath([target, os.path.realpath(folder)]) == os.path.realpath(folder)
        if os.path.isabs(location) or not inside:
            raise ValueError(f'{path} keeps the weights of {tensor.name} in {location!r}, outside its folder; '
                             'external data is read from the model\'s own folder only.')
        if not os.path.isfile(target):
            raise FileNotFoundError(f'{path} keeps the weights of {tensor.name} in {location}, which is not in '
                                    f'{folder}; copy it there beside the model.')
    if external:
        try:
            onnx.external_data_helper.load_external_data_for_model(model, folder)
        except Exception as error:  # a short or unreadable data file
            raise ValueError(f'cannot read the external weights of {path}: {_first_line(error)}') from error


def external_data_files(graph):
    """The files beside the model that hold its weights (external data), sorted."""
    folder = os.path.dirname(os.path.abspath(graph.path))
    return sorted({os.path.join(folder, entry.value) for tensor in graph.model.graph.initializer
                   for entry in tensor.external_data if entry.key == 'location'})


def feature_tensors(model):
    """The 4-D tensors computed from the model's input, in graph order, as the file gives their shapes.

    Args:
        model: an `onnx.ModelProto` (`load_model`).

    Returns:
        list of `(name, shape)`, shapes in the file's layout with None for free sizes.
    """
    return list(Graph(model).shapes().items())


def describe_tensors(model):
    """One line per 4-D tensor computed from the input, `<name> <shape>` (`feature_tensors`), for
    `--print_all_names`."""
    return '\n'.join(f'{name} {_shape_text(shape)}' for name, shape in feature_tensors(model))


def input_size(graph, image_size=None):
    """`(height, width)` of the model's input: `image_size` where given, else the model's own.

    Raises:
        ValueError: its size is free and not given, or `image_size` contradicts a fixed size.
    """
    if image_size is not None:
        image_size = tuple(int(value) for value in image_size)
        if any(size is not None and size != given for size, given in zip(graph.size, image_size)):
            raise ValueError(f'--image_size {image_size[0]} {image_size[1]} differs from the model\'s input size '
                             f'{graph.size[0]}x{graph.size[1]}; leave --image_size out.')
        if min(image_size) < 1:
            raise ValueError(f'--image_size must be positive, got {image_size[0]} {image_size[1]}.')
        return image_size
    if None in graph.size:
        raise ValueError('the model takes images of any size; give the size to use with --image_size H W.')
    return graph.size


def default_layers(graph, shapes, count=5):
    """The last tensor of each spatial resolution (where the network downsamples next), at most `count` of them
    spread over the depth; 1x1 maps (squeeze-and-excitation, global pooling) are left out.

    Args:
        graph: the `Graph`; shapes: its `shapes(image_size)`.

    Returns:
        list of tensor names.
    """
    last_of_size = {}
    for name, shape in shapes.items():
        height, width, _ = graph.channels_last(name, shape)
        if (height, width) != (1, 1):
            last_of_size[(height, width)] = name  # later tensors of a size replace earlier
    return images.spread(list(last_of_size.values()), count)


def find_layers(graph, shapes, names):
    """`Layer`s of the tensors `names`, with their channel counts.

    Raises:
        ValueError: no names; a name that is not a 4-D tensor computed from the input (the closest are
            suggested).
    """
    if not names:
        raise ValueError('no layers given; name at least one with --layers (see --print_all_names).')
    layers = []
    for name in names:
        if name not in shapes:
            reason = ('is not a 4-D map of a known layout' if name in graph.layouts else
                      'is not computed from the input' if _is_tensor(graph, name) else 'does not exist')
            raise ValueError(f'tensor {name!r} of the model {reason}. {suggest_names(name, shapes)} Run with '
                             '--print_all_names to list the 4-D tensors.')
        layers.append(Layer(name, int(graph.channels_last(name, shapes[name])[2])))
    return layers


def open_session(graph, names, model=None):
    """An onnxruntime session on the CPU whose outputs are the tensors `names`, with the thread counts of
    `utils.base.threads` and no custom operators.

    Args:
        graph: the `Graph`; model: the `onnx.ModelProto` to run instead of its own (`held_global_pools`).

    Raises:
        ValueError: onnxruntime cannot run the model (an operator or opset it does not support).
    """
    source, model = model or graph.model, onnx.ModelProto()
    model.CopyFrom(source)
    inferred = {value.name: value for value in onnx.shape_inference.infer_shapes(model, strict_mode=False)
                .graph.value_info}
    del model.graph.output[:]
    for name in names:
        model.graph.output.append(inferred.get(name) or onnx.helper.make_empty_tensor_value_info(name))
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings are about its own graph optimisations
    intra_op, inter_op = thread_counts()
    if intra_op:
        options.intra_op_num_threads = intra_op
    if inter_op:
        options.inter_op_num_threads = inter_op
    try:
        return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=['CPUExecutionProvider'])
    except Exception as error:  # onnxruntime's Fail, InvalidGraph, NotImplemented...
        raise ValueError(f'onnxruntime cannot run {graph.path}: {_first_line(error)}') from error


def held_global_pools(graph, pools, image_size, value_range):
    """The model with the outputs `pools` (`Graph.global_pools`) held at their values on a mid-range grey image:
    each pooling node is replaced by that value, repeated over the batch. Probes of it find the pixels that reach a
    unit other than through a global pooling: the local receptive field.

    Returns:
        an `onnx.ModelProto`.
    """
    grey = np.full((graph.batch or 1, *image_size, 3), (value_range[0] + value_range[1]) / 2, np.float32)
    if graph.layout == NCHW:
        grey = grey.transpose(0, 3, 1, 2)
    values = open_session(graph, pools).run(pools, {graph.input_name: np.ascontiguousarray(grey)})
    model = onnx.ModelProto()
    model.CopyFrom(graph.model)
    kept = [node for node in model.graph.node if not set(node.output) & set(pools)]
    del model.graph.node[:]
    batch = 'strongest_conv_activations_batch'
    nodes = [onnx.helper.make_node('Shape', [graph.input_name], [f'{batch}_shape']),
             onnx.helper.make_node('Slice', [f'{batch}_shape', f'{batch}_0', f'{batch}_1'], [batch])]
    initializers = [onnx.numpy_helper.from_array(np.array([0], np.int64), f'{batch}_0'),
                    onnx.numpy_helper.from_array(np.array([1], np.int64), f'{batch}_1')]
    for name, value in zip(pools, values):
        held = value[:1]
        initializers += [onnx.numpy_helper.from_array(held, f'{name}_held'),
                         onnx.numpy_helper.from_array(np.array(held.shape[1:], np.int64), f'{name}_held_dims')]
        nodes += [onnx.helper.make_node('Concat', [batch, f'{name}_held_dims'], [f'{name}_held_shape'], axis=0),
                  onnx.helper.make_node('Expand', [f'{name}_held', f'{name}_held_shape'], [name])]
    model.graph.node.extend(nodes + kept)
    model.graph.initializer.extend(initializers)
    return model


def forward_function(graph, session, layers):
    """`forward_func(batch, layers=layers)`: the channels-last maps of `layers` for a channels-last float32 batch.

    A model with a fixed batch size runs the images that many at a time, the last run filled up with zeros and
    their maps dropped.
    """
    def forward_func(batch, layers=layers):
        names = [layer.name for layer in layers]
        batch = np.asarray(batch, np.float32)
        if graph.layout == NCHW:
            batch = batch.transpose(0, 3, 1, 2)
        step = graph.batch or len(batch)
        runs = []
        for start in range(0, len(batch), max(step, 1)):
            chunk = batch[start:start + step]
            if graph.batch and len(chunk) < graph.batch:
                chunk = np.concatenate([chunk, np.zeros((graph.batch - len(chunk), *chunk.shape[1:]), np.float32)])
            outputs = session.run(names, {graph.input_name: np.ascontiguousarray(chunk)})
            runs.append([output[:len(batch) - start] for output in outputs])
        return [np.ascontiguousarray(np.concatenate([run[number] for run in runs]).transpose(
                    TO_CHANNELS_LAST[graph.layouts[name]])) for number, name in enumerate(names)]
    return forward_func


def open_model(path, layer_names=None, image_size=None, batch_size=16, value_range=(0.0, 1.0), num_samples=None,
               num_channels=None):
    """An ONNX file as a `utils.core.model.Model` of some of its tensors.

    Args:
        path: the `.onnx` file (`load_model`).
        layer_names: the tensors to draw; None: `default_layers`.
        image_size: `(height, width)` for a model whose input size is free (`input_size`).
        batch_size: the scan's batch size (for the memory check and the probes' batch, `utils.core.model.probe_shape`);
            a model with a fixed batch size runs that many images at a time.
        value_range: `(low, high)` of the values the model is fed.
        num_samples, num_channels: the run's `--num_samples` and `--num_channels`, for the memory check.

    Returns:
        the `Model`: its forward function runs an onnxruntime session whose outputs are the chosen tensors.

    Raises:
        FileNotFoundError, ValueError: see `load_model`, `input_size`, `find_layers`, `open_session`; a model
            without 4-D tensors, or a run that cannot fit in memory.
    """
    graph = Graph(load_model(path), path)
    height, width = input_size(graph, image_size)
    shapes = graph.shapes((height, width))
    layers = find_layers(graph, shapes, default_layers(graph, shapes) if layer_names is None else layer_names)
    per_image = {name: graph.channels_last(name, shape) for name, shape in shapes.items() if None not in shape}
    largest = max((4 * int(np.prod(shape)) for shape in per_image.values()), default=0)
    needed = memory.needed_bytes(batch_size, (height, width, 3), largest,
                                 [per_image.get(layer.name, (height, width, layer.num_channels)) for layer in layers],
                                 num_samples, num_channels)
    memory.check_memory(needed, image_size_flag='--image_size' if None in graph.size else None)
    session = open_session(graph, [layer.name for layer in layers])
    # Squeeze-and-excitation and other global paths: probes hold the global poolings at fixed values.
    pools = graph.global_pools()
    reached = graph.reached_from(pools)
    local_layers = [index for index, layer in enumerate(layers) if layer.name in reached and layer.name not in pools]
    forward_func, local_forward_func = forward_function(graph, session, layers), None
    if local_layers:
        local_session = open_session(graph, [layer.name for layer in layers],
                                     held_global_pools(graph, pools, (height, width), value_range))
        local_forward_func = held_where_reached(forward_function(graph, local_session, layers), forward_func,
                                                set(pools), layers)
    if graph.batch:
        logger.warning('%s takes batches of exactly %d image%s: every batch (probes and scan) runs %d at a time.',
                       path, graph.batch, '' if graph.batch == 1 else 's', graph.batch)
        imshape = [graph.batch, height, width, 3]
    else:
        imshape = probe_shape(batch_size, height, width)
    files = [path, *external_data_files(graph)]
    return Model(forward_func, layers, imshape, value_range, model_id('onnx', files),
                 fingerprint=f'onnx files sha256:{digest_files(files)}',
                 any_batch_size=not graph.batch,
                 local_forward_func=local_forward_func, local_layers=local_layers)


def _is_tensor(graph, name):
    return any(name in node.output for node in graph.model.graph.node) or any(
        tensor.name == name for tensor in graph.model.graph.initializer)


def _shape_text(dims):
    return '(' + ', '.join('None' if dim is None else str(dim) for dim in dims) + ')'


def _first_line(error):
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
