"""Merges the states of a sharded scan and draws the pictures that a single run over the whole dataset draws.

    python vgg16_activations.py --num_shards 2 --shard_index 0 --out_dir states     # anywhere, in any order
    python vgg16_activations.py --num_shards 2 --shard_index 1 --out_dir states
    python utils/merge_activations.py --states states/state-*.npz --out_dir pictures

Reads the states (`utils.core.states.ShardState`), refuses states that do not belong together (another example,
model, dataset, batch size, --num_samples or --layers, or the same shard twice) with a one-line error, merges
them layer by layer, prints each layer's receptive field and writes per layer

    <out_dir>/<layer>-full.jpg, <out_dir>/<layer>-crop.jpg   the pictures, as the *_activations.py scripts draw them
    <out_dir>/<layer>-bottom.jpg                             the weakest images, where the scan had --bottom_k
    <out_dir>/state-<layer>.npz                              the merged state

and the gallery of them all, <out_dir>/index.html and <out_dir>/activations.json (utils/pictures/gallery.py). The merge
has no model: for --heatmap, --attribution or --erf, give the states to the example script with --states (and the
scan's flags), which merges and draws them the same way with what needs the model.

It needs neither TensorFlow nor the model: the states carry the receptive fields. The states of some shards
only are merged too, with a warning, and their merged states can be merged with the other shards' later.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402

import utils.base.ctrl_c  # noqa: E402,F401 (first: Ctrl-C while TensorFlow loads ends quietly)
from utils.core import states  # noqa: E402
from utils.running import cli  # noqa: E402

logger = logging.getLogger('merge_activations')


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--states', nargs='+', required=True, metavar='PATH',
                        help='state files written with --num_shards/--shard_index (state-<layer>-<I>-of-<N>.npz) '
                             'or by an earlier merge (state-<layer>.npz), of one or more layers')
    parser.add_argument('--out_dir', default=os.path.join(tempfile.gettempdir(), 'merge_activations'),
                        help='folder for the pictures and merged states, created if missing (default: %(default)s)')
    parser.add_argument('--num_channels', type=cli.count_or_all,
                        help='channels to draw per layer: the first ones that fire; "all" or 0 for every channel '
                             'that fires (default: the --num_channels of the scan)')
    cli.add_tensorboard_argument(parser)
    cli.add_logging_arguments(parser)
    return cli.parse_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    cli.ensure_output_dirs(args)
    merged = states.merge_states([states.ShardState.load(path) for path in args.states])
    states.warn_if_incomplete(merged)
    for state in merged:
        state.save(states.state_path(args.out_dir, state.layer))
    states.draw_states(merged, args.out_dir, args.num_channels, args.tensorboard_dir)
    logger.info('pictures and merged states are in %s', args.out_dir)
    return 0


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
