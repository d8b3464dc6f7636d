"""The example of your own ONNX model (the onnx_*.py scripts): its flags and model; its images and preprocessing
are those of every model of your own (`utils.examples.own_model`).

The model is opened by the ONNX adapter (`utils.models.onnx_file`), run by onnxruntime on the CPU.
"""

from utils.base.layer_names import names_from_flags
from utils.core.model import Example
from utils.examples import own_model
from utils.models import onnx_file

# The images of every model of your own, cut to the model's input and --preprocess'ed.
open_dataset = own_model.open_dataset


def add_arguments(parser):
    """Adds `--model`, `--image_size` and `--preprocess`, the flags of both ONNX scripts (`--preprocess` torch by
    default: most ONNX files are PyTorch exports)."""
    own_model.add_arguments(parser, 'an ONNX model file (.onnx), e.g. from torch.onnx.export', 'torch')


def print_all_names(args):
    """What `--print_all_names` does in both ONNX scripts: prints every 4-D tensor computed from the input, with
    its shape (`utils.models.onnx_file.describe_tensors`).

    Raises:
        FileNotFoundError, ValueError: see `utils.models.onnx_file.load_model`; a model without 4-D tensors.
    """
    print(onnx_file.describe_tensors(onnx_file.load_model(args.model)))


def open_model(args):
    """The `--model` with the scripts' flags (`--layers`, `--image_size`, `--preprocess`, `--batch_size`) as a
    `utils.core.model.Model` (`utils.models.onnx_file.open_model`).

    Raises:
        FileNotFoundError, ValueError: see `utils.models.onnx_file.open_model`.
    """
    return onnx_file.open_model(args.model, names_from_flags(args.layers) if args.layers else None, args.image_size,
                                args.batch_size, own_model.value_range(args.preprocess),
                                getattr(args, 'num_samples', None), getattr(args, 'num_channels', None))


EXAMPLE = Example('onnx', open_model, open_dataset)
