"""`utils/models/keras_file.py` in this process: loading in safe mode, layers by Keras name, input size, preprocessing,
the forward function in inference mode, the model and dataset as the pipeline opens them, and receptive fields
equal to the closed form. The models are `keras_fixtures`' (saved once per session); the scripts themselves are
run in `test_keras_scripts.py`.
"""

import argparse
import hashlib
import logging
import os
import shutil
import zipfile

import cv2
import keras
import numpy as np
import pytest

from conftest import assert_shards_read_like_the_whole, probe_image_counts, read_batches
from keras_fixtures import (FREE_SIZE, FREE_SIZE_CHANNELS, IMAGE_SIZE, RESIDUAL_CHANNELS, RESIDUAL_GEOMETRY,
                            SEQUENTIAL_CHANNELS, build_squeeze_excitation, closed_form_fields, free_size_reads,
                            keras_geometry, residual_reads, sequential_reads, write_photos)
import recfield
from utils.core import memory, pipeline
from utils.core.model import Example, Layer
from utils.core.recfield_cache import RecfieldCache
from utils.data import images
from utils.examples import keras_model, own_model
from utils.models import keras_file
from utils.pictures.drawing import describe_layer


def model_flags(path, **flags):
    """The flags of the Keras scripts that `keras_model.open_model` and `open_dataset` read."""
    defaults = dict(model=path, unsafe_load=False, layers=None, image_size=None, preprocess='none', batch_size=4,
                    images_dir=None, images_list=None, max_image_pixels=images.MAX_IMAGE_PIXELS)
    return argparse.Namespace(**{**defaults, **flags})


@pytest.fixture(scope='module')
def sequential(keras_models):
    return keras_file.load_model(keras_models['sequential'])


@pytest.fixture(scope='module')
def residual(keras_models):
    return keras_file.load_model(keras_models['residual'])


# -- loading ------------------------------------------------------------------------------------------------

def test_keras_and_legacy_h5_files_give_the_same_model(keras_models, sequential):
    legacy = keras_file.load_model(keras_models['sequential_h5'])
    assert [layer.name for layer in legacy.layers] == [layer.name for layer in sequential.layers]
    for weights, expected in zip(legacy.get_weights(), sequential.get_weights()):
        np.testing.assert_array_equal(weights, expected)


def write_file(folder, name, content):
    """Writes `content` (bytes) to `folder/name`; returns the path."""
    path = os.path.join(folder, name)
    with open(path, 'wb') as stream:
        stream.write(content)
    return path


def zip_without_a_model(folder):
    """A `.keras` file that is a zip archive, but holds no model."""
    path = os.path.join(folder, 'archive.keras')
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('readme.txt', 'not a model')
    return path


@pytest.mark.parametrize('make_path, error, message', [
    (lambda folder: os.path.join(folder, 'missing.keras'), FileNotFoundError, 'no model file at '),
    (lambda folder: folder, FileNotFoundError, 'no model file at '),
    (lambda folder: write_file(folder, 'weights.pb', b'\x08\x01'), ValueError,
     'is not a Keras model file: --model takes a .keras file (or a legacy .h5)'),
    (lambda folder: write_file(folder, 'text.keras', b'not a zip'), ValueError,
     'is not a Keras model file: a .keras file is a zip archive'),
    (lambda folder: write_file(folder, 'text.h5', b'not HDF5'), ValueError,
     'is not a Keras model file: a .keras file is a zip archive and an .h5 file an HDF5 file'),
    (zip_without_a_model, ValueError, "as a Keras model: \"There is no item named 'config.json'"),
], ids=['missing', 'folder', 'other-extension', 'keras-not-zip', 'h5-not-hdf5', 'zip-without-model'])
def test_what_is_not_a_keras_model_is_refused_with_what_to_give(tmp_path, make_path, error, message):
    path = make_path(str(tmp_path))
    with pytest.raises(error) as raised:
        keras_file.load_model(path)
    assert message in str(raised.value) and path in str(raised.value)


class Twice(keras.layers.Layer):
    """A layer of the user's own code: Keras cannot rebuild it from a file without that code."""

    def call(self, inputs):
        return 2 * inputs


def test_a_layer_of_the_users_own_code_is_named_in_the_error(tmp_path):
    path = str(tmp_path / 'custom.keras')
    keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, name='conv'), Twice(name='twice')]).save(path)
    with pytest.raises(ValueError, match=f"^{path} uses Twice, which is not part of Keras: the Keras scripts cannot "
                                         "import your code"):
        keras_file.load_model(path)


def test_a_lambda_layer_is_refused_in_safe_mode_and_loads_with_unsafe_load(keras_models, caplog, rng):
    path = keras_models['lambda']
    with pytest.raises(ValueError, match=r'holds Python code \(a Lambda layer\) that safe mode will not run; if you '
                                         r'trust the file, add --unsafe_load\.'):
        keras_file.load_model(path)
    with caplog.at_level(logging.WARNING, logger='utils.models.keras_file'):
        model = keras_file.load_model(path, unsafe_load=True)
    [warning] = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warning.startswith(f'--unsafe_load: {path} may run Python code')
    batch = rng.uniform(0, 255, (2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
    conv, double = keras_file.forward_function(model, model.layers)(batch)
    np.testing.assert_allclose(double, 2 * conv, rtol=1e-6)  # the Lambda's code runs


# -- layers -------------------------------------------------------------------------------------------------

def test_print_all_names_lines_are_every_4d_layer_with_its_shape(sequential, residual):
    assert keras_file.describe_layers(sequential).splitlines() == [
        'conv1 (None, 32, 32, 4)', 'pool1 (None, 16, 16, 4)', 'conv2 (None, 14, 14, 6)', 'bn (None, 14, 14, 6)',
        'drop (None, 14, 14, 6)']  # not flat, dense or the input
    sizes = {'shifted_pad': 34, 'down': 16, 'shifted': 16, 'merged': 16, 'dilated': 16}
    assert keras_file.describe_layers(residual).splitlines() == [
        f'{name} (None, {sizes.get(name, 32)}, {sizes.get(name, 32)}, {channels})'
        for name, channels in RESIDUAL_CHANNELS.items()]


def test_default_layers_are_the_last_of_each_resolution(sequential, residual):
    assert keras_file.default_layers(sequential) == ['conv1', 'pool1', 'drop']
    assert keras_file.default_layers(sequential, count=2) == ['conv1', 'drop']  # spread over the depth
    # shifted_pad (34x34) is padding, not a resolution of the network
    assert keras_file.default_layers(residual) == ['residual', 'dilated']


@pytest.mark.parametrize('names, message', [
    (['conv'], "no layer 'conv' in the model. Did you mean conv2, conv1? Run with --print_all_names"),
    (['dropout'], "no layer 'dropout' in the model. Did you mean drop?"),
    (['xyz'], "no layer 'xyz' in the model. No layer has a similar name."),
    (['dense'], 'layer dense has output shape (None, 3); a layer must have a 4-D output'),
    (['flat'], 'layer flat has output shape (None, 1176); a layer must have a 4-D output'),
    ([], 'no layers given; name at least one with --layers'),
])
def test_layers_that_are_not_4d_layers_of_the_model_are_refused(sequential, names, message):
    with pytest.raises(ValueError) as raised:
        keras_file.find_layers(sequential, names)
    assert message in str(raised.value)


def test_layers_are_found_by_name_in_the_order_given(sequential):
    assert [layer.name for layer in keras_file.find_layers(sequential, ['drop', 'conv1'])] == ['drop', 'conv1']


# -- input size ---------------------------------------------------------------------------------------------

def test_input_size_is_the_models_own_or_image_size_where_free(keras_models, sequential):
    free_size = keras_file.load_model(keras_models['free_size'])
    assert keras_file.input_size(sequential) == (32, 32)
    assert keras_file.input_size(sequential, [32, 32]) == (32, 32)
    assert keras_file.input_size(free_size, FREE_SIZE) == FREE_SIZE
    with pytest.raises(ValueError, match='the model takes images of any size; give the size to use with '
                                         '--image_size H W'):
        keras_file.input_size(free_size)
    with pytest.raises(ValueError, match="--image_size 64 64 differs from the model's input size 32x32"):
        keras_file.input_size(sequential, [64, 64])
    with pytest.raises(ValueError, match='--image_size must be positive, got 0 32'):
        keras_file.input_size(free_size, [0, 32])


def test_an_image_size_too_small_for_the_kernels_is_refused_before_running(tmp_path):
    path = str(tmp_path / 'valid.keras')
    keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(2, 3, name='conv'),
                      keras.layers.MaxPooling2D(2, name='pool')]).save(path)
    assert keras_model.open_model(model_flags(path, image_size=[4, 4], layers=['pool'])).imshape == [4, 4, 4, 3]
    with pytest.raises(ValueError, match=r'^--image_size 3 3 is too small for the layers: Computed output size '
                                         r'would be zero or negative'):
        keras_model.open_model(model_flags(path, image_size=[3, 3], layers=['pool']))
    # a shallower layer fits where a deeper one does not
    assert keras_model.open_model(model_flags(path, image_size=[3, 3], layers=['conv'])).imshape == [4, 3, 3, 3]


def test_a_model_of_other_than_colour_images_is_refused(tmp_path):
    path = str(tmp_path / 'grey.keras')
    keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name='conv')]).save(path)
    with pytest.raises(ValueError, match='the model takes 1-channel images; the Keras scripts feed colour images'):
        keras_model.open_model(model_flags(path))


@pytest.mark.parametrize('nested', [False, True])
def test_a_model_with_channels_first_layers_is_refused_before_it_runs(tmp_path, nested):
    # TensorFlow runs no channels-first convolution on a CPU: once an UnimplementedError traceback at the first probe.
    path = str(tmp_path / 'nchw.keras')
    layers = [keras.layers.Conv2D(4, 3, name='conv'), keras.layers.Conv2D(2, 3, data_format='channels_first',
                                                                           name='conv_nchw')]
    inner = keras.Sequential(layers, name='block') if nested else None
    keras.Sequential([keras.Input((16, 16, 3)), *([inner] if nested else layers)]).save(path)
    with pytest.raises(ValueError, match=f'layer conv_nchw of {path} works on channels-first maps'):
        keras_model.open_model(model_flags(path))


def test_layer_names_tensorflow_cannot_compile_run_eagerly(tmp_path, caplog):
    # A space, ':', '<' or a quote is no TensorFlow name scope: a compiled call failed with a 16-line stack.
    path = str(tmp_path / 'odd_names.keras')
    keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, name='my conv:1'),
                      keras.layers.Conv2D(2, 3, name="b<'x")]).save(path)
    with caplog.at_level(logging.WARNING, logger='utils.models.keras_file'):
        model = keras_model.open_model(model_flags(path))
    assert "2 layers of" in caplog.text
    assert "have names that TensorFlow cannot compile (first: 'my conv:1')" in caplog.text
    batch = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    first, second = model.run(batch)
    assert first.shape == (2, 14, 14, 4) and second.shape == (2, 12, 12, 2)
    [(feature_map, maxima)] = model.run_with_maxima(batch)[1:]
    np.testing.assert_array_equal(feature_map, second)
    np.testing.assert_array_equal(maxima, second.max(axis=(1, 2)))
    fields = pipeline.measure_receptive_fields(model, print_lines=False)
    assert [fields[index].size for index in (0, 1)] == [(3, 3), (5, 5)]


@pytest.mark.parametrize('layers, shape', [
    ([keras.layers.Flatten(), keras.layers.Dense(4)], (8, 8, 3)),
    ([keras.layers.Conv1D(4, 3, name='conv1d')], (32, 3)),
], ids=['dense', 'conv1d'])
def test_a_model_without_image_layers_says_so(tmp_path, capsys, layers, shape):
    # Before: 'no layers given' (the default layers were none), and --print_all_names printed a blank line.
    path = str(tmp_path / 'no_images.keras')
    keras.Sequential([keras.Input(shape), *layers]).save(path)
    for call in (keras_model.open_model, keras_model.print_all_names):
        with pytest.raises(ValueError, match=f'no layer of {path} has a 4-D output'):
            call(model_flags(path))
    assert capsys.readouterr().out == ''


def test_the_input_layer_is_not_a_layer_to_draw(tmp_path):
    # Before: 'layer pixels has output shape (None, 16, 16, 3); a layer must have a 4-D output'.
    path = str(tmp_path / 'functional.keras')
    pixels = keras.Input((16, 16, 3), name='pixels')
    keras.Model(pixels, keras.layers.Conv2D(2, 3, name='conv')(pixels)).save(path)
    with pytest.raises(ValueError, match="layer pixels is the model's input: its map is the image itself"):
        keras_model.open_model(model_flags(path, layers=['pixels']))


def test_a_channels_first_input_is_named_so(tmp_path):
    path = str(tmp_path / 'nchw_input.keras')
    keras.Sequential([keras.Input((3, 32, 32)), keras.layers.Conv2D(2, 3, name='conv')]).save(path)
    with pytest.raises(ValueError, match=r"input \(None, 3, 32, 32\) looks channels-first"):
        keras_model.open_model(model_flags(path))


def test_a_fixed_size_model_too_large_for_memory_is_not_told_to_lower_the_image_size(keras_models, monkeypatch):
    monkeypatch.setattr(memory, 'available_bytes', lambda: 1000)
    with pytest.raises(ValueError, match=r'lower --batch_size\.$'):
        keras_model.open_model(model_flags(keras_models['sequential']))


def test_what_else_safe_mode_refuses_is_not_called_a_lambda_layer(keras_models, monkeypatch):
    refusal = ('Requested the deserialization of a `TFSMLayer`, which loads an external SavedModel. This carries a '
               'potential risk. Pass `safe_mode=False` to load it.')

    def refuse(*args, **kwargs):
        raise ValueError(refusal)

    monkeypatch.setattr(keras.saving, 'load_model', refuse)
    with pytest.raises(ValueError) as refused:
        keras_file.load_model(keras_models['sequential'])
    assert 'holds something that safe mode will not load (Requested the deserialization of a `TFSMLayer`' \
        in str(refused.value) and 'Lambda' not in str(refused.value) and '--unsafe_load' in str(refused.value)


def test_a_layer_called_twice_is_drawn_at_its_first_call_with_a_warning(tmp_path, caplog):
    path = str(tmp_path / 'shared.keras')
    pixels = keras.Input((16, 16, 3))
    shared = keras.layers.Conv2D(3, 3, padding='same', name='shared')
    keras.Model(pixels, shared(keras.layers.Conv2D(3, 3, strides=2, name='down')(shared(pixels)))).save(path)
    with caplog.at_level(logging.WARNING, logger='utils.models.keras_file'):
        model = keras_model.open_model(model_flags(path, layers=['shared']))
    assert 'layer shared is called 2 times in the model (its weights shared); its first call, output (None, 16, 16, ' \
           '3), is the one drawn.' in caplog.text
    assert model.run(np.zeros((1, 16, 16, 3), np.float32))[0].shape == (1, 16, 16, 3)


# -- preprocessing ------------------------------------------------------------------------------------------

# The ranges the README documents: pixels 0..255 under each convention of keras.applications.
DOCUMENTED_RANGES = {'none': (0, 255), 'tf': (-1, 1), 'torch': (-0.485 / 0.229, (1 - 0.406) / 0.225),
                     'caffe': (-123.68, 255 - 103.939)}


@pytest.mark.parametrize('mode', sorted(own_model.PREPROCESSING))
def test_value_range_is_the_range_preprocess_gives(mode):
    # Every channel at 0 or 255, in every combination: each channel's extremes, whatever its mean and scale.
    corners = np.array(np.meshgrid([0, 255], [0, 255], [0, 255])).reshape(3, -1).T.astype(np.uint8)
    values = own_model.preprocess(corners[None], mode)
    assert values.dtype == np.float32 and values.shape == (1, 8, 3)
    low, high = own_model.value_range(mode)
    assert (values.min(), values.max()) == pytest.approx((low, high), abs=1e-4)
    assert (low, high) == pytest.approx(DOCUMENTED_RANGES[mode], abs=1e-4)


@pytest.mark.parametrize('mode, expected', [
    ('none', [0, 0, 255]),  # RGB
    ('tf', [-1, -1, 1]),
    ('torch', [-0.485 / 0.229, -0.456 / 0.224, (1 - 0.406) / 0.225]),
    ('caffe', [255 - 103.939, -116.779, -123.68]),  # BGR, minus the BGR mean
])
def test_preprocess_gives_each_convention_its_channel_order(mode, expected):
    blue = np.array([[[255, 0, 0]]], np.uint8)  # OpenCV's BGR
    np.testing.assert_allclose(own_model.preprocess(blue, mode)[0, 0], expected, rtol=1e-5)


# -- the forward function -----------------------------------------------------------------------------------

def test_forward_function_runs_batchnorm_and_dropout_in_inference_mode(sequential, rng):
    layers = keras_file.find_layers(sequential, ['bn', 'drop'])
    forward_func = keras_file.forward_function(sequential, layers)
    photo = rng.uniform(0, 255, (1, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
    companions = [rng.uniform(low, high, (3, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
                  for low, high in ((0, 50), (200, 255))]
    runs = [forward_func(np.concatenate([photo, others])) for others in companions]
    runs.append(forward_func(np.concatenate([photo, companions[0]])))  # again: Dropout drops nothing
    sub_model = keras.Model(sequential.inputs[0], [layer.output for layer in layers])
    predicted = sub_model.predict(photo, verbose=0)
    for maps in runs:
        for feature_map, expected in zip(maps, predicted):
            np.testing.assert_allclose(feature_map[:1], expected, rtol=1e-5, atol=1e-4)
    # What the check guards against: in training mode the same photograph gives other maps.
    training = sub_model(np.concatenate([photo, companions[0]]), training=True)
    assert not np.allclose(np.asarray(training[0])[:1], predicted[0], atol=1e-2)


def test_forward_function_returns_the_layers_asked_for(sequential, rng):
    layers = keras_file.find_layers(sequential, ['conv1', 'pool1', 'drop'])
    forward_func = keras_file.forward_function(sequential, layers)
    batch = rng.uniform(0, 255, (2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
    conv1, pool1, drop = forward_func(batch)
    assert conv1.shape == (2, 32, 32, 4) and pool1.shape == (2, 16, 16, 4) and drop.shape == (2, 14, 14, 6)
    # With the `layers` keyword (Layer or anything named after a layer): only those maps.
    [alone] = forward_func(batch, layers=[Layer('pool1', 4)])
    np.testing.assert_allclose(alone, pool1, rtol=1e-6)


# -- the model and the dataset as the pipeline opens them ---------------------------------------------------

def test_model_has_the_layers_the_probe_shape_the_value_range_and_ids_of_the_file(keras_models):
    path = keras_models['sequential']
    with open(path, 'rb') as stream:
        digest = hashlib.sha256(stream.read()).hexdigest()
    model = keras_model.open_model(model_flags(path, preprocess='tf', batch_size=3))
    assert model.layers == [Layer('conv1', 4), Layer('pool1', 4), Layer('drop', 6)]
    assert model.imshape == [3, 32, 32, 3] and model.value_range == (-1.0, 1.0)
    assert model.model_id == f'keras sequential.keras sha256:{digest[:16]}'
    assert model.fingerprint() == f'keras file sha256:{digest}'
    assert keras_model.EXAMPLE == Example('keras', keras_model.open_model, keras_model.open_dataset)

    free_size = keras_model.open_model(model_flags(keras_models['free_size'], image_size=list(FREE_SIZE),
                                                   layers=['conv2, conv']))
    assert free_size.layers == [Layer('conv2', 2), Layer('conv', 3)]
    assert free_size.imshape == [4, *FREE_SIZE, 3] and free_size.value_range == (0.0, 255.0)


# model, --layers, --image_size, the closed form of its layers (size along both axes), channels
CLOSED_FORM_CASES = {
    'sequential': ('sequential', list(SEQUENTIAL_CHANNELS), None, sequential_reads, SEQUENTIAL_CHANNELS),
    'sequential_h5': ('sequential_h5', list(SEQUENTIAL_CHANNELS), None, sequential_reads, SEQUENTIAL_CHANNELS),
    'residual': ('residual', list(RESIDUAL_GEOMETRY), None, residual_reads, RESIDUAL_CHANNELS),
    'free_size': ('free_size', list(FREE_SIZE_CHANNELS), FREE_SIZE, free_size_reads, FREE_SIZE_CHANNELS),
}


@pytest.mark.parametrize('case', list(CLOSED_FORM_CASES))
def test_receptive_fields_equal_the_closed_form(keras_models, case):
    name, layers, image_size, reads_of, channels = CLOSED_FORM_CASES[case]
    model = keras_model.open_model(model_flags(keras_models[name], layers=[','.join(layers)], image_size=image_size))
    fields = pipeline.measure_receptive_fields(model, print_lines=False)
    expected = closed_form_fields(reads_of, *(image_size or (IMAGE_SIZE, IMAGE_SIZE)))
    for index, layer in enumerate(layers):
        np.testing.assert_array_equal(fields[index].recfield, expected[layer].recfield, err_msg=layer)
        assert fields[index].feature_shape == expected[layer].feature_shape
        assert model.layers[index] == Layer(layer, channels[layer])
    if case == 'residual':  # and what they give, as worked out by hand
        assert {layer: (fields[index].size[0], fields[index].stride[0], fields[index].padding[0])
                for index, layer in enumerate(layers)} == RESIDUAL_GEOMETRY
    if case == 'free_size':  # SAME on 23 rows pads one line before, on 32 columns none
        assert (fields[1].size, fields[1].stride, fields[1].padding) == ((7, 7), (2, 2), (3, 2))


def test_receptive_fields_are_cached_by_the_contents_of_the_model_file(keras_models, tmp_path, capsys):
    cache = RecfieldCache(str(tmp_path / 'cache'))
    copy = str(tmp_path / 'renamed.keras')
    shutil.copyfile(keras_models['sequential'], copy)
    first = pipeline.measure_receptive_fields(keras_model.open_model(model_flags(keras_models['sequential'])),
                                              cache=cache)
    again = pipeline.measure_receptive_fields(keras_model.open_model(model_flags(copy)), cache=cache)
    assert first == again
    assert [probes for _, probes in probe_image_counts(capsys.readouterr().out)][1] == 0  # nothing measured
    keras_file.load_model(copy).save(copy)  # the same network saved again: another file, measured again
    pipeline.measure_receptive_fields(keras_model.open_model(model_flags(copy)), cache=cache)
    assert probe_image_counts(capsys.readouterr().out)[0][1] > 0


@pytest.fixture(scope='module')
def sequential_model(keras_models):
    return keras_model.open_model(model_flags(keras_models['sequential']))


def test_dataset_is_every_readable_photograph_cut_to_the_input(tmp_path, sequential_model, caplog):
    names = write_photos(str(tmp_path), count=6)
    with caplog.at_level(logging.WARNING):
        dataset = keras_model.open_dataset(model_flags('', images_dir=str(tmp_path), preprocess='caffe'),
                                           sequential_model)
    assert dataset.ids == names and 'more/photo_03.png' in names
    assert 'skipped 1 of 7 files' in caplog.text  # notes.txt
    batches = read_batches(dataset)
    assert [len(indices) for _, _, indices in batches] == [4, 2]
    for inputs, display, _ in batches:
        assert display.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE, 3) and display.dtype == np.uint8
        np.testing.assert_array_equal(inputs, own_model.preprocess(display, 'caffe'))
    # each is the photograph resized to cover the input and cut to its centre
    photo = cv2.imread(str(tmp_path / names[0]))
    np.testing.assert_array_equal(batches[0][1][0], own_model.centre_crop(photo, IMAGE_SIZE, IMAGE_SIZE))


@pytest.mark.parametrize('num_shards', [2, 3])
def test_dataset_shards_read_the_batches_of_a_whole_read(photos_dir, sequential_model, num_shards):
    dataset = keras_model.open_dataset(model_flags('', images_dir=photos_dir, batch_size=3), sequential_model)
    whole = assert_shards_read_like_the_whole(dataset, num_shards)
    assert [len(indices) for _, _, indices in whole] == [3, 3, 3, 1]


def test_a_shard_decodes_only_its_own_images(photos_dir, sequential_model, decoded_paths):
    dataset = keras_model.open_dataset(model_flags('', images_dir=photos_dir, batch_size=3), sequential_model)
    assert decoded_paths == []  # listed from the headers
    start, stop = pipeline.shard_bounds(len(dataset), dataset.batch_size, 4, 2)
    read_batches(dataset, start, stop)
    assert sorted(os.path.relpath(path, photos_dir) for path in decoded_paths) == dataset.ids[start:stop]


def test_dataset_needs_a_folder_with_readable_images(tmp_path, sequential_model):
    with pytest.raises(ValueError, match='--images_dir is required'):
        keras_model.open_dataset(model_flags(''), sequential_model)
    (tmp_path / 'notes.txt').write_text('not an image')
    with pytest.raises(FileNotFoundError, match=f'no readable image under {tmp_path}'):
        keras_model.open_dataset(model_flags('', images_dir=str(tmp_path)), sequential_model)


def white_band(height, width, first, last, axis):
    """A black uint8 BGR image with lines `first` to `last` (exclusive) white, rows (axis 0) or columns (1)."""
    image = np.zeros((height, width, 3), np.uint8)
    index = [slice(None)] * 2
    index[axis] = slice(first, last)
    image[tuple(index)] = 255
    return image


@pytest.mark.parametrize('image, height, width', [
    (white_band(40, 80, 20, 60, axis=1), 20, 20),  # wide: halved, its middle 20 columns kept
    (white_band(80, 40, 20, 60, axis=0), 20, 20),  # tall: the same across
    (white_band(50, 50, 15, 35, axis=0), 10, 40),  # to a wide input: scaled to 40x40, rows 15 to 25 kept
    (white_band(8, 16, 2, 14, axis=1), 16, 16),  # small: doubled, its middle 8 of 16 columns kept
], ids=['wide', 'tall', 'to-wide-input', 'enlarged'])
def test_centre_crop_covers_the_input_and_keeps_the_middle(image, height, width):
    crop = own_model.centre_crop(image, height, width)
    assert crop.shape == (height, width, 3)
    assert (crop == 255).all()  # only the white middle is left


# -- squeeze-and-excitation: local receptive fields --------------------------------------------------------------

def test_a_squeeze_and_excitation_block_gets_its_local_field_and_the_scan_the_whole_network(tmp_path, rng):
    path = str(tmp_path / 'se.keras')
    network = build_squeeze_excitation()
    network.save(path)
    model = keras_file.open_model(path, ['c1', 'gap', 'scaled', 'c2'], batch_size=4, value_range=(0.0, 255.0))
    assert model.local_layers == {2, 3}
    assert model.fingerprint().endswith(', global poolings held')  # cached apart from whole fields
    c1, gap, scaled, c2 = recfield.measure_model(model)
    assert (c1.size, c1.local) == ((3, 3), False) and (gap.feature_shape, gap.local) == ((1, 1), False)
    assert (scaled.size, scaled.padding, scaled.local) == ((3, 3), (1, 1), True)
    assert (c2.size, c2.stride, c2.padding, c2.local) == ((5, 5), (1, 1), (2, 2), True)
    assert (gap.recfield[0, 0] == [0, 0, 32, 32]).all()  # the pooling itself: the whole image
    assert describe_layer('c2', c2, 6) == ('c2 feature map is of shape 32x32x6 and has local receptive field 5x5 '
                                           '(stride 1x1, padding 2x2); through its global pooling the whole image '
                                           'reaches it')
    # The scan runs the network as it is: the gate follows each image.
    images = rng.uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    expected = keras.Model(network.inputs[0], network.get_layer('c2').output)(images, training=False)
    np.testing.assert_allclose(model.run(images)[3], np.asarray(expected), rtol=1e-5, atol=1e-5)
    assert keras_geometry(network, 'c2', 32) == (5, 1, 2)


@pytest.mark.slow
@pytest.mark.parametrize('application', ['MobileNetV3Small', 'EfficientNetB0'])
def test_squeeze_and_excitation_networks_get_the_local_fields_of_their_convolutions(tmp_path, application):
    path = str(tmp_path / f'{application}.keras')
    network = getattr(keras.applications, application)(weights=None, input_shape=(224, 224, 3))
    network.save(path)
    model = keras_file.open_model(path, batch_size=8, value_range=(0.0, 255.0))  # the default layers
    fields = recfield.measure_model(model)
    checked = 0
    for layer, field in zip(model.layers, fields):
        expected = keras_geometry(network, layer.name, 224)
        if field.size is not None:  # the image clips the deepest ones: no geometry to compare
            assert (field.size[0], field.stride[0], field.padding[0]) == expected, layer.name
            checked += 1
    assert checked >= 2 and model.local_layers  # the SE blocks reach the layers past the stem


def test_a_sequential_model_loaded_from_its_file_is_not_said_to_share_weights(keras_models, caplog):
    # Loading a Sequential model calls its layers several times on the way (Keras' _inbound_nodes count them all).
    model = keras_file.load_model(keras_models['sequential'])
    assert [keras_file.layer_calls(model, model.get_layer(name)) for name in ('conv1', 'pool1', 'conv2')] == [1, 1, 1]
    with caplog.at_level(logging.WARNING):
        keras_file.find_layers(model, ['conv1', 'conv2'])
    assert 'called' not in caplog.text


def test_photographs_in_subfolders_of_images_dir_have_those_as_classes(tmp_path, photos_dir, sequential_model):
    for name, folder in (('a.png', 'cat'), ('b.png', 'dog'), ('c.png', 'cat')):
        os.makedirs(tmp_path / folder, exist_ok=True)
        cv2.imwrite(str(tmp_path / folder / name), np.full((40, 40, 3), 128, np.uint8))
    dataset = keras_model.open_dataset(model_flags('', images_dir=str(tmp_path)), sequential_model)
    assert dataset.ids == ['cat/a.png', 'cat/c.png', 'dog/b.png'] and dataset.class_names == ('cat', 'dog')
    assert dataset.labels.tolist() == [0, 0, 1]
    flat = keras_model.open_dataset(model_flags('', images_dir=photos_dir), sequential_model)  # photo_00.png: none
    assert flat.class_names == () and flat.labels is None
