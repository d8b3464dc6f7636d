"""The example of your own Keras model (the keras_*.py scripts): its flags and model; its images and preprocessing
are those of every model of your own (`utils.examples.own_model`).

The model is opened by the Keras adapter (`utils.models.keras_file`).
"""

from utils.base.layer_names import names_from_flags
from utils.core.model import Example
from utils.examples import own_model
from utils.models import keras_file

# The images of every model of your own, cut to the model's input and --preprocess'ed.
open_dataset = own_model.open_dataset


def add_arguments(parser):
    """Adds `--model`, `--image_size`, `--preprocess` and `--unsafe_load`, the flags of both Keras scripts."""
    own_model.add_arguments(parser, 'a Keras 3 model file (.keras) or a legacy .h5 file', 'none')
    parser.add_argument('--unsafe_load', action='store_true',
                        help='allow a model that holds Python code (Lambda layers): loading it RUNS THAT CODE, so '
                             'use it only for files you trust')


def print_all_names(args):
    """What `--print_all_names` does in both Keras scripts: loads `--model` and prints `describe_layers`.

    Raises:
        ValueError: see `utils.models.keras_file.load_model`; the model has no layer with a 4-D output.
    """
    model = keras_file.load_model(args.model, args.unsafe_load)
    keras_file.check_image_model(model, args.model)
    print(keras_file.describe_layers(model))


def open_model(args):
    """The `--model` with the scripts' flags (`--layers`, `--image_size`, `--preprocess`, `--batch_size`) as a
    `utils.core.model.Model` (`utils.models.keras_file.open_model`).

    Raises:
        FileNotFoundError, ValueError: see `utils.models.keras_file.open_model`.
    """
    return keras_file.open_model(args.model, names_from_flags(args.layers) if args.layers else None, args.image_size,
                                 args.batch_size, own_model.value_range(args.preprocess), args.unsafe_load,
                                 getattr(args, 'num_samples', None), getattr(args, 'num_channels', None))


EXAMPLE = Example('keras', open_model, open_dataset)
