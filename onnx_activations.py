"""Which images make the channels of your own ONNX model fire the most.

Loads --model (an ONNX file, exported from PyTorch, Keras or elsewhere, run by onnxruntime on the CPU), runs
every readable image under --images_dir through it (each resized to cover the model's input and cut to its
centre, then --preprocess'ed, by default as torchvision models expect), keeps for every channel of every --layers
tensor the --num_samples images it fires on the most, measures each layer's receptive field, and draws the first
--num_channels channels that fire. It prints one line per layer,

    <layer> feature map is of shape HxWxC and has receptive field SxS (stride TxT, padding PxP)

and writes per layer <out_dir>/<layer>-full.jpg and <out_dir>/<layer>-crop.jpg, as the other examples do.
Layers are ONNX tensor names (--print_all_names lists the 4-D ones); by default the last tensor of each
resolution, at most five. Inputs [N, 3, H, W] and [N, H, W, 3] are both recognised.

    python onnx_activations.py --model resnet18.onnx --images_dir photos/
    python onnx_activations.py --model resnet18.onnx --images_dir photos/ --layers /layer2/layer2.1/relu_1/Relu_output_0
"""

import argparse
import os
import sys
import tempfile

import utils.base.ctrl_c  # noqa: F401 (first: Ctrl-C while TensorFlow loads ends quietly)
from utils.core import pipeline
from utils.examples import onnx_model
from utils.running import cli, shards


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    cli.add_common_arguments(parser, 'the last tensor of each resolution, at most five',
                             os.path.join(tempfile.gettempdir(), 'onnx_activations'))
    cli.add_activation_arguments(parser)
    cli.add_image_files_arguments(parser, 'the images to run through the model: every readable image under this '
                                          'folder (this or --images_list is required unless --print_all_names)')
    onnx_model.add_arguments(parser)
    return cli.parse_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    if args.print_all_names:
        return onnx_model.print_all_names(args)
    if shards.requested(args):  # one shard of the images, or all of them on Dask: the same steps, spread out
        return shards.run(onnx_model.EXAMPLE, args)
    # The model: an onnxruntime session whose outputs are the chosen tensors, as its forward_func
    # (`utils.examples.onnx_model.open_model`).
    with onnx_model.open_model(args) as model:
        dataset = onnx_model.open_dataset(args, model)
        attribution = cli.attribution_options(args, model)  # --attribution, --erf: what the model can give
        cli.ensure_output_dirs(args)  # once the model, layers and images are known to be good
        fields = pipeline.measure_receptive_fields(model, cache=cli.recfield_cache(args))
        trackers = pipeline.scan(model, dataset, args.num_samples, candidates_per_sample=args.candidates_per_sample,
                                 bottom_k=args.bottom_k)
        pipeline.draw(model, fields, trackers, args.out_dir, args.num_channels, args.tensorboard_dir, dataset,
                      args.heatmap, attribution, args.num_samples)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
