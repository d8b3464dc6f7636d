"""What the examples of your own model share (the keras_*.py and onnx_*.py scripts): the flags of the model file,
its input size and preprocessing, and the images.

Images come from `--images_dir` or `--images_list`; where every image of `--images_dir` lies in a subfolder
(`<images_dir>/<class>/...`), the subfolders are the images' classes (`utils.data.images.folder_classes`). Each is
resized so that it covers the model's input (its shorter side, or both sides for a non-square input) and cut to its
centre, then preprocessed with one of the conventions of `keras.applications` (`PREPROCESSING`). The network inputs are `[batch, height, width, 3]` whatever the model's own
layout: adapters of channels-first models transpose them.
"""

import cv2
import numpy as np

from utils.core import pipeline
from utils.data import images

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


def add_arguments(parser, model_help, default_preprocess):
    """Adds `--model`, `--image_size` and `--preprocess`.

    Args:
        parser: an `argparse.ArgumentParser`.
        model_help: what `--model` takes.
        default_preprocess: the default of `--preprocess`, a key of `PREPROCESSING`.
    """
    parser.add_argument('--model', required=True, help=model_help)
    parser.add_argument('--image_size', type=int, nargs=2, metavar=('H', 'W'),
                        help='input height and width, for a model whose input size is free (default: the '
                             'model\'s own input size)')
    parser.add_argument('--preprocess', choices=sorted(PREPROCESSING), default=default_preprocess,
                        help='how pixels become network inputs, as keras.applications does it: '
                             + '; '.join(f'{name}: {text}' for name, text in PREPROCESSING.items())
                             + ' (default: %(default)s)')


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


def open_dataset(args, model):
    """The images of `--images_dir` or `--images_list`, each resized to cover the model's input and cut to its
    centre, as a `utils.core.pipeline.Dataset`; they are listed from their headers and decoded when their batch is
    read (`utils.data.images.decoded_batches`). Each is named by its path under the folder, or as the list gives it;
    images of `--images_dir` that all lie in subfolders have those as classes (`utils.data.images.folder_classes`).

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

    names = [file.name for file in files]
    classes = images.folder_classes(names) if args.images_dir else None
    return pipeline.Dataset(names, args.batch_size, read, classes)


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
