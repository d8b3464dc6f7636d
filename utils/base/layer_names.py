"""Finding the layers a user names (`--layers`) in a TensorFlow graph.

A layer is named by its output tensor, `<op name>:<output index>` (`vgg_16/conv1/conv1_2/Relu:0`); an op
name alone means its first output. Candidate layers are the tensors computed from the input placeholder:
constants and weights are not layers.
"""

import difflib
import hashlib
import logging

# Bytes of a file stem (`file_stem`), leaving room within a file name's 255 for `state-`, `-<I>-of-<N>.npz`.
MAX_STEM_BYTES = 200

logger = logging.getLogger(__name__)


def computed_tensors(graph, inputs):
    """The tensors of `graph` computed from `inputs`, in the graph's order.

    Args:
        graph: a `tf.Graph`.
        inputs: a tensor (the image placeholder) or a list of tensors.

    Returns:
        list of `tf.Tensor`, `inputs` excluded.
    """
    inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    reached = {tensor.op.name for tensor in inputs}
    tensors = []
    for op in graph.get_operations():  # ops are listed after the ops they read
        if op.name not in reached and any(tensor.op.name in reached for tensor in op.inputs):
            reached.add(op.name)
            tensors.extend(op.outputs)
    return tensors


def describe_tensors(tensors):
    """One line per tensor, `<name> <shape>`, for `--print_all_names`."""
    return '\n'.join(f'{tensor.name} {tensor.shape}' for tensor in tensors)


def resolve_layers(graph, names, inputs):
    """The 4-D tensors that `names` refer to.

    Args:
        graph: a `tf.Graph`.
        names: tensor names (`scope/op:0`), or op names meaning their first output.
        inputs: the image placeholder(s); layers must be computed from them.

    Returns:
        list of `tf.Tensor`, one per name, in order.

    Raises:
        ValueError: no names, a name that is not in the graph (the message lists the closest names), or a
            tensor that is not a 4-D feature map computed from the input.
    """
    if not names:
        raise ValueError('no layers given; name at least one with --layers (see --print_all_names).')
    candidates = computed_tensors(graph, inputs)
    by_name = {tensor.name: tensor for tensor in candidates}
    layers = []
    for name in names:
        tensor = by_name.get(name if ':' in name else f'{name}:0')
        if tensor is None:
            raise ValueError(f'no layer {name!r} in the graph. {suggest_names(name, by_name)} '
                             'Run with --print_all_names to list every layer.')
        if tensor.shape.rank != 4:
            raise ValueError(f'layer {tensor.name} has shape {tensor.shape}; a layer must be a feature map '
                             '[batch, height, width, channels], such as a convolution\'s output.')
        layers.append(tensor)
    return layers


def suggest_names(name, names):
    """'Did you mean ...?' with close names, or names containing `name` (`conv5_3` finds the full name).

    Args:
        name: a layer name that is not among `names`.
        names: the names there are (any iterable).
    """
    names = list(names)
    close = difflib.get_close_matches(name, names, n=5)
    containing = [candidate for candidate in names if name in candidate and candidate not in close]
    matches = close + containing[:5 - len(close)]
    return f'Did you mean {", ".join(matches)}?' if matches else 'No layer has a similar name.'


def file_stem(layer_name):
    """File-name form of a tensor name: `/` becomes `-` and `:` is dropped (`a/b/Relu:0` -> `a-b-Relu0`); a leading
    `-` is dropped too (ONNX exports name tensors `/layer1/relu/Relu_output_0`), so that no file name looks like a
    command-line option.

    A stem longer than `MAX_STEM_BYTES` (in UTF-8) is cut there and ends with a digest of the whole name, so that
    `recfield-<stem>.png`, `<stem>-full.jpg` and `state-<stem>-<I>-of-<N>.npz` stay within the 255 bytes a file
    name may have, and different names keep different stems.
    """
    stem = layer_name.replace('/', '-').replace(':', '').lstrip('-') or 'layer'
    encoded = stem.encode('utf-8', 'surrogateescape')
    if len(encoded) <= MAX_STEM_BYTES:
        return stem
    digest = hashlib.sha256(encoded).hexdigest()[:16]
    kept = encoded[:MAX_STEM_BYTES - len(digest) - 1].decode('utf-8', 'ignore')  # whole characters only
    return f'{kept}-{digest}'


def names_from_flags(values):
    """`--layers` values as a list of names: each value may hold several names separated by commas. A name given
    twice is kept once, at its first place, with a warning (it would be measured and drawn twice)."""
    names = [name.strip() for value in values for name in value.split(',') if name.strip()]
    unique = list(dict.fromkeys(names))
    if len(unique) < len(names):
        repeated = next(name for name in unique if names.count(name) > 1)
        logger.warning('--layers names %s (and %d more) more than once; each layer is drawn once.', repeated,
                       len(names) - len(unique) - 1)
    return unique
