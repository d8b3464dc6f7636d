"""How the examples run TensorFlow for the pipeline: threads per process, the maps' maxima in the graph, and
weights fed to variables rather than held as constants.

A scan keeps, per channel, the images whose feature maps have the highest maxima. `channel_maxima` computes
those maxima inside TensorFlow, on all its threads, as the maps come out of the network; the scan then reads
a map again only where an image enters a channel's top list, to find where its maximum is
(`utils.core.model.Model.maxima_forward_func`).
"""

import hashlib
import logging
import math

import numpy as np


from utils.base.layer_names import computed_tensors, describe_tensors, names_from_flags, resolve_layers
from utils.base.quiet_tf import tf
from utils.base.threads import thread_counts
from utils.core.memory import check_memory, needed_bytes
from utils.core.model import TOOL_SCOPE, held_where_reached

tf1 = tf.compat.v1
logger = logging.getLogger(__name__)


def session_config():
    """A `ConfigProto` with the thread counts of `thread_counts`, for every session the examples create."""
    intra_op, inter_op = thread_counts()
    return tf1.ConfigProto(intra_op_parallelism_threads=intra_op, inter_op_parallelism_threads=inter_op)


def limit_eager_threads():
    """Gives TensorFlow's eager runtime (Keras) the thread counts of `thread_counts`.

    They can only be set before TensorFlow first runs anything; later calls keep the counts in place, with a
    warning when they differ.
    """
    intra_op, inter_op = thread_counts()
    threading = tf.config.threading
    for count, current, setter in ((intra_op, threading.get_intra_op_parallelism_threads,
                                    threading.set_intra_op_parallelism_threads),
                                   (inter_op, threading.get_inter_op_parallelism_threads,
                                    threading.set_inter_op_parallelism_threads)):
        if count and current() != count:
            try:
                setter(count)
            except RuntimeError:  # the runtime is already running: its pools exist
                logger.warning('TensorFlow already runs with %d threads; %s asks for %d (set it before the first '
                               'model runs).', current(), setter.__name__, count)


def channel_maxima(feature_map):
    """Each image's and channel's maximum of a feature map `[batch, height, width, channels]`, in the graph: a
    tensor `[batch, channels]` (NaN where the map holds one)."""
    # Rows first, then columns: faster than one reduction over both axes.
    return tf.reduce_max(tf.reduce_max(feature_map, axis=1), axis=1)


def session_forward_funcs(session, images_ph, layers, feed_dict=None, run_also=()):
    """The `forward_func` and `maxima_forward_func` of a `utils.core.model.Model` of a TF1 session's `layers`.

    Args:
        session: the session; its graph holds `images_ph` and `layers`.
        images_ph: the input tensor the batches feed.
        layers: the layers' tensors `[batch, height, width, channels]`.
        feed_dict: more values fed with every batch (FaceNet's `phase_train: False`).
        run_also: tensors run with every batch, their values dropped (a benchmark's whole network).

    Returns:
        `(forward_func, maxima_forward_func)`: `forward_func(batch, layers=layers)` gives the maps of `layers`
        (any of them); `maxima_forward_func(batch)` gives `(feature map, maxima)` of every layer, the maxima
        computed by `channel_maxima`, added to the session's graph.
    """
    feed_dict = dict(feed_dict or {})
    with session.graph.as_default(), tf.name_scope(f'{TOOL_SCOPE}channel_maxima/'):
        maxima = [channel_maxima(layer) for layer in layers]
    run_also = list(run_also)

    def forward_func(batch, layers=layers):
        return session.run([*layers, *run_also], feed_dict={images_ph: batch, **feed_dict})[:len(layers)]

    def maxima_forward_func(batch):
        arrays = session.run([*layers, *maxima, *run_also], feed_dict={images_ph: batch, **feed_dict})
        return list(zip(arrays[:len(layers)], arrays[len(layers):2 * len(layers)]))
    return forward_func, maxima_forward_func


def unit_value_tensor(feature_map, units):
    """Each image's unit of a feature map `[batch, height, width, channels]`, in the graph: `units` is int32
    `[batch, 3]` of `(y, x, channel)`, the channel `utils.probing.attribution.ALL_CHANNELS` (negative) for the
    mean over the channels (`utils.probing.attribution.unit_values` in TensorFlow)."""
    rows = tf.range(tf.shape(units)[0])
    pixels = tf.gather_nd(feature_map, tf.stack([rows, units[:, 0], units[:, 1]], axis=1))  # [batch, channels]
    chosen = tf.gather(pixels, tf.maximum(units[:, 2], 0), axis=1, batch_dims=1)
    return tf.where(units[:, 2] >= 0, chosen, tf.reduce_mean(pixels, axis=1))


def session_gradient_func(session, images_ph, layers, feed_dict=None):
    """The `gradient_func` of a `utils.core.model.Model` of a TF1 session's `layers`: `tf.gradients` of each image's
    unit (`unit_value_tensor`) with respect to `images_ph`, added to the graph (under `TOOL_SCOPE`) for a layer
    when it is first asked for.

    Raises (when called):
        ValueError: the graph holds an operation without a gradient (use occlusion).
    """
    feed_dict = dict(feed_dict or {})
    built = {}

    def gradient_func(batch, index, units):
        if index not in built:
            with session.graph.as_default(), tf.name_scope(f'{TOOL_SCOPE}unit_gradients/'):
                units_ph = tf1.placeholder(tf.int32, [None, 3], name='units')
                try:
                    gradient, = tf.gradients(tf.reduce_sum(unit_value_tensor(layers[index], units_ph)), images_ph)
                except LookupError as error:  # an op with no registered gradient
                    raise ValueError(f'TensorFlow cannot compute gradients of {layers[index].name}: {error}; use '
                                     '--attribution occlusion.') from error
            built[index] = units_ph, gradient
        units_ph, gradient = built[index]
        return session.run(gradient, feed_dict={images_ph: batch, units_ph: units, **feed_dict})
    return gradient_func


# Operations that reduce a map over axes of their second input: over both spatial axes, a global pooling.
REDUCTIONS = {'Mean', 'Max', 'Min', 'Sum', 'Prod'}


def global_pools(graph, images_ph):
    """The tensors of `graph` computed from `images_ph` that reduce a map `[batch, height, width, channels]` over
    both its spatial axes (`tf.reduce_mean(x, [1, 2])`, Keras' GlobalAveragePooling2D in a graph): every pixel
    reaches them, and through them every later tensor (squeeze-and-excitation gates start with one)."""
    found = []
    for tensor in computed_tensors(graph, images_ph):
        op = tensor.op
        if op.type in REDUCTIONS and len(op.inputs) == 2 and op.inputs[0].shape.rank == 4:
            axes = tf.get_static_value(op.inputs[1])
            if axes is not None and {1, 2} <= {int(axis) % 4 for axis in np.reshape(axes, -1)}:
                found.append(tensor)
    return found


def held_forward_func(session, images_ph, layers, value_range, forward_func, feed_dict=None):
    """A `utils.core.model.Model`'s `local_forward_func` and `local_layers` for a TF1 session: the maps of `layers`
    with every global pooling (`global_pools`) that reaches them fed its value on a mid-range grey image, so that
    probes find the local receptive field (a session can be fed any tensor).

    Args:
        session, images_ph, layers, feed_dict: as for `session_forward_funcs`.
        value_range: `(low, high)` of the network's input values.
        forward_func: the model's `forward_func` (`session_forward_funcs`), which gives the poolings' own maps.

    Returns:
        `(local_forward_func, local_layers)`, or `(None, [])` where no global pooling reaches the layers.
    """
    feed_dict = dict(feed_dict or {})
    pools = global_pools(session.graph, images_ph)
    pool_names = {pool.name for pool in pools}
    ancestors = [_ancestors(layer, images_ph) if pools else set() for layer in layers]
    local_layers = [index for index, layer in enumerate(layers)
                    if layer.name not in pool_names and pool_names & ancestors[index]]
    if not local_layers:
        return None, []
    reaching = [pool for pool in pools if any(pool.name in ancestors[index] for index in local_layers)]
    batch = images_ph.shape[0] if images_ph.shape[0] is not None else 1
    grey = np.full([batch, *images_ph.shape.as_list()[1:]], (value_range[0] + value_range[1]) / 2, np.float32)
    held = [value[:1] for value in session.run(reaching, feed_dict={images_ph: grey, **feed_dict})]

    def run(batch, layers=layers):
        fed = {pool: np.repeat(value, len(batch), axis=0) for pool, value in zip(reaching, held)}
        return session.run(list(layers), feed_dict={images_ph: batch, **feed_dict, **fed})
    return held_where_reached(run, forward_func, pool_names, layers), local_layers


def _ancestors(tensor, images_ph):
    """The names of the tensors `tensor` is computed from, back to `images_ph`."""
    names, pending = set(), list(tensor.op.inputs)
    while pending:
        current = pending.pop()
        if current.name in names or current is images_ph:
            continue
        names.add(current.name)
        pending.extend(current.op.inputs)
    return names


class FedWeights:
    """Weights held in variables that the session is fed once, instead of constants in the graph.

    A constant's value lives in the GraphDef, and TensorFlow copies and rewrites the whole GraphDef (Grappler)
    whenever a session first runs a new set of tensors. With VGG16's 15 M weights as constants the first batch
    of a set took about 3 s more than the next ones on one core, against 0.1 to 0.3 s with fed variables (same
    maps, bit for bit, and the same time per batch after the first); the receptive fields run several sets
    (shallow layers only, deep ones, all), the scan another, and every shard process pays them again.

    Use `variable(value, name)` where a graph would hold `tf.constant(value)`, then `add_digest(name)` (a
    constant holding the SHA-256 of every value, so that the graph still tells its weights apart, see
    `utils.core.model.Model.fingerprint`), and `initialize(session)` before the first run.
    """

    def __init__(self):
        self._feeds = {}  # placeholder -> value
        self._variables = []
        self._digest = hashlib.sha256()

    def variable(self, value, name):
        """A variable of the current graph that `initialize` fills with `value` (an array)."""
        value = np.ascontiguousarray(value)
        initial_value = tf1.placeholder(tf.as_dtype(value.dtype), value.shape, name=f'{name}_value')
        variable = tf1.Variable(initial_value, trainable=False, name=name)
        self._feeds[initial_value] = value
        self._variables.append(variable)
        self._digest.update(f'{variable.op.name} {value.dtype} {value.shape}'.encode())
        self._digest.update(memoryview(value).cast('B'))  # the array's bytes, not a copy of them
        return variable

    def add_digest(self, name):
        """Adds to the current graph a string constant `name`: the SHA-256 of the variables' names and values."""
        return tf.constant(self._digest.hexdigest(), name=name)

    def initialize(self, session):
        """Feeds every variable its value in `session`."""
        with session.graph.as_default():
            initializer = tf1.variables_initializer(self._variables)
        session.run(initializer, feed_dict=self._feeds)


def print_tensor_names(graph, images_ph):
    """Prints every tensor of `graph` computed from `images_ph`, with its shape: what `--print_all_names` shows."""
    print(describe_tensors(computed_tensors(graph, images_ph)))


def find_layers(graph, images_ph, args):
    """The `--layers` tensors (`utils.base.layer_names.resolve_layers`), once the run is known to fit in memory
    (`check_graph_memory`), unless `--print_all_names`: see `print_tensor_names`.

    Raises:
        ValueError: see `utils.base.layer_names.resolve_layers` and `utils.core.memory.check_memory`.
    """
    layers = resolve_layers(graph, names_from_flags(args.layers), images_ph)
    check_graph_memory(graph, images_ph, layers, args)
    return layers


def check_graph_memory(graph, images_ph, layers, args):
    """Refuses a run of a TensorFlow graph that cannot fit in memory (`utils.core.memory`), from the tensors' static
    shapes, before anything runs. Tensors whose size per image is unknown are left out.

    Raises:
        ValueError: see `utils.core.memory.check_memory`.
    """
    def per_image(tensor):
        dims = tensor.shape.as_list()[1:] if tensor.shape.rank else []
        return None if None in dims or not tensor.dtype.size else dims
    input_shape = per_image(images_ph)
    layer_shapes = [per_image(layer) for layer in layers]
    if input_shape is None or None in layer_shapes:
        return
    largest = max((math.prod(dims) * tensor.dtype.size for tensor in computed_tensors(graph, images_ph)
                   if (dims := per_image(tensor)) is not None), default=0)
    needed = needed_bytes(args.batch_size, input_shape, largest, layer_shapes,
                                 getattr(args, 'num_samples', None), getattr(args, 'num_channels', None))
    check_memory(needed, image_size_flag='--image_size' if hasattr(args, 'image_size') else None)
