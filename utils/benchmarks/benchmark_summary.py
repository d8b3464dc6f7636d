"""Every figure of the README's "Performance" section from one run: the benchmarks one after the other.

    python utils/benchmarks/benchmark_summary.py        # about 9 minutes on 2 CPU cores
    python utils/benchmarks/benchmark_summary.py --help

1. Receptive fields of the VGG16 example at 128x128: its five default layers and conv5_3 alone, line by line
   (before) against the method now (`utils/benchmarks/benchmark_vgg16_recfield.py`).
2. Receptive fields of 14 (VGG16's conv2_2) and 15 (the CIFAR-10 network's conv2) on 512x512 input: the probe
   images the method needs, checked against the closed form (line by line would take `4 * (512 + 512)`
   probe images, far too long to run here: it is computed, not measured).
3. The scan's bookkeeping against the forward pass alone (`utils/benchmarks/benchmark_scan.py`).
4. Shards and Dask workers against one process, one TensorFlow thread each (`utils/benchmarks/benchmark_shards.py`).
5. How often the masking guard misses, on random networks built to hide probes, against the closed form
   (`utils/benchmarks/benchmark_masking.py`).
6. Streaming image folders: peak memory over 200 and 2,000 photos, decoding, forward pass and scan rates
   (`utils/benchmarks/benchmark_streaming.py`).

Each part checks its own results; a failed check ends the script with an `error:` line and exit status 2.
Times are of one run on whatever else the machine is doing: compare ratios within a part.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import argparse  # noqa: E402
import time  # noqa: E402

from recfield import ReceptiveField  # noqa: E402
from utils.benchmarks import (benchmark_masking, benchmark_recfield, benchmark_scan, benchmark_shards,  # noqa: E402
                              benchmark_streaming, benchmark_vgg16_recfield)
from utils.benchmarks.closed_form import boxes_from_dependencies, chain_dependencies  # noqa: E402
from utils.running import cli  # noqa: E402


# VGG16 up to conv2_2: two 3x3 convolutions, a 2x2 max-pool of stride 2, two 3x3 convolutions.
VGG16_CONV2_2 = ('vgg_16/conv2/conv2_2/Relu:0',
                 [dict(kernel=3), dict(kernel=3), dict(kernel=2, stride=2, padding='VALID'), dict(kernel=3),
                  dict(kernel=3)])


def large_image_fields(size=512, batch_size=16):
    """Part 2: `vgg16_field_14` and `large_image_field`, a line each."""
    return vgg16_field_14(size, batch_size) + '\n' + large_image_field(size=size, batch_size=batch_size)


def vgg16_field_14(size=512, batch_size=16):
    """Measures VGG16's conv2_2 (receptive field 14) on `size` x `size` input as the VGG16 example does and
    checks it against the closed form; returns a line of text.

    Raises:
        benchmark_recfield.CheckFailed: boxes other than the closed-form ones.
    """
    name, chain = VGG16_CONV2_2
    with benchmark_vgg16_recfield.open_model([name], size, batch_size) as model:
        forward_func = benchmark_vgg16_recfield.warmed_up(model, [0])
        started = time.perf_counter()
        field = ReceptiveField(model.imshape, forward_func, value_range=model.value_range,
                               full_batches=not model.any_batch_size)
        seconds = time.perf_counter() - started
    expected = boxes_from_dependencies(chain_dependencies(size, chain), chain_dependencies(size, chain))
    benchmark_recfield.check_boxes('conv2_2', field.recfield, expected, 'closed-form')
    return _field_line('VGG16 conv2_2', field, size, seconds)


def _field_line(what, field, size, seconds):
    line_by_line = 4 * (size + size)
    return (f'{what} (receptive field {field.size[0]}, stride {field.stride[0]}) on {size}x{size}: '
            f'{field.num_probe_images} probe images, {seconds:.1f} s; line by line would take {line_by_line} '
            f'({line_by_line / field.num_probe_images:.1f}x). check: boxes equal the closed-form ones: OK')


def large_image_field(layer='conv2', size=512, batch_size=16):
    """Part 2: measures `layer` of `utils.benchmarks.benchmark_recfield`'s network on `size` x `size` input with the
    default method and checks it against the closed form; returns a line of text.

    Raises:
        benchmark_recfield.CheckFailed: boxes other than the closed-form ones.
    """
    with benchmark_recfield.open_model([layer], batch_size, size) as model:
        started = time.perf_counter()
        field = ReceptiveField(model.imshape, model.forward_func_for([0]), value_range=model.value_range)
        seconds = time.perf_counter() - started
    benchmark_recfield.check_boxes(layer, field.recfield, benchmark_recfield.closed_form_boxes(layer, size),
                                   'closed-form')
    return _field_line(f'CIFAR-10 {layer}', field, size, seconds)


PARTS = {
    'vgg16_recfield': ('Receptive fields: VGG16 at 128x128', benchmark_vgg16_recfield.benchmark),
    'large_image': ('Receptive fields of 14 and 15 on 512x512', large_image_fields),
    'scan': ("The scan's bookkeeping", benchmark_scan.benchmark),
    'shards': ('Shards and Dask workers, one thread each', benchmark_shards.benchmark),
    'masking': ('How often the masking guard misses', benchmark_masking.benchmark),
    'streaming': ('Streaming image folders', benchmark_streaming.benchmark),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--parts', nargs='+', choices=tuple(PARTS), default=list(PARTS),
                        help='the parts to run, in order')
    return parser.parse_args(argv)


def main(argv=None):
    """Runs the parts and prints each one's title and table as soon as it is done."""
    args = parse_args(argv)
    cli.setup_logging('WARNING')
    for number, part in enumerate(args.parts, start=1):
        title, run = PARTS[part]
        print(f'== {number}. {title}', flush=True)
        print(run(), end='\n\n', flush=True)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
