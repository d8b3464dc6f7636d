"""Receptive fields of FaceNet's layers, measured by probing the network: the FaceNet example.

For every --layers layer of a trained FaceNet (Inception-ResNet-v1; see utils/facenet.py) on 160x160 input,
with BatchNorm in inference mode (phase_train False), measures which input pixels each feature pixel
depends on, prints

    <tensor name> feature map is of shape HxWxC and has receptive field SxS (stride TxT, padding PxP)

and writes <out_dir>/recfield-<layer>.png, the receptive field of the centre feature pixel drawn on a grey
image (<layer> is the tensor name with '/' as '-' and ':' dropped). Where the image clips every box edge
size, stride and padding cannot be measured and the line gives the largest box instead. No images are
needed.

    python facenet_recfield.py --model_path 20170512-110547/20170512-110547.pb
    python facenet_recfield.py --model_path model.pb --layers InceptionResnetV1/Conv2d_4a_3x3/convolution:0
"""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import argparse  # noqa: E402
import tempfile  # noqa: E402

from utils import cli, facenet  # noqa: E402
from utils.visualize import draw_receptive_fields  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    facenet.add_model_arguments(parser)
    cli.add_common_arguments(parser, facenet.DEFAULT_LAYERS,
                             os.path.join(tempfile.gettempdir(), 'facenet_recfield'), default_batch_size=128)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.logging_level)
    network, layers = facenet.open_model(args)
    session, images_ph = network.session, network.images_ph
    with session:
        if layers is None:
            return 0
        imshape = [args.batch_size, network.image_size, network.image_size, 3]
        draw_receptive_fields(session, images_ph, layers, imshape, facenet.VALUE_RANGE, args.out_dir,
                              network.feed_dict)
    return 0


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
