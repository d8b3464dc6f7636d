"""`utils/models/onnx_file.py` and `utils/examples/onnx_model.py` in this process: loading and what is refused, the
4-D tensors of a file, maps NHWC whatever the file's layout (equal to onnxruntime's own), receptive fields equal to
the closed form, top activations equal to a brute-force scan, the dataset as the scripts open it. The models are
`onnx_fixtures`' (saved once per session, checked without the adapter in `test_onnx_fixtures.py`); the scripts
themselves run in `test_onnx_scripts.py`.
"""

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest

import onnx_activations
import recfield
from conftest import read_batches
from onnx_fixtures import (BAD_FILES, FREE_SIZE, IMAGE_SIZE, LAYERS, NETWORKS, NHWC_LAYERS, NOT_4D,
                           build_squeeze_excitation, closed_form_fields, expected_feature_tensors, probe_image_size,
                           runtime_maps)
from utils.core import pipeline
from utils.core.model import Layer, Model
from utils.examples import onnx_model
from utils.models import onnx_file

IMAGENET_MEAN_RGB = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD_RGB = np.array([0.229, 0.224, 0.225], np.float32)


def network_layers(network):
    """The tensors the tests measure: every layer of `LAYERS`, and `merged_nhwc` in an NHWC file."""
    return NHWC_LAYERS if network.layout == 'NHWC' else LAYERS


def open_network(network, layers=None, batch_size=4):
    """`onnx_file.open_model` of a fixture network, at `FREE_SIZE` where its size is free."""
    return onnx_file.open_model(network.path, network_layers(network) if layers is None else layers,
                                None if network.image_size else FREE_SIZE, batch_size)


def random_batch(network, count, seed=0):
    """`count` NHWC float32 images of the network's probe size, uniform in 0..1 (the default value range)."""
    return np.random.default_rng(seed).uniform(0, 1, (count, *probe_image_size(network), 3)).astype(np.float32)


# -- loading ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', list(NETWORKS))
def test_load_model_gives_the_files_model_proto(onnx_networks, name):
    model = onnx_file.load_model(onnx_networks[name].path)
    assert isinstance(model, onnx.ModelProto)
    assert [node.name for node in model.graph.node] == [node.name for node in
                                                        onnx.load(onnx_networks[name].path).graph.node]


def test_a_missing_file_is_file_not_found(onnx_bad_files):
    with pytest.raises(FileNotFoundError):
        onnx_file.load_model(onnx_bad_files['missing'])


@pytest.mark.parametrize('case', BAD_FILES)
def test_what_is_not_an_image_model_onnxruntime_runs_is_a_one_line_value_error(onnx_bad_files, case):
    with pytest.raises(ValueError) as raised:
        onnx_file.load_model(onnx_bad_files[case])
    message = str(raised.value)
    assert message.strip() and '\n' not in message.strip(), message


# -- the 4-D tensors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', list(NETWORKS))
def test_feature_tensors_are_the_4d_tensors_in_graph_order_in_the_files_layout(onnx_networks, name):
    network = onnx_networks[name]
    listed = onnx_file.feature_tensors(onnx_file.load_model(network.path))
    assert [(tensor, tuple(shape)) for tensor, shape in listed] == expected_feature_tensors(network)
    assert not {tensor for tensor, _ in listed} & set(NOT_4D + ['images'])


@pytest.mark.parametrize('name', ['nchw', 'nhwc', 'fixed_batch'])
def test_layers_have_their_channels_and_the_probe_shape_the_input_size(onnx_networks, name):
    network = onnx_networks[name]
    model = open_network(network)
    assert isinstance(model, Model)
    assert model.layers == [Layer(layer, network.channels[layer]) for layer in network_layers(network)]
    assert model.imshape[1:] == [*network.image_size, 3] and model.value_range == (0.0, 1.0)
    if network.batch:
        assert model.imshape[0] == network.batch
    else:
        assert 1 <= model.imshape[0] <= 4  # at most the batch size


def test_a_free_size_network_takes_image_size_and_needs_it(onnx_networks):
    network = onnx_networks['nchw_free_size']
    assert onnx_file.open_model(network.path, ['relu1'], FREE_SIZE).imshape[1:] == [*FREE_SIZE, 3]
    with pytest.raises(ValueError) as raised:
        onnx_file.open_model(network.path, ['relu1'])
    assert '\n' not in str(raised.value)


@pytest.mark.parametrize('names, expected', [
    (['relu4'], 'Did you mean'),
    (['conv'], 'Did you mean'),
    (['pooled'], 'pooled'),  # 2-D
    (['scores'], 'scores'),
], ids=['typo', 'prefix', 'pooled-2d', 'scores-2d'])
def test_layers_that_are_not_4d_tensors_of_the_file_are_refused(onnx_networks, names, expected):
    with pytest.raises(ValueError) as raised:
        onnx_file.open_model(onnx_networks['nchw'].path, names)
    assert expected in str(raised.value) and '\n' not in str(raised.value)
    if names == ['relu4']:
        assert 'relu3' in str(raised.value)


# -- the forward function: maps NHWC, onnxruntime's own ----------------------------------------------------

@pytest.mark.parametrize('name', list(NETWORKS))
def test_maps_are_nhwc_and_onnxruntimes_own_whatever_the_files_layout(onnx_networks, name):
    network = onnx_networks[name]
    model = open_network(network)
    count = network.batch or 3
    batch = random_batch(network, count)
    expected = runtime_maps(network, network_layers(network), batch)
    maps = model.run(batch)
    for layer, feature_map, reference in zip(model.layers, maps, expected):
        assert feature_map.shape == reference.shape, layer  # [batch, h, w, channels]
        np.testing.assert_allclose(feature_map, reference, rtol=1e-5, atol=1e-5, err_msg=layer.name)
    # with the layers keyword: only those, in that order
    chosen = [model.layers[-1], model.layers[0]]
    for feature_map, reference in zip(model.forward_func(batch, layers=chosen), [expected[-1], expected[0]]):
        np.testing.assert_allclose(feature_map, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', ['fixed_batch', 'fixed_batch_2'])
def test_a_fixed_batch_network_takes_fewer_images_than_its_batch(onnx_networks, name):
    network = onnx_networks[name]
    model = open_network(network)
    batch = random_batch(network, network.batch, seed=5)
    whole = model.run(batch)
    for count in range(1, network.batch + 1):
        for feature_map, reference in zip(model.run(batch[:count]), whole):
            assert len(feature_map) == count
            np.testing.assert_allclose(feature_map, reference[:count], rtol=1e-5, atol=1e-5)


# -- receptive fields: the closed form ----------------------------------------------------------------------

@pytest.mark.parametrize('name', list(NETWORKS))
def test_receptive_fields_equal_the_closed_form(onnx_networks, name):
    network = onnx_networks[name]
    model = open_network(network)
    fields = recfield.measure_model(model)
    expected = closed_form_fields(*probe_image_size(network))
    for layer, field in zip(network_layers(network), fields):
        np.testing.assert_array_equal(field.recfield, expected[layer].recfield, err_msg=layer)
        assert field.feature_shape == expected[layer].feature_shape, layer


# -- top activations: a brute-force scan ---------------------------------------------------------------------

def generated_dataset(network, count, batch_size, seed=2):
    """A `pipeline.Dataset` of `count` random images of the network's size in batches of `batch_size` (the last
    short), and the NHWC float32 inputs of them all. Display images are the inputs scaled to uint8."""
    inputs = random_batch(network, count, seed)
    inputs[::3] *= 0.5  # some darker images: firings spread out
    display = np.round(inputs * 255).astype(np.uint8)

    def read(start, stop):
        for first in range(start, stop, batch_size):
            last = min(first + batch_size, stop)
            yield inputs[first:last], display[first:last], np.arange(first, last)

    return pipeline.Dataset([f'image_{index:02d}' for index in range(count)], batch_size, read), inputs


@pytest.mark.parametrize('name, batch_size', [('nchw', 4), ('nhwc', 3), ('nchw_free_size', 4), ('fixed_batch', 1),
                                              ('fixed_batch_2', 2)])
def test_top_activations_are_the_brute_force_maxima_of_onnxruntimes_maps(onnx_networks, name, batch_size):
    network = onnx_networks[name]
    num_samples, count = 3, 11  # 11: the last batch is short
    model = open_network(network, batch_size=batch_size)
    dataset, inputs = generated_dataset(network, count, batch_size)
    trackers = pipeline.scan(model, dataset, num_samples)
    for layer, tracker, reference in zip(model.layers, trackers, runtime_maps(network, model.layer_names, inputs)):
        firings = reference.max(axis=(1, 2))  # [image, channel]
        assert tracker.num_seen == count and tracker.num_channels == layer.num_channels
        for channel in range(layer.num_channels):
            top = np.sort(firings[:, channel])[::-1][:num_samples]
            got_firings, coords, indices, images = tracker.channel(channel)
            np.testing.assert_allclose(got_firings, top, rtol=1e-5, atol=1e-5, err_msg=f'{layer.name} {channel}')
            # each kept image fires that much, at the coordinates kept (NHWC: y, x)
            np.testing.assert_allclose(firings[indices, channel], got_firings, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(reference[indices, coords[:, 0], coords[:, 1], channel], got_firings,
                                       rtol=1e-5, atol=1e-5)
            for index, image in zip(indices, images):
                np.testing.assert_array_equal(image, np.round(inputs[index] * 255).astype(np.uint8))


# -- the example: flags, model and dataset as the scripts open them -----------------------------------------

def script_flags(path, *flags):
    """The flags of onnx_activations.py (`onnx_model.open_model` and `open_dataset` read them)."""
    return onnx_activations.parse_args(['--model', path, '--batch_size', '4', *map(str, flags)])


def test_example_preprocesses_like_torch_by_default(onnx_networks, onnx_images_dir):
    network = onnx_networks['nhwc']
    args = script_flags(network.path, '--images_dir', onnx_images_dir, '--layers', 'relu1,merged_nhwc')
    assert args.preprocess == 'torch'
    model = onnx_model.open_model(args)
    assert model.layers == [Layer('relu1', 4), Layer('merged_nhwc', 9)]
    assert model.value_range == pytest.approx((-0.485 / 0.229, (1 - 0.406) / 0.225), abs=1e-4)
    assert onnx_model.EXAMPLE.open_model is onnx_model.open_model
    assert onnx_model.EXAMPLE.open_dataset is onnx_model.open_dataset
    dataset = onnx_model.open_dataset(args, model)
    assert len(dataset) == 10 and dataset.ids == sorted(dataset.ids) and 'more/image_04.png' in dataset.ids
    for inputs, display, _ in read_batches(dataset):
        assert inputs.dtype == np.float32 and inputs.shape[1:] == (*network.image_size, 3)  # NHWC, as fed
        assert display.dtype == np.uint8 and display.shape[1:] == (*network.image_size, 3)
        rgb = display[..., ::-1].astype(np.float32) / 255
        np.testing.assert_allclose(inputs, (rgb - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('mode, expected', [('none', [0, 0, 255]), ('tf', [-1, -1, 1]),
                                            ('caffe', [255 - 103.939, -116.779, -123.68])])
def test_example_preprocess_flag_picks_the_convention(onnx_networks, tmp_path, mode, expected):
    network = onnx_networks['nchw']
    blue = np.zeros((*network.image_size, 3), np.uint8)
    blue[..., 0] = 255  # OpenCV's BGR
    cv2.imwrite(str(tmp_path / 'blue.png'), blue)
    args = script_flags(network.path, '--images_dir', tmp_path, '--preprocess', mode, '--layers', 'relu1')
    model = onnx_model.open_model(args)
    [(inputs, _, _)] = read_batches(onnx_model.open_dataset(args, model))
    np.testing.assert_allclose(inputs[0, 5, 7], expected, rtol=1e-5, atol=1e-3)


def test_print_all_names_prints_every_4d_tensor_with_its_shape(onnx_networks, capsys):
    network = onnx_networks['nhwc_free_size']
    onnx_model.print_all_names(script_flags(network.path, '--print_all_names'))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(network.channels)
    for line, (_, shape) in zip(lines, expected_feature_tensors(network)):
        assert line.split(' ', 1)[1].replace(' ', '').strip('()[]').split(',') == [str(size) for size in shape], line


@pytest.mark.parametrize('pooling', ['GlobalAveragePool', 'ReduceMean', 'ReduceMean18'])
def test_a_squeeze_and_excitation_block_gets_its_local_field_and_the_scan_the_whole_network(tmp_path, pooling):
    path = build_squeeze_excitation(str(tmp_path / f'{pooling}.onnx'), pooling)
    model = onnx_file.open_model(path, ['relu1', 'pooled', 'scaled', 'relu2'], batch_size=4, value_range=(-1.0, 1.0))
    assert model.local_layers == {2, 3}
    assert model.fingerprint().endswith(', global poolings held')  # cached apart from whole fields
    relu1, pooled, scaled, relu2 = recfield.measure_model(model)
    assert (relu1.size, relu1.local) == ((3, 3), False) and (pooled.feature_shape, pooled.local) == ((1, 1), False)
    assert (pooled.recfield[0, 0] == [0, 0, 24, 24]).all()  # the pooling itself: the whole image
    assert (scaled.size, scaled.padding, scaled.local) == ((3, 3), (1, 1), True)
    assert (relu2.size, relu2.stride, relu2.padding, relu2.local) == ((5, 5), (1, 1), (2, 2), True)
    # The scan runs the network as it is: the gate follows each image.
    images = np.random.default_rng(2).uniform(-1, 1, (3, 24, 24, 3)).astype(np.float32)
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    expected = session.run(['relu2'], {'images': images.transpose(0, 3, 1, 2)})[0].transpose(0, 2, 3, 1)
    np.testing.assert_allclose(model.run(images)[3], expected, rtol=1e-5, atol=1e-6)


def test_weights_kept_beside_the_model_are_read_from_its_folder_only(onnx_networks, tmp_path):
    model = onnx.load(onnx_networks['nchw'].path)
    folder = tmp_path / 'model'
    folder.mkdir()
    path = str(folder / 'external.onnx')
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location='external.onnx.data', size_threshold=0)
    assert (folder / 'external.onnx.data').is_file()
    inside = onnx_file.open_model(path, ['relu1'], batch_size=2, value_range=(-1.0, 1.0))
    images = np.random.default_rng(3).uniform(-1, 1, (2, *IMAGE_SIZE, 3)).astype(np.float32)
    whole = onnx_file.open_model(onnx_networks['nchw'].path, ['relu1'], batch_size=2, value_range=(-1.0, 1.0))
    np.testing.assert_array_equal(inside.run(images)[0], whole.run(images)[0])
    assert inside.fingerprint() != whole.fingerprint()  # the weights' file is part of it
    # A model whose weights' location leads out of its folder is refused before anything is read.
    moved = onnx.load(path, load_external_data=False)
    for tensor in moved.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == 'location':
                entry.value = '../elsewhere.data'
    (tmp_path / 'elsewhere.data').write_bytes((folder / 'external.onnx.data').read_bytes())
    onnx.save_model(moved, str(folder / 'escaping.onnx'))
    with pytest.raises(ValueError, match="outside its folder; external data is read from the model's own folder"):
        onnx_file.load_model(str(folder / 'escaping.onnx'))
    (folder / 'external.onnx.data').unlink()
    with pytest.raises(FileNotFoundError, match='which is not in'):
        onnx_file.load_model(path)
