"""Which faces make FaceNet's channels fire the most: the FaceNet example on LFW.

Runs LFW face images through a trained FaceNet (Inception-ResNet-v1; see utils/facenet.py), keeps for every
channel of every --layers layer the --num_samples faces it fires on the most, measures each layer's
receptive field, and draws the first --num_channels channels that fire. It writes per layer

    <out_dir>/<layer>-full.jpg   one column per channel: the faces, the strongest pixel's receptive field boxed
    <out_dir>/<layer>-crop.jpg   the same columns with only those receptive fields

where <layer> is the tensor name with '/' as '-' and ':' dropped. The faces are the images of the pairs in
<facenet_dir>/data/pairs.txt (or --pairs), or every image under --lfw_dir when there is no pairs file; each is
cut to its centred 160x160 square and prewhitened. BatchNorm runs in inference mode (phase_train False).

    python facenet_activations.py --model_path 20170512-110547/20170512-110547.pb --lfw_dir lfw
    python facenet_activations.py --model_path model.pb --lfw_dir lfw --pairs pairs.txt --batches 20
"""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import argparse  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402

from utils import cli, facenet, lfw, shards  # noqa: E402
from utils.visualize import draw_top_activations, track_top_activations  # noqa: E402

logger = logging.getLogger('facenet_activations')


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    facenet.add_model_arguments(parser)
    parser.add_argument('--lfw_dir',
                        help='the LFW folder, one folder of images per person (<Name>/<Name>_0001.jpg); required '
                             'unless --print_all_names')
    parser.add_argument('--pairs',
                        help='a pairs.txt whose images to use (default: <facenet_dir>/data/pairs.txt; without '
                             'either, every image under --lfw_dir)')
    cli.add_common_arguments(parser, facenet.DEFAULT_LAYERS,
                             os.path.join(tempfile.gettempdir(), 'facenet_activations'), default_batch_size=10)
    cli.add_activation_arguments(parser)
    cli.add_tensorboard_argument(parser)
    parser.add_argument('--batches', type=cli.count_or_all, default=0,
                        help='use at most this many batches, for a quick try; 0 or "all" for every image '
                             '(default: all)')
    shards.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.logging_level)
    if shards.requested(args):
        return shards.run('facenet', args)
    network, layers = facenet.open_model(args)
    session, images_ph = network.session, network.images_ph
    with session:
        if layers is None:
            return 0
        paths = facenet.image_paths(args)
        num_batches = math.ceil(len(paths) / args.batch_size)
        batches = lfw.load_batches(paths, network.image_size, args.batch_size, args.batches)
        trackers = track_top_activations(session, images_ph, layers, batches, args.num_samples,
                                         num_batches=min(num_batches, args.batches or num_batches),
                                         feed_dict=network.feed_dict)
        imshape = [args.batch_size, network.image_size, network.image_size, 3]
        draw_top_activations(session, images_ph, layers, trackers, imshape, facenet.VALUE_RANGE, args.out_dir,
                             args.num_channels, network.feed_dict, args.tensorboard_dir)
    logger.info('pictures are in %s', args.out_dir)
    return 0


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
