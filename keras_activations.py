"""Which images make the channels of your own Keras model fire the most.

Loads --model (a Keras 3 .keras file or a legacy .h5, in safe mode, run in inference mode), runs every
readable image under --images_dir through it (each resized to cover the model's input and cut to its
centre, then --preprocess'ed), keeps for every channel of every --layers layer the --num_samples images it
fires on the most, measures each layer's receptive field, and draws the first --num_channels channels that
fire. It prints one line per layer,

    <layer> feature map is of shape HxWxC and has receptive field SxS (stride TxT, padding PxP)

and writes per layer <out_dir>/<layer>-full.jpg and <out_dir>/<layer>-crop.jpg, as the other examples do.
Layers are Keras layer names (--print_all_names lists those with a 4-D output); by default the last layer
of each resolution, at most five.

    python keras_activations.py --model my_model.keras --images_dir photos/
    python keras_activations.py --model my_model.keras --images_dir photos/ --layers block3_conv3 --preprocess caffe
"""

import argparse
import os
import sys
import tempfile

import utils.base.ctrl_c  # noqa: F401 (first: Ctrl-C while TensorFlow loads ends quietly)
from utils.core import pipeline
from utils.examples import keras_model
from utils.running import cli, shards


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    cli.add_common_arguments(parser, 'the last layer of each resolution, at most five',
                             os.path.join(tempfile.gettempdir(), 'keras_activations'))
    cli.add_activation_arguments(parser)
    cli.add_image_files_arguments(parser, 'the images to run through the model: every readable image under this '
                                          'folder (this or --images_list is required unless --print_all_names)')
    keras_model.add_arguments(parser)
    return cli.parse_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    if args.print_all_names:
        return keras_model.print_all_names(args)
    if shards.requested(args):  # one shard of the images, or all of them on Dask: the same steps, spread out
        return shards.run(keras_model.EXAMPLE, args)
    # The model: a compiled sub-model on the chosen layers' outputs, in inference mode, as its forward_func
    # (`utils.examples.keras_model.open_model`).
    with keras_model.open_model(args) as model:
        dataset = keras_model.open_dataset(args, model)
        attribution = cli.attribution_options(args, model)  # --attribution, --erf: what the model can give
        cli.ensure_output_dirs(args)  # once the model, layers and images are known to be good
        fields = pipeline.measure_receptive_fields(model, cache=cli.recfield_cache(args))
        trackers = pipeline.scan(model, dataset, args.num_samples, candidates_per_sample=args.candidates_per_sample,
                                 bottom_k=args.bottom_k)
        pipeline.draw(model, fields, trackers, args.out_dir, args.num_channels, args.tensorboard_dir, dataset,
                      args.heatmap, attribution, args.num_samples)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
