"""Which faces make FaceNet's channels fire the most: the FaceNet example on LFW.

Runs LFW face images through a trained FaceNet (Inception-ResNet-v1; see utils/examples/facenet.py), keeps for every
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

import argparse
import os
import sys
import tempfile

import utils.base.ctrl_c  # noqa: F401 (first: Ctrl-C while TensorFlow loads ends quietly)
from utils.core import pipeline
from utils.examples import facenet
from utils.running import cli, shards


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    cli.add_common_arguments(parser, facenet.DEFAULT_LAYERS,
                             os.path.join(tempfile.gettempdir(), 'facenet_activations'), default_batch_size=10)
    cli.add_activation_arguments(parser)
    facenet.add_model_arguments(parser)
    parser.add_argument('--batches', type=cli.count_or_all, default=0,
                        help='use at most this many batches, for a quick try; 0 or "all" for every image '
                             '(default: all)')
    parser.add_argument('--lfw_dir',
                        help='the LFW folder, one folder of images per person (<Name>/<Name>_0001.jpg); required '
                             'unless --print_all_names')
    parser.add_argument('--pairs',
                        help='a pairs.txt whose images to use (default: <facenet_dir>/data/pairs.txt; without '
                             'either, every image under --lfw_dir)')
    return cli.parse_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    if args.print_all_names:
        return facenet.print_all_names(args)
    if shards.requested(args):  # one shard of the faces, or all of them on Dask: the same steps, spread out
        return shards.run(facenet.EXAMPLE, args)
    # The model: a TF1 session holding FaceNet, session.run of the --layers (BatchNorm in inference mode) as
    # its forward_func (`utils.examples.facenet.open_model`).
    with facenet.open_model(args) as model:
        dataset = facenet.open_dataset(args, model)
        attribution = cli.attribution_options(args, model)  # --attribution, --erf: what the model can give
        cli.ensure_output_dirs(args)  # once the model, layers and images are known to be good
        fields = pipeline.measure_receptive_fields(model, cache=cli.recfield_cache(args))
        trackers = pipeline.scan(model, dataset, args.num_samples, candidates_per_sample=args.candidates_per_sample,
                                 bottom_k=args.bottom_k)
        pipeline.draw(model, fields, trackers, args.out_dir, args.num_channels, args.tensorboard_dir, dataset,
                      args.heatmap, attribution, args.num_samples)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
