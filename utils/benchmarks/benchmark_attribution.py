"""What attributions and effective receptive fields cost, next to the scan, on the VGG16 example's defaults.

    python utils/benchmarks/benchmark_attribution.py          # 2 channels a layer: about 6 minutes on 2 CPU cores
    python utils/benchmarks/benchmark_attribution.py --help

The VGG16 example as `vgg16_activations.py` runs it by default (128x128 tiles of scikit-image's photographs, five
layers, 5 images a channel) is scanned once; then, for the first `--num_channels` channels that fire in every
layer, each method of `--attribution` computes the attributions of their kept entries (`utils.core.attributing`),
and each layer's effective receptive field is measured by gradients over `--erf_images` tiles and by occlusion
over `--occlusion_images` tiles (the way of models without gradients; one forward pass per pixel of the exact field,
so only for fields up to `--occlusion_max_pixels`). It prints, per method, the network calls
(forward or gradient passes) and seconds per entry, and the seconds per entry as a multiple of the scan's seconds per
image; per layer, the effective field's passes and seconds by each way. Times are of one run: compare ratios.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import recfield  # noqa: E402
from activations import distinct_layers  # noqa: E402
from utils.core import attributing, pipeline  # noqa: E402
from utils.examples import vgg16  # noqa: E402
from utils.pictures.drawing import channels_to_draw  # noqa: E402
from utils.probing import attribution  # noqa: E402
from utils.running import cli  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--num_channels', type=cli.positive_int, default=2,
                        help='channels a layer whose entries get attributions (default: %(default)s)')
    parser.add_argument('--erf_images', type=cli.positive_int, default=64,
                        help='tiles the gradient effective fields average (default: %(default)s)')
    parser.add_argument('--occlusion_images', type=cli.positive_int, default=1,
                        help='tiles the occlusion effective fields average (default: %(default)s)')
    parser.add_argument('--image_size', type=int, default=vgg16.IMAGE_SIZE,
                        help='tile side, as vgg16_activations.py takes it (default: %(default)s)')
    parser.add_argument('--max_images', type=cli.count_or_all, default=0,
                        help='tiles to scan, as vgg16_activations.py takes it (default: all)')
    parser.add_argument('--occlusion_max_pixels', type=cli.positive_int, default=2000,
                        help='measure the occlusion effective field only of layers whose exact field has at most this '
                             'many pixels: each costs a forward pass (default: %(default)s)')
    cli.add_logging_arguments(parser)
    return cli.parse_args(parser, argv)


def example_args(image_size, max_images):
    """The flags of `vgg16_activations.py` run with its defaults but `--image_size` and `--max_images`."""
    parser = argparse.ArgumentParser()
    cli.add_common_arguments(parser, vgg16.default_layers(), tempfile.gettempdir())
    cli.add_activation_arguments(parser)
    cli.add_image_files_arguments(parser, '')
    parser.add_argument('--max_images', type=cli.count_or_all, default=0)
    vgg16.add_arguments(parser)
    return parser.parse_args(['--image_size', str(image_size), '--max_images', str(max_images)])


def calls_per_entry(method, layers):
    """The network calls (input images run) of a method's attributions, per entry: `method.count` of every task."""
    counts = [method.count(attribution.Task(None, None, None, field.recfield[y, x]))
              for _, field, tracker, channels in layers for channel in channels
              for y, x in tracker.channel(channel)[1].tolist()]
    return sum(counts) / len(counts)


def main(argv=None):
    args = parse_args(argv)
    example = example_args(args.image_size, args.max_images)
    lines = []
    with vgg16.open_model(example) as model:
        dataset = vgg16.open_dataset(example, model)
        fields = pipeline.measure_receptive_fields(model, print_lines=False)
        started = time.perf_counter()
        trackers = pipeline.scan(model, dataset, example.num_samples, print_line=False)
        scan_per_image = (time.perf_counter() - started) / len(dataset)
        lines.append(f'scan: {len(dataset)} tiles, {1000 * scan_per_image:.1f} ms per tile')
        layers = [(layer.name, fields[index], tracker) for index, (layer, tracker) in enumerate(zip(model.layers,
                                                                                                     trackers))]
        if dataset.places is not None:  # the entries a run draws: its top lists of distinct places
            layers, _ = distinct_layers(layers, dataset.places, example.num_samples)
        layers = [(name, field, tracker, channels_to_draw(tracker, args.num_channels, name))
                  for name, field, tracker in layers]
        num_entries = sum(len(tracker.channel(channel)[0]) for _, _, tracker, channels in layers
                          for channel in channels)
        lines.append(f'{"method":<22} {"calls/entry":>12} {"s/entry":>8} {"x scan/image":>13}')
        reference = attribution.reference_image(model.imshape[1:], model.value_range)
        for method in attribution.METHODS:
            options = attributing.AttributionOptions(method)
            started = time.perf_counter()
            for index, (name, field, tracker, channels) in enumerate(layers):
                attributing.attribute_layer(model, dataset, index, name, field, tracker, channels, options)
            per_entry = (time.perf_counter() - started) / num_entries
            calls = calls_per_entry(attribution.method_for(method, reference), layers)
            lines.append(f'{method:<22} {calls:>12.1f} {per_entry:>8.3f} {per_entry / scan_per_image:>13.1f}')
        lines.append(f'{"effective field":<30} {"gradients: calls":>17} {"s":>7} {"occlusion: calls":>17} {"s":>7}')
        for index, (name, field, _, _) in enumerate(layers):
            figures = []
            for way, num_images, function in (('gradients', args.erf_images, model.unit_gradients_func(index)),
                                              ('occlusion', args.occlusion_images, model.unit_values_func(index))):
                sample = attributing.erf_sample(len(dataset), num_images)
                per_image, field_pixels = recfield.effective_field_calls(field, way)
                calls = len(sample) * per_image
                if way == 'occlusion' and field_pixels > args.occlusion_max_pixels:
                    figures.append((calls, None))
                    continue
                started = time.perf_counter()
                erf = recfield.measure_effective_field(
                    (image for _, image in attributing.images_of(dataset, sample, 'the benchmark')), function, field,
                    way, model.value_range, model.imshape[0])
                figures.append((calls, time.perf_counter() - started, erf))
            (calls, seconds, erf), (occlusion_calls, occlusion_seconds, *_) = figures
            occlusion_time = 'not run' if occlusion_seconds is None else f'{occlusion_seconds:.1f}'
            lines.append(f'{name:<30} {calls:>17} {seconds:>7.1f} {occlusion_calls:>17} {occlusion_time:>7}'
                         f'   {erf.summary()}')
    print('\n'.join(lines))


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
