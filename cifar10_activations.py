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

import argparse
import os
import sys
import tempfile

import utils.base.ctrl_c  # noqa: F401 (first: Ctrl-C while TensorFlow loads ends quietly)
from utils.core import pipeline
from utils.examples import cifar10, cifar10_input
from utils.running import cli, shards


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    cli.add_common_arguments(parser, cifar10.DEFAULT_LAYERS,
                             os.path.join(tempfile.gettempdir(), 'cifar10_activations'), default_batch_size=128)
    cli.add_activation_arguments(parser)
    parser.add_argument('--data_dir', default=cifar10_input.DEFAULT_DATA_DIR,
                        help='folder of CIFAR-10, binary version (default: %(default)s)')
    parser.add_argument('--batches', type=cli.positive_int, default=390,
                        help='batches of training images to run, at most as many as the data holds (default: '
                             '%(default)s: 49920 of the 50000 images, in batches of 128)')
    cifar10.add_arguments(parser, 'folder of the checkpoints written by utils/cifar10_train.py')
    return cli.parse_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    if args.print_all_names:
        return cifar10.print_all_names(args)
    if shards.requested(args):  # one shard of the batches, or all of them on Dask: the same steps, spread out
        return shards.run(cifar10.EXAMPLE, args)
    # The model: a TF1 session holding the tutorial network and its latest checkpoint, session.run of the
    # --layers as its forward_func (`utils.examples.cifar10.open_model`).
    with cifar10.open_model(args) as model:
        dataset = cifar10.open_dataset(args, model)
        attribution = cli.attribution_options(args, model)  # --attribution, --erf: what the model can give
        cli.ensure_output_dirs(args)  # once the model, layers and images are known to be good
        fields = pipeline.measure_receptive_fields(model, cache=cli.recfield_cache(args))
        trackers = pipeline.scan(model, dataset, args.num_samples, candidates_per_sample=args.candidates_per_sample,
                                 bottom_k=args.bottom_k)
        pipeline.draw(model, fields, trackers, args.out_dir, args.num_channels, args.tensorboard_dir, dataset,
                      args.heatmap, attribution, args.num_samples)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
