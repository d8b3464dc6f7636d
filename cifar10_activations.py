"""Which CIFAR-10 images make the channels of the tutorial network fire the most.

Restores the latest checkpoint of `utils/cifar10_train.py` from --train_dir, runs --batches batches of
training images (centre 24x24 crops, in file order) through the network, keeps for every channel of every
--layers layer the --num_samples images it fires on the most, measures each layer's receptive field, and
draws the first --num_channels channels that fire. It prints one line per layer,

    <layer> feature map is of shape HxWxC and has receptive field SxS (stride TxT, padding PxP)

and writes per layer

    <out_dir>/<layer>-full.jpg   one column per channel: the crops, the strongest pixel's receptive field boxed
    <out_dir>/<layer>-crop.jpg   the same columns with only those receptive fields

where <layer> is the tensor name with '/' as '-' and ':' dropped (conv1-conv10-full.jpg for conv1/conv1:0).

    python utils/cifar10_train.py --max_steps 5000     # once: downloads CIFAR-10, trains, writes checkpoints
    python cifar10_activations.py
    python cifar10_activations.py --layers conv2/conv2:0 --num_channels all
"""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import argparse  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402

from utils import cifar10_input, cifar10_model, cli, shards  # noqa: E402
from utils.visualize import draw_top_activations, track_top_activations  # noqa: E402

logger = logging.getLogger('cifar10_activations')


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    cli.add_common_arguments(parser, cifar10_model.DEFAULT_LAYERS,
                             os.path.join(tempfile.gettempdir(), 'cifar10_activations'), default_batch_size=128)
    cli.add_activation_arguments(parser)
    cli.add_tensorboard_argument(parser)
    cifar10_model.add_arguments(parser, 'folder of the checkpoints written by utils/cifar10_train.py')
    parser.add_argument('--data_dir', default=cifar10_input.DEFAULT_DATA_DIR,
                        help='folder of CIFAR-10, binary version (default: %(default)s)')
    parser.add_argument('--batches', type=cli.positive_int, default=390,
                        help='batches of training images to run, at most as many as the data holds (default: '
                             '%(default)s: 49920 of the 50000 images, in batches of 128)')
    shards.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.logging_level)
    if shards.requested(args):
        return shards.run('cifar10', args)
    with cifar10_model.open_network(args) as (session, images_ph, layers):
        if layers is None:
            return 0
        paths = cifar10_input.find_batch_files(args.data_dir, train=True)
        cifar10_model.restore_checkpoint(session, args.train_dir)
        batches, num_batches = cifar10_input.scan_batches(paths, args.batch_size, args.batches)
        trackers = track_top_activations(session, images_ph, layers, batches, args.num_samples, num_batches)
        draw_top_activations(session, images_ph, layers, trackers, images_ph.shape.as_list(),
                             cifar10_model.VALUE_RANGE, args.out_dir, args.num_channels,
                             tensorboard_dir=args.tensorboard_dir)
    logger.info('pictures are in %s', args.out_dir)
    return 0


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
