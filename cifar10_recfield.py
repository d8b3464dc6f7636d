"""Receptive fields of the CIFAR-10 tutorial network's layers, measured by probing the network.

For every --layers layer, on 24x24 inputs, measures which input pixels each feature pixel depends on, prints

    <layer> feature map is of shape HxWxC and has receptive field SxS (stride TxT, padding PxP)

and writes <out_dir>/recfield-<layer>.png, the receptive field of the centre feature pixel drawn on a grey
image (<layer> is the tensor name with '/' as '-' and ':' dropped).

No trained weights are needed: a receptive field depends on the architecture only, so freshly initialised
weights give the same boxes. The latest checkpoint in --train_dir is used if there is one.

    python cifar10_recfield.py
    python cifar10_recfield.py --layers pool2:0,norm2:0
"""

import argparse
import os
import sys
import tempfile

import utils.base.ctrl_c  # noqa: F401 (first: Ctrl-C while TensorFlow loads ends quietly)
from utils.core import pipeline
from utils.examples import cifar10
from utils.running import cli


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    cli.add_common_arguments(parser, cifar10.DEFAULT_LAYERS,
                             os.path.join(tempfile.gettempdir(), 'cifar10_recfield'), default_batch_size=128)
    cifar10.add_arguments(parser, 'folder of checkpoints to use if there is one; not needed, fresh weights '
                                  'give the same receptive fields')
    return cli.parse_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    if args.print_all_names:
        return cifar10.print_all_names(args)
    # The model: a TF1 session holding the tutorial network (fresh weights if --train_dir has no checkpoint: the
    # boxes are the same), session.run of the --layers as its forward_func (`utils.examples.cifar10.open_model`).
    with cifar10.open_model(args, checkpoint_required=False) as model:
        cli.ensure_output_dirs(args)  # once the model and layers are known to be good
        fields = pipeline.measure_receptive_fields(model, cache=cli.recfield_cache(args))
        pipeline.draw_receptive_fields(model, fields, args.out_dir)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
