"""Receptive fields of your own ONNX model's layers, measured by probing the network.

For every --layers tensor of --model (an ONNX file, run by onnxruntime on the CPU), on images of the model's input
size (or --image_size), prints

    <layer> feature map is of shape HxWxC and has receptive field SxS (stride TxT, padding PxP)

and writes <out_dir>/recfield-<layer>.png, the receptive field of the centre feature pixel drawn on a grey
image. No images are needed.

    python onnx_recfield.py --model resnet18.onnx
    python onnx_recfield.py --model my_model.onnx --layers relu1,relu2 --image_size 128 128
"""

import argparse
import os
import sys
import tempfile

import utils.base.ctrl_c  # noqa: F401 (first: Ctrl-C while TensorFlow loads ends quietly)
from utils.core import pipeline
from utils.examples import onnx_model
from utils.running import cli


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    onnx_model.add_arguments(parser)
    cli.add_common_arguments(parser, 'the last tensor of each resolution, at most five',
                             os.path.join(tempfile.gettempdir(), 'onnx_recfield'))
    return cli.parse_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    if args.print_all_names:
        return onnx_model.print_all_names(args)
    # The model: an onnxruntime session whose outputs are the chosen tensors, as its forward_func
    # (`utils.examples.onnx_model.open_model`).
    with onnx_model.open_model(args) as model:
        cli.ensure_output_dirs(args)  # once the model and layers are known to be good
        fields = pipeline.measure_receptive_fields(model, cache=cli.recfield_cache(args))
        pipeline.draw_receptive_fields(model, fields, args.out_dir)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
