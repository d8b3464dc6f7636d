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

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import argparse  # noqa: E402
import tempfile  # noqa: E402

from utils import cifar10_model, cli  # noqa: E402
from utils.visualize import draw_receptive_fields  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    cli.add_common_arguments(parser, cifar10_model.DEFAULT_LAYERS,
                             os.path.join(tempfile.gettempdir(), 'cifar10_recfield'), default_batch_size=128)
    cifar10_model.add_arguments(parser, 'folder of checkpoints to use if there is one; not needed, fresh weights '
                                        'give the same receptive fields')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.logging_level)
    with cifar10_model.open_network(args) as (session, images_ph, layers):
        if layers is None:
            return 0
        cifar10_model.restore_checkpoint(session, args.train_dir, required=False)
        draw_receptive_fields(session, images_ph, layers, images_ph.shape.as_list(), cifar10_model.VALUE_RANGE,
                              args.out_dir)
    return 0


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
