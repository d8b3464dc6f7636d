"""Command-line pieces shared by the example scripts: the common flags, logging, and errors as exit codes.

Every `*_activations.py` script takes `add_common_arguments`, `add_activation_arguments` and
`add_tensorboard_argument`, every `*_recfield.py` script `add_common_arguments`; both end with
`sys.exit(run_main(main))`.
"""

import argparse
import logging
import sys

import cv2

from activations import CANDIDATES_PER_SAMPLE
from utils.base import ctrl_c, progress
from utils.base.files import ensure_writable_dir, lock_folder, release_folders, remove_stale_temporaries
from utils.core.attributing import AttributionOptions, check_options
from utils.core.recfield_cache import RecfieldCache, default_dir as default_cache_dir
from utils.data import images
from utils.probing.attribution import DEFAULT_IG_STEPS, METHODS

LOGGING_LEVELS = ('DEBUG', 'INFO', 'WARNING', 'ERROR')
_opencv = cv2.utils.logging
OPENCV_LOG_LEVELS = {'DEBUG': _opencv.LOG_LEVEL_INFO, 'INFO': _opencv.LOG_LEVEL_WARNING,
                     'WARNING': _opencv.LOG_LEVEL_WARNING, 'ERROR': _opencv.LOG_LEVEL_ERROR}


def positive_int(text):
    """argparse type: an integer >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be at least 1, got {text}')
    return value


def non_negative_int(text):
    """argparse type: an integer >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be 0 or more, got {text}')
    return value


def count_or_all(text):
    """argparse type: an integer >= 0, or `all`, returned as 0 (0 and `all` both mean no limit)."""
    if text.strip().lower() == 'all':
        return 0
    try:
        return non_negative_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f'must be a count (0 or more) or "all", got {text}') from None


def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None


def add_common_arguments(parser, default_layers, default_out_dir, default_batch_size=16):
    """Adds `--layers`, `--out_dir`, `--print_all_names`, `--batch_size`, `--logging_level`, `--recfield_cache`
    and `--no_recfield_cache`.

    `default_layers` is a list of layer names, or a phrase saying how the script picks them when `--layers`
    is not given (then `args.layers` is None).
    """
    if isinstance(default_layers, str):
        default, shown = None, default_layers
    else:
        default = [','.join(default_layers)]
        shown = default[0]
    parser.add_argument('--layers', nargs='+', default=default, metavar='NAMES',
                        help='names of the layers to visualize, separated by commas or spaces (default: '
                             f'{shown}); see --print_all_names')
    parser.add_argument('--out_dir', default=default_out_dir,
                        help='folder for the pictures, created if missing (default: %(default)s)')
    parser.add_argument('--print_all_names', action='store_true',
                        help='print the name and shape of every tensor computed from the images, then exit')
    parser.add_argument('--batch_size', type=positive_int, default=default_batch_size,
                        help='images per forward pass (default: %(default)s)')
    add_logging_arguments(parser)
    parser.add_argument('--recfield_cache', metavar='DIR', default=default_cache_dir(),
                        help='keep measured receptive fields in this folder and reuse them in later runs of the '
                             'same model, layers and image size (default: %(default)s)')
    parser.add_argument('--no_recfield_cache', action='store_true',
                        help='measure the receptive fields again and store nothing')


def add_logging_arguments(parser, default_level='WARNING'):
    """Adds `--logging_level` and `--quiet` (see `parse_args`)."""
    parser.add_argument('--logging_level', default=default_level, type=str.upper, choices=LOGGING_LEVELS,
                        help='how much to log (default: %(default)s)')
    parser.add_argument('--quiet', action='store_true',
                        help='print only results and errors: no progress bars, no warnings')


def recfield_cache(args):
    """The `utils.core.recfield_cache.RecfieldCache` of `--recfield_cache`, or None with `--no_recfield_cache`."""
    return None if args.no_recfield_cache else RecfieldCache(args.recfield_cache)


def add_activation_arguments(parser):
    """Adds the flags of every `*_activations.py` script: `--num_channels`, `--num_samples`, `--bottom_k`,
    `--allow_repeats`, `--candidates_per_sample`, `--heatmap`, `--tensorboard_dir` and the shard flags
    (`add_shard_arguments`)."""
    parser.add_argument('--num_channels', type=count_or_all, default=10,
                        help='channels to draw per layer: the first ones that fire; "all" or 0 for every channel '
                             'that fires (default: %(default)s)')
    parser.add_argument('--num_samples', type=positive_int, default=5,
                        help='strongest images to show per channel (default: %(default)s)')
    parser.add_argument('--bottom_k', type=non_negative_int, default=0, metavar='N',
                        help='also show per channel the N weakest images, those of the lowest maxima (most telling for '
                             'layers before their ReLU), as <layer>-bottom.jpg, in the gallery and in '
                             'activations.json; every image, even where the strongest show distinct places only '
                             '(default: 0, none)')
    parser.add_argument('--allow_repeats', action='store_true',
                        help='show the strongest images of each channel even where several show one place of a '
                             'photograph (overlapping tiles, mirror images); by default the lists of images cut from '
                             'photographs (the VGG16 example) show each place once. Other datasets are not affected')
    parser.add_argument('--candidates_per_sample', type=positive_int, default=CANDIDATES_PER_SAMPLE, metavar='N',
                        help='for images cut from photographs: keep N x --num_samples images per channel during the '
                             'scan, among which the lists of distinct places are chosen; raise it where a warning says '
                             'a list came out short (default: %(default)s)')
    parser.add_argument('--heatmap', action='store_true',
                        help='also draw, over each image of the pictures, where the channel fires on it: its feature '
                             'map, placed by the receptive fields, as a translucent colour map (runs the kept images '
                             'through the network again; single runs only, not shards or Dask)')
    add_attribution_arguments(parser)
    add_tensorboard_argument(parser)
    add_shard_arguments(parser)


def add_attribution_arguments(parser):
    """Adds `--attribution`, `--ig_steps`, `--occlusion_window`, `--occlusion_stride`, `--erf` and `--erf_images`
    (see `attribution_options` and `utils.core.attributing`)."""
    group = parser.add_argument_group(
        'why a patch fires', 'attributions of the drawn patches and effective receptive fields, computed after the '
        'scan on the images they need (read again); see the README')
    group.add_argument('--attribution', choices=METHODS, metavar='METHOD',
                       help='for every drawn channel\'s kept images, how much each pixel of the patch adds to the '
                            'firing: occlusion (forward passes only, any model), gradients (gradient x input) or '
                            'integrated_gradients (TensorFlow and Keras models); writes <out_dir>/attributions.npz '
                            'and <layer>-attr.jpg')
    group.add_argument('--ig_steps', type=positive_int, default=DEFAULT_IG_STEPS, metavar='N',
                       help='steps of integrated gradients from the reference image (default: %(default)s)')
    group.add_argument('--occlusion_window', type=positive_int, metavar='PIXELS',
                       help='side of the occluding square (default: a quarter of the patch\'s longer side)')
    group.add_argument('--occlusion_stride', type=positive_int, metavar='PIXELS',
                       help='step between occluding squares, at most the window (default: half the window)')
    group.add_argument('--erf', action='store_true',
                       help='measure every layer\'s effective receptive field (Luo et al. 2016), print how much of '
                            'the exact field holds 50 %% and 90 %% of its weight, and write <out_dir>/erf.npz and '
                            'erf-<layer>.png')
    group.add_argument('--erf_images', type=count_or_all, default=0, metavar='N',
                       help='average the effective receptive fields over N images spread over the dataset; 0 or '
                            '"all" for every image (default: all)')


def attribution_options(args, model=None):
    """The `utils.core.attributing.AttributionOptions` of a script's flags, checked against the model (before the
    scan: a gradient method for a model that runs forward only is refused).

    Raises:
        ValueError: see `utils.core.attributing.check_options`.
    """
    options = AttributionOptions(args.attribution, args.ig_steps, args.occlusion_window, args.occlusion_stride,
                                 args.erf, args.erf_images)
    if model is not None:
        check_options(model, options)
    return options


def add_image_files_arguments(parser, images_dir_help):
    """Adds `--images_dir` (its help: `images_dir_help`), `--images_list` and `--max_image_pixels`, the flags of
    scripts that read image files (`utils.data.images.list_images`)."""
    sources = parser.add_mutually_exclusive_group()
    sources.add_argument('--images_dir', help=images_dir_help)
    sources.add_argument('--images_list', metavar='FILE',
                         help='use the images this text file lists instead, one path per line (absolute, or relative '
                              'to the file\'s folder), in its order')
    parser.add_argument('--max_image_pixels', type=positive_int, default=images.MAX_IMAGE_PIXELS, metavar='N',
                        help='skip images of more than N pixels (height times width, read from the file\'s header): '
                             'they would take too much memory to decode (default: %(default)s)')


def add_shard_arguments(parser):
    """Adds `--num_shards`, `--shard_index`, `--dask_scheduler`, `--dask_workers` and `--states` (see
    `utils.running.shards`)."""
    group = parser.add_argument_group(
        'shards', 'scan part of the dataset, or all of it on a Dask cluster; see utils/running/shards.py')
    group.add_argument('--num_shards', type=positive_int, metavar='N',
                       help='cut the dataset into N shards (contiguous runs of whole batches). With --shard_index, '
                            'scan one and save its state per layer as <out_dir>/state-<layer>-<I>-of-<N>.npz '
                            'instead of drawing; merge them with utils/merge_activations.py. With '
                            '--dask_scheduler, the number of tasks (default: one per worker thread)')
    group.add_argument('--shard_index', type=non_negative_int, metavar='I', help='the shard to scan, 0 to N-1')
    group.add_argument('--dask_scheduler', metavar='ADDRESS',
                       help='scan the shards as tasks on the Dask cluster whose scheduler is at ADDRESS '
                            '(tcp://host:8786), or "local" for a LocalCluster on this machine; the states are '
                            'merged and drawn here, and saved as <out_dir>/state-<layer>.npz')
    group.add_argument('--dask_workers', type=positive_int, metavar='N',
                       help='with --dask_scheduler local: worker processes (default: --num_shards or the CPU '
                            'cores, whichever is fewer)')
    group.add_argument('--states', nargs='+', metavar='PATH',
                       help='instead of scanning, draw the state files of an earlier sharded scan with the same flags '
                            '(merged as utils/merge_activations.py merges them), with what needs the model: '
                            '--attribution, --erf, --heatmap; only the images they need are read again')


def add_tensorboard_argument(parser):
    """Adds `--tensorboard_dir` (see `utils.pictures.drawing.draw_layers`)."""
    parser.add_argument('--tensorboard_dir', metavar='DIR',
                        help='also write each layer\'s pictures to this TensorBoard log folder, created if missing, '
                             'as image summaries tagged <layer>/full and <layer>/crop with the receptive field in '
                             'their description; see them with tensorboard --logdir DIR')


def parse_args(parser, argv):
    """Parses a script's flags and sets up logging at its `--logging_level`, or errors only and no progress bars
    with `--quiet` (`add_logging_arguments`).

    Returns:
        the parsed flags.
    """
    args = parser.parse_args(argv)
    setup_logging('ERROR' if args.quiet else args.logging_level)
    progress.enabled = not args.quiet
    # OpenCV logs on its own (`[ WARN:0@0.1] ...` lines): at the same level, so that --quiet quiets it too.
    cv2.utils.logging.setLogLevel(OPENCV_LOG_LEVELS['ERROR' if args.quiet else args.logging_level])
    return args


def setup_logging(level):
    """Logs to stderr at `level` (a name from LOGGING_LEVELS)."""
    logging.basicConfig(format='%(levelname)s %(name)s: %(message)s')
    logging.getLogger().setLevel(getattr(logging, level))  # also where handlers exist already (basicConfig skips)


def ensure_output_dirs(args, lock=True):
    """Makes sure `--out_dir`, and `--tensorboard_dir` where the script has it and it is given, can be written;
    takes `--out_dir` for this run (`utils.base.files.lock_folder`, let go by `run_main`) and removes temporary
    files that killed runs left there.

    Args:
        args: the script's flags.
        lock: take the folder; False for a shard, whose states go beside other shards' at the same time.

    Raises:
        ValueError: see `utils.base.files.ensure_writable_dir`; another run is writing into `--out_dir`.
    """
    ensure_writable_dir(args.out_dir)
    if lock:
        lock_folder(args.out_dir)
    remove_stale_temporaries(args.out_dir)
    if getattr(args, 'tensorboard_dir', None):
        ensure_writable_dir(args.tensorboard_dir, '--tensorboard_dir')


def run_main(main, argv=None):
    """Runs `main(argv)` and turns bad input into a one-line message.

    Returns:
        `main`'s return value (None counts as 0); 2 after a `ValueError` or `OSError` (a missing file, an
        unwritable folder), printed as `error: <message>` on stderr without a traceback; 130 after Ctrl-C,
        printed as `interrupted` (outputs are written atomically, so none is left half-written).
    """
    ctrl_c.restore()  # from here Ctrl-C is a KeyboardInterrupt, caught below
    try:
        status = main(argv)
        return 0 if status is None else status
    except (ValueError, OSError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    finally:
        release_folders()  # the output folders this run took
