"""Loading a trained TensorFlow model into the default graph: a frozen GraphDef or a checkpoint folder.

A frozen GraphDef (`.pb`, as FaceNet ships its models) holds the network with its weights as constants. A
checkpoint folder holds the graph as a `.meta` file and the weights as checkpoint files of one or more
training steps (`model-20170512-110547.ckpt-250000.index`, `.data-*`), usually with a `checkpoint` file
naming the latest one.

A graph is a program: TensorFlow ops can read and write files (`ReadFile`, `WriteFile`, `Save`) when it
runs. Load graphs only from sources you trust.
"""

import glob
import logging
import os
import re

from google.protobuf.message import DecodeError

from utils.quiet_tf import tf

tf1 = tf.compat.v1
logger = logging.getLogger(__name__)


def load_model(path, session=None):
    """Loads a frozen GraphDef or a checkpoint folder into the default graph.

    Tensors keep the names they had when the model was saved (no import prefix), e.g. `input:0`.

    Args:
        path: a frozen GraphDef file, or a folder with exactly one `.meta` file and its checkpoint. From a
            folder, the latest checkpoint is restored: the one its `checkpoint` file names, or else the one
            with the highest step number.
        session: the `tf.compat.v1.Session` of the default graph that receives a checkpoint's variables;
            by default the default session. Not needed for a frozen GraphDef.

    Raises:
        FileNotFoundError: nothing at `path`.
        ValueError: a file that is not a binary GraphDef; a folder with no `.meta` file, several, or no
            checkpoint; a checkpoint folder without a session to restore it into.
    """
    if os.path.isdir(path):
        _load_checkpoint(path, session)
    elif os.path.isfile(path):
        _load_graph_def(path)
    else:
        raise FileNotFoundError(f'no model at {path}: give a frozen graph (.pb) file or a folder with a .meta '
                                'file and a checkpoint.')


def _load_graph_def(path):
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
    try:
        tf.import_graph_def(graph_def, name='')
    except (ValueError, tf.errors.OpError) as error:
        raise ValueError(f'{path} is not a graph that this TensorFlow can import: {error}') from error
    logger.info('loaded frozen graph %s (%d ops)', path, len(graph_def.node))


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
