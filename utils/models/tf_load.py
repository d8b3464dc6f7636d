"""Loading a trained TensorFlow model into the default graph: a frozen GraphDef or a checkpoint folder.

A frozen GraphDef (`.pb`, as FaceNet ships its models) holds the network with its weights as constants; loaded
with a session, its large float constants become variables that the session is fed once
(`utils.models.tf_session.FedWeights`), since TensorFlow copies and rewrites a graph's constants each time a session
first runs a new set of tensors. A checkpoint folder holds the graph as a `.meta` file and the weights as
checkpoint files of one or more training steps (`model-20170512-110547.ckpt-250000.index`, `.data-*`),
usually with a `checkpoint` file naming the latest one.

A graph is a program: TensorFlow ops can read and write files (`ReadFile`, `WriteFile`, `Save`) when it
runs. Load graphs only from sources you trust.
"""

import glob
import logging
import math
import os
import re

from google.protobuf.message import DecodeError

from utils.base.quiet_tf import tf
from utils.models.tf_session import FedWeights

tf1 = tf.compat.v1
logger = logging.getLogger(__name__)

# Float constants of a frozen graph with at least this many elements (weights, not shapes or scalars) are fed
# to variables when a session is at hand.
FED_CONSTANT_SIZE = 1024


def load_model(path, session=None, feed_weights=True):
    """Loads a frozen GraphDef or a checkpoint folder into the default graph.

    Tensors keep the names they had when the model was saved (no import prefix), e.g. `input:0`.

    Args:
        path: a frozen GraphDef file, or a folder with exactly one `.meta` file and its checkpoint. From a
            folder, the latest checkpoint is restored: the one its `checkpoint` file names, or else the one
            with the highest step number.
        session: the `tf.compat.v1.Session` of the default graph that receives a checkpoint's variables;
            by default the default session. A frozen GraphDef needs none; with one (and `feed_weights`), its
            weights (float constants of `FED_CONSTANT_SIZE` elements or more) become variables of the same
            names fed in this session, and the graph holds their SHA-256 instead (`fed_weights/sha256`).
        feed_weights: False keeps a frozen graph's constants as they are (to show the graph as saved).

    Raises:
        FileNotFoundError: nothing at `path`.
        ValueError: a file that is not a binary GraphDef; a folder with no `.meta` file, several, or no
            checkpoint; a checkpoint folder without a session to restore it into.
    """
    if os.path.isdir(path):
        _load_checkpoint(path, session)
    elif os.path.isfile(path):
        _load_graph_def(path, (session or tf1.get_default_session()) if feed_weights else None)
    else:
        raise FileNotFoundError(f'no model at {path}: give a frozen graph (.pb) file or a folder with a .meta '
                                'file and a checkpoint.')


def _load_graph_def(path, session):
    with open(path, 'rb') as stream:
        data = stream.read()
    graph_def = tf1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except DecodeError as error:
        raise ValueError(f'{path} is not a frozen graph (a binary GraphDef .pb file): {error}') from error
    # Protocol buffers parse some unrelated bytes without complaint; such a "graph" has no nodes, or nodes
    # that TensorFlow cannot import.
    if not graph_def.node:
        raise ValueError(f'{path} is not a frozen graph (a binary GraphDef .pb file): it holds no ops.')
    weights = _large_float_constants(graph_def) if session is not None else {}
    try:
        if weights:
            _import_with_fed_weights(graph_def, weights, session)
        else:
            tf.import_graph_def(graph_def, name='')
    except (ValueError, tf.errors.OpError) as error:
        raise ValueError(f'{path} is not a graph that this TensorFlow can import: {error}') from error
    logger.info('loaded frozen graph %s (%d ops, %d weight constants fed to variables)', path,
                len(graph_def.node), len(weights))


def _large_float_constants(graph_def):
    """`{name: value}` of the graph's float constants of `FED_CONSTANT_SIZE` elements or more that other
    nodes read as data (not as control inputs), with their values as arrays."""
    read, control = set(), set()
    for node in graph_def.node:
        for name in node.input:
            if name.startswith('^'):
                control.add(name[1:])
            else:
                read.add(name.split(':')[0])
    weights = {}
    for node in graph_def.node:
        if node.op != 'Const' or node.name not in read or node.name in control:
            continue
        proto = node.attr['value'].tensor
        if proto.dtype not in (tf.float16.as_datatype_enum, tf.float32.as_datatype_enum,
                               tf.float64.as_datatype_enum):
            continue
        if math.prod(dim.size for dim in proto.tensor_shape.dim) >= FED_CONSTANT_SIZE:
            weights[node.name] = tf.make_ndarray(proto)
    return weights


def _import_with_fed_weights(graph_def, weights, session):
    """Imports `graph_def` into the default graph with the constants `weights` (`{name: value}`) replaced by
    variables of the same names, fed their values in `session`."""
    fed_weights = FedWeights()
    variables = {name: fed_weights.variable(value, name) for name, value in weights.items()}
    rest = tf1.GraphDef(versions=graph_def.versions, library=graph_def.library)
    rest.node.extend(node for node in graph_def.node if node.name not in weights)
    tf.import_graph_def(rest, input_map={f'{name}:0': variable.value() for name, variable in variables.items()},
                        name='')
    fed_weights.add_digest('fed_weights/sha256')
    fed_weights.initialize(session)


def _load_checkpoint(folder, session):
    meta_files = sorted(glob.glob(os.path.join(glob.escape(folder), '*.meta')))
    if len(meta_files) != 1:
        names = ', '.join(os.path.basename(name) for name in meta_files)
        found = f'{len(meta_files)} ({names})' if meta_files else 'none'
        raise ValueError(f'a model folder must hold exactly one .meta file (the graph), {folder} holds {found}; '
                         'give the .pb file or a folder with one model.')
    checkpoint = latest_checkpoint(folder)
    session = session or tf1.get_default_session()
    if session is None:
        raise ValueError('restoring a checkpoint needs a session: pass one, or call load_model inside '
                         '`with session.as_default():`.')
    try:
        saver = tf1.train.import_meta_graph(meta_files[0], clear_devices=True)
        saver.restore(session, checkpoint)
    except (ValueError, tf.errors.OpError) as error:
        raise ValueError(f'cannot load the model in {folder} ({os.path.basename(meta_files[0])}, '
                         f'{os.path.basename(checkpoint)}): {error}') from error
    logger.info('loaded graph %s with weights %s', meta_files[0], checkpoint)


def latest_checkpoint(folder):
    """The checkpoint prefix to restore from a folder (`.../model.ckpt-250000`).

    Args:
        folder: a folder of checkpoint files.

    Returns:
        the prefix the folder's `checkpoint` file names, if its files exist; otherwise the prefix of the
        `.index` file with the highest step number (`-<step>.index`).

    Raises:
        ValueError: the folder holds no checkpoint.
    """
    named = tf1.train.latest_checkpoint(folder)
    if named is not None and os.path.exists(named + '.index'):
        return named
    prefixes = [name[:-len('.index')] for name in glob.glob(os.path.join(glob.escape(folder), '*.index'))]
    if not prefixes:
        raise ValueError(f'{folder} holds a .meta graph but no checkpoint (.index and .data files); copy the '
                         'checkpoint beside it, or give a frozen .pb file.')

    def step(prefix):
        match = re.search(r'-(\d+)$', prefix)
        return int(match.group(1)) if match else -1
    return max(prefixes, key=lambda prefix: (step(prefix), prefix))


def checkpoint_files(prefix):
    """The files of a TensorFlow checkpoint (`<prefix>.index` and its `.data-*` shards), sorted."""
    return [prefix + '.index'] + sorted(glob.glob(glob.escape(prefix) + '.data-*'))
