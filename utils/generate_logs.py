"""Writes a model's graph to a TensorBoard log, to pick the layers to visualize by looking at the network.

    python utils/generate_logs.py --model 20170512-110547 --logdir 20170512-110547/logs
    tensorboard --logdir 20170512-110547/logs             # then the Graphs tab of http://localhost:6006

--model is a frozen graph (.pb), a folder with one .meta graph and its checkpoint (FaceNet's model folder),
or a training folder of utils/cifar10_train.py: that network is rebuilt with utils/examples/cifar10.py, as
cifar10_activations.py builds it (input placeholder `images`, any batch size), after checking that the
folder's latest checkpoint holds its variables. The graph goes to a new event file in --logdir. TensorBoard
shows operations: operation `my/op` outputs the tensor `my/op:0`, the name that --layers takes.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script

import argparse  # noqa: E402
import logging  # noqa: E402
import shlex  # noqa: E402


import utils.base.ctrl_c  # noqa: E402,F401 (first: Ctrl-C while TensorFlow loads ends quietly)
from utils.base.files import ensure_writable_dir  # noqa: E402
from utils.base.quiet_tf import tf  # noqa: E402
from utils.examples import cifar10  # noqa: E402
from utils.models.tf_load import load_model  # noqa: E402
from utils.pictures.tensorboard_logs import EventLog  # noqa: E402
from utils.running import cli  # noqa: E402

tf1 = tf.compat.v1
logger = logging.getLogger('generate_logs')


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', required=True,
                        help='a frozen graph (.pb), a folder with a .meta graph and its checkpoint, or a training '
                             'folder of utils/cifar10_train.py')
    parser.add_argument('--logdir', required=True,
                        help='folder for the TensorBoard event file, created if missing')
    cli.add_logging_arguments(parser)
    return cli.parse_args(parser, argv)


def cifar10_graph(folder):
    """The CIFAR-10 network of `utils.examples.cifar10` if `folder`'s latest checkpoint holds its variables.

    Returns:
        a new `tf.Graph` with the network on a `[None, 24, 24, 3]` placeholder `images`, or None: no
        `checkpoint` file in `folder`, or a checkpoint of another network.
    """
    checkpoint = tf1.train.latest_checkpoint(folder)
    if checkpoint is None:
        return None
    try:
        saved = tf1.train.load_checkpoint(checkpoint).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError):
        return None  # a damaged checkpoint; load_model names the problem
    session, _ = cifar10.build_session(None)
    session.close()
    with session.graph.as_default():
        needed = {variable.op.name: variable.shape.as_list() for variable in tf1.global_variables()}
    if any(saved.get(name) != shape for name, shape in needed.items()):
        return None
    logger.info('%s is a CIFAR-10 training folder (%s)', folder, os.path.basename(checkpoint))
    return session.graph


def load_graph(path):
    """The graph of a model, as `--model` describes it.

    Args:
        path: a frozen GraphDef, a folder with one `.meta` file and its checkpoint, or a training folder of
            `utils/cifar10_train.py`.

    Returns:
        a `tf.Graph`.

    Raises:
        FileNotFoundError, ValueError: see `utils.models.tf_load.load_model`.
    """
    graph = cifar10_graph(path) if os.path.isdir(path) else None
    if graph is None:
        graph = tf.Graph()
        with graph.as_default(), tf1.Session(graph=graph) as session:
            load_model(path, session, feed_weights=False)  # the graph as saved, its weights constants
    return graph


def main(argv=None):
    args = parse_args(argv)
    graph = load_graph(args.model)
    ensure_writable_dir(args.logdir, '--logdir')
    with EventLog(args.logdir) as log:
        log.add_graph(graph)
    print(f'wrote the graph of {args.model} ({len(graph.get_operations())} operations) to {args.logdir}')
    print(f'see it in the Graphs tab of TensorBoard: tensorboard --logdir {shlex.quote(args.logdir)}')
    print('TensorBoard shows operations: operation "my/op" outputs the tensor "my/op:0", the name that --layers '
          'takes.')
    return 0


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
