"""The example of your own Keras model (the keras_*.py scripts): its flags, preprocessing and images.

The model is opened by the Keras adapter (`utils.models.keras_file`). Images come from `--images_dir` or
`--images_list`: each is resized so that it covers the model's input (its shorter side, or both sides for a
non-square input) and cut to its centre, then preprocessed with one of the conventions of `keras.applications`
(`PREPROCESSING`).
"""

import cv2
import numpy as np

from utils.base.layer_names import names_from_flags
from utils.core import pipeline
from utils.core.model import Example
from utils.data import images
from utils.models import keras_file

# --preprocess: what the network takes, from uint8 RGB pixels, and the range of the values it gets.
IMAGENET_MEAN_RGB = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD_RGB = np.array([0.229, 0.224, 0.225], np.float32)
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
PREPROCESSING = {
    'none': 'pixels as they are, 0..255 RGB',
    'tf': 'scaled to -1..1 (MobileNet, Inception, ...)',
    'torch': 'scaled to 0..1, minus the ImageNet mean, divided by its standard deviation (DenseNet, ...)',
    'caffe': 'BGR, minus the ImageNet mean (VGG16, ResNet50, ...)',
}
def add_arguments(parser):
    """Adds `--model`, `--image_size`, `--preprocess` and `--unsafe_load`, the flags of both Keras scripts."""
    parser.add_argument('--model', required=True, help='a Keras 3 model file (.keras) or a legacy .h5 file')
    parser.add_argument('--image_size', type=int, nargs=2, metavar=('H', 'W'),
                        help='input height and width, for a model whose input size is free (default: the '
                             'model\'s own input size)')
    parser.add_argument('--preprocess', choices=sorted(PREPROCESSING), default='none',
                        help='how pixels become network inputs, as keras.applications does it: '
                             + '; '.join(f'{name}: {text}' for name, text in PREPROCESSING.items())
                             + ' (default: %(default)s)')
    parser.add_argument('--unsafe_load', action='store_true',
                        help='allow a model that holds Python code (Lambda layers): loading it RUNS THAT CODE, so '
                             'use it only for files you trust')


def value_range(mode):
    """`(low, high)` of the values `preprocess(..., mode)` gives (for `recfield.ReceptiveField`)."""
    if mode == 'none':
        return 0.0, 255.0
    if mode == 'tf':
        return -1.0, 1.0
    if mode == 'torch':
        return float((-IMAGENET_MEAN_RGB / IMAGENET_STD_RGB).min()), float(
            ((1 - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB).max())
    return float(-CAFFE_MEAN_BGR.max()), float(255 - CAFFE_MEAN_BGR.min())


def preprocess(bgr_images, mode):
    """uint8 BGR images `[..., 3]` (OpenCV's order) to the network's float32 input under `mode`."""
    bgr = np.asarray(bgr_images, np.float32)
    if mode == 'caffe':
        return bgr - CAFFE_MEAN_BGR
    rgb = bgr[..., ::-1]
    if mode == 'tf':
        return rgb / 127.5 - 1
    if mode == 'torch':
        return (rgb / 255 - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB
    return np.ascontiguousarray(rgb)


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
                                 args.batch_size, value_range(args.preprocess), args.unsafe_load,
                                 getattr(args, 'num_samples', None), getattr(args, 'num_channels', None))


def open_dataset(args, model):
    """The images of `--images_dir` or `--images_list`, each resized to cover the model's input and cut to its
    centre, as a `utils.core.pipeline.Dataset`; they are listed from their headers and decoded when their batch is
    read (`utils.data.images.decoded_batches`). Each is named by its path under the folder, or as the list gives it.

    Raises:
        FileNotFoundError, ValueError: see `utils.data.images.list_images`.
    """
    if not args.images_dir and not args.images_list:
        raise ValueError('--images_dir is required: a folder of images to run through the model (or give '
                         '--images_list, a file of image paths).')
    height, width = model.imshape[1:3]
    shorter_side = max(height, width)
    files, _ = images.list_images(args.images_dir or None, args.images_list or None, shorter_side,
                                  args.max_image_pixels)
    paths = [file.path for file in files]

    def prepare(image):
        return centre_crop(images.resize_shorter_side(image, shorter_side), height, width)

    def read(start, stop):
        batches = images.decoded_batches(paths[start:stop], prepare, args.batch_size, start, args.max_image_pixels)
        return ((preprocess(batch, args.preprocess), batch, indices) for batch, indices in batches)

    return pipeline.Dataset([file.name for file in files], args.batch_size, read)


def centre_crop(image, height, width):
    """The image resized (keeping its aspect) so that it covers `height x width`, cut to its centre."""
    scale = max(height / image.shape[0], width / image.shape[1])
    size = (max(width, round(image.shape[1] * scale)), max(height, round(image.shape[0] * scale)))  # (w, h)
    if size == (image.shape[1], image.shape[0]):  # already covers it (resized when read): OpenCV would copy it
        resized = image
    else:
        resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    return resized[top:top + height, left:left + width]


EXAMPLE = Example('keras', open_model, open_dataset)
