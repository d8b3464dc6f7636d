"""Receptive fields of FaceNet's layers, measured by probing the network: the FaceNet example.

For every --layers layer of a trained FaceNet (Inception-ResNet-v1; see utils/examples/facenet.py) on 160x160 input,
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

import argparse
import os
import sys
import tempfile

import utils.base.ctrl_c  # noqa: F401 (first: Ctrl-C while TensorFlow loads ends quietly)
from utils.core import pipeline
from utils.examples import facenet
from utils.running import cli


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    facenet.add_model_arguments(parser)
    cli.add_common_arguments(parser, facenet.DEFAULT_LAYERS,
                             os.path.join(tempfile.gettempdir(), 'facenet_recfield'), default_batch_size=128)
    return cli.parse_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    if args.print_all_names:
        return facenet.print_all_names(args)
    # The model: a TF1 session holding FaceNet, session.run of the --layers (BatchNorm in inference mode) as
    # its forward_func (`utils.examples.facenet.open_model`).
    with facenet.open_model(args) as model:
        cli.ensure_output_dirs(args)  # once the model and layers are known to be good
        fields = pipeline.measure_receptive_fields(model, cache=cli.recfield_cache(args))
        pipeline.draw_receptive_fields(model, fields, args.out_dir)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
