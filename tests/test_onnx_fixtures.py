"""The ONNX fixtures (`onnx_fixtures`) checked with onnxruntime alone, without the adapter: the networks run and
have the shapes of their closed form, the closed form is what onnxruntime computes and what probing measures, and
each bad file is what its name says.
"""

import os

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest

import recfield
from onnx_fixtures import (BAD_FILES, CONV3, FREE_SIZE, GEOMETRY, IMAGE_SIZE, INPUT_NAME, LAYERS, NETWORKS,
                           NHWC_LAYERS, closed_form_fields, expected_feature_tensors, network_reads, padded_reads,
                           probe_image_size, runtime_maps, runtime_model, runtime_session, same_padding_reads,
                           write_images)
from utils.benchmarks.closed_form import layer_dependencies


def random_batch(network, count, seed=0):
    """`count` NHWC float32 images of the network's probe size, uniform in 0..1."""
    return np.random.default_rng(seed).uniform(0, 1, (count, *probe_image_size(network), 3)).astype(np.float32)


@pytest.mark.parametrize('name', list(NETWORKS))
def test_fixture_networks_run_in_onnxruntime_with_the_closed_form_shapes(onnx_networks, name):
    network = onnx_networks[name]
    model = onnx.load(network.path)
    onnx.checker.check_model(model, full_check=True)
    [graph_input] = model.graph.input
    dims = [dim.dim_value or None for dim in graph_input.type.tensor_type.shape.dim]
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    height, width = network.image_size or (None, None)
    assert dims == ([network.batch, 3, height, width] if network.layout == 'NCHW' else
                    [network.batch, height, width, 3])
    names = list(network.channels)
    maps = runtime_maps(network, names, random_batch(network, 3))
    rows, columns = (network_reads(size) for size in probe_image_size(network))
    for layer, feature_map in zip(names, maps):
        assert feature_map.shape == (3, len(rows[layer]), len(columns[layer]), network.channels[layer]), layer
        assert np.isfinite(feature_map).all() and feature_map.std() > 0, layer
    # the file's own shapes, as shape inference wrote them, are what expected_feature_tensors lists
    shapes = {info.name: tuple(dim.dim_value or None for dim in info.type.tensor_type.shape.dim)
              for info in model.graph.value_info}
    assert [(layer, shapes[layer]) for layer in names] == expected_feature_tensors(network)
    assert [info.name for info in model.graph.value_info if len(shapes[info.name]) == 4] == names


def test_fixture_nhwc_network_computes_what_the_nchw_network_does(onnx_networks):
    # The same weights (same seed): the NHWC file transposes its input, and merged_nhwc is merged transposed.
    batch = random_batch(onnx_networks['nchw'], 2)
    nchw = runtime_maps(onnx_networks['nchw'], ['relu1', 'merged'], batch)
    nhwc = runtime_maps(onnx_networks['nhwc'], ['relu1', 'merged', 'merged_nhwc'], batch)
    np.testing.assert_allclose(nhwc[0], nchw[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nhwc[1], nchw[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(nhwc[2], nhwc[1])
    raw = runtime_session(onnx_networks['nhwc'].path, ('merged_nhwc',)).run(None, {INPUT_NAME: batch})[0]
    np.testing.assert_array_equal(raw, nhwc[2])  # already NHWC in the file: not transposed again


def test_fixture_fixed_batch_networks_take_only_their_batch_size(onnx_networks):
    batch = random_batch(onnx_networks['nchw'], 3)
    free = runtime_maps(onnx_networks['nchw'], ['merged'], batch)[0]
    for name in ('fixed_batch', 'fixed_batch_2'):
        network = onnx_networks[name]
        np.testing.assert_allclose(runtime_maps(network, ['merged'], batch)[0], free, rtol=1e-5, atol=1e-6)
        session = runtime_session(network.path, ('merged',))
        with pytest.raises(Exception, match='(?i)dimension|shape'):
            session.run(None, {INPUT_NAME: batch.transpose(0, 3, 1, 2)})  # 3 images: not its batch


@pytest.mark.parametrize('length', [IMAGE_SIZE[0], IMAGE_SIZE[1], FREE_SIZE[0], FREE_SIZE[1], 30])
def test_closed_form_of_explicit_pads_is_same_where_the_pads_are_same_and_not_for_conv3(length):
    explicit, same = network_reads(length), same_padding_reads(length)
    for layer in ('conv1', 'pool1', 'conv2'):  # pads 1 for 3x3 and 2 for a 3x3 of dilation 2: SAME's own
        np.testing.assert_array_equal(explicit[layer], same[layer], err_msg=layer)
    # conv3 (stride 2, pads 1 and 1): on an even length SAME pads none before, so ONNX reads one line earlier; on an
    # odd one (30 pooled to 15) SAME pads one before too
    middle = len(explicit['conv2'])
    onnx_step = padded_reads(np.eye(middle, dtype=bool), **CONV3)
    same_step = layer_dependencies(middle, kernel=3, stride=2, padding='SAME')
    assert onnx_step.shape == same_step.shape
    if middle % 2:
        np.testing.assert_array_equal(onnx_step, same_step)
    else:
        assert (onnx_step != same_step).any()
        np.testing.assert_array_equal(onnx_step[:, :-1], same_step[:, 1:])


def changed_lines(network, layers, axis, trials=4):
    """bool `{layer: [out, in]}`: which feature lines (rows for `axis` 0, columns for 1) change when one image line
    changes, found with onnxruntime on `trials` random images: one batch per image, each line replaced in turn by
    other random values."""
    height, width = probe_image_size(network)
    length = (height, width)[axis]
    rng = np.random.default_rng(3)
    changed = {}
    for _ in range(trials):
        base = rng.uniform(0, 1, (height, width, 3)).astype(np.float32)
        batch = np.repeat(base[None], length + 1, axis=0)
        for line in range(length):
            index = (line + 1, line) if axis == 0 else (line + 1, slice(None), line)
            batch[index] = rng.uniform(0, 1, batch[index].shape)
        for layer, feature_map in zip(layers, runtime_maps(network, layers, batch)):
            differs = feature_map[1:] != feature_map[:1]  # [in line, h, w, c]
            found = differs.any(axis=(2, 3) if axis == 0 else (1, 3)).T  # [out, in]
            changed[layer] = changed.get(layer, False) | found
    return changed


@pytest.mark.parametrize('name', ['nchw', 'nhwc_free_size'])
def test_closed_form_dependencies_are_what_onnxruntime_computes(onnx_networks, name):
    network = onnx_networks[name]
    layers = NHWC_LAYERS if network.layout == 'NHWC' else LAYERS
    for axis, length in enumerate(probe_image_size(network)):
        reads = network_reads(length)
        for layer, found in changed_lines(network, layers, axis).items():
            np.testing.assert_array_equal(found, reads[layer], err_msg=f'{layer}, axis {axis}')


def test_closed_form_geometry_is_the_one_worked_out_by_hand():
    fields = closed_form_fields(*IMAGE_SIZE)
    assert {layer: (fields[layer].size, fields[layer].stride, fields[layer].padding) for layer in GEOMETRY} == {
        layer: tuple((value, value) for value in geometry) for layer, geometry in GEOMETRY.items()}


@pytest.mark.parametrize('name', ['nchw', 'nhwc', 'nchw_free_size', 'fixed_batch', 'fixed_batch_2'])
def test_probing_onnxruntime_measures_the_closed_form(onnx_networks, name):
    # What the adapter's fields will be checked against, measured here on onnxruntime's own maps: a failure of the
    # adapter's test then lies in the adapter, not in these networks (no ReLU too dead to probe, say).
    network = onnx_networks[name]
    layers = NHWC_LAYERS if network.layout == 'NHWC' else LAYERS
    fields = recfield.measure_model(runtime_model(network, layers))
    expected = closed_form_fields(*probe_image_size(network))
    for layer, field in zip(layers, fields):
        np.testing.assert_array_equal(field.recfield, expected[layer].recfield, err_msg=layer)


@pytest.mark.parametrize('case', BAD_FILES)
def test_fixture_bad_files_are_what_their_names_say(onnx_bad_files, case):
    path = onnx_bad_files[case]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    if case in ('random_bytes', 'truncated', 'opset_99', 'tensorflow_pb'):
        with pytest.raises(Exception):
            onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        if case == 'truncated':
            with pytest.raises(Exception):
                onnx.load(path)
        if case == 'tensorflow_pb':
            from utils.base.quiet_tf import tf
            graph_def = tf.compat.v1.GraphDef()
            with open(path, 'rb') as stream:
                graph_def.ParseFromString(stream.read())
            assert [node.name for node in graph_def.node][-1] == 'relu'
        return
    session = onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    inputs = session.get_inputs()
    described = [(graph_input.type, graph_input.shape) for graph_input in inputs]
    expected = {'two_inputs': [('tensor(float)', ['batch', 3, 16, 16]), ('tensor(float)', [1])],
                'uint8_input': [('tensor(uint8)', ['batch', 3, 16, 16])],
                'int64_input': [('tensor(int64)', ['batch', 3, 16, 16])],
                'grey_input': [('tensor(float)', ['batch', 1, 16, 16])],
                'no_4d_tensor': [('tensor(float)', ['batch', 10])]}
    assert described == expected[case]
    feeds = {graph_input.name: np.ones([2 if dim == 'batch' else dim for dim in graph_input.shape],
                                       {'tensor(float)': np.float32, 'tensor(uint8)': np.uint8,
                                        'tensor(int64)': np.int64}[graph_input.type]) for graph_input in inputs}
    [output] = session.run(None, feeds)
    assert output.ndim == (2 if case == 'no_4d_tensor' else 4)
    if case == 'no_4d_tensor':
        model = onnx.shape_inference.infer_shapes(onnx.load(path))
        ranks = [len(info.type.tensor_type.shape.dim) for info in list(model.graph.value_info) + list(
            model.graph.input) + list(model.graph.output)]
        assert 4 not in ranks and ranks


def test_fixture_images_are_readable_colour_images(tmp_path):
    names = write_images(str(tmp_path))
    assert len(names) == 10 and 'more/image_04.png' in names and sum(name.endswith('.jpg') for name in names) == 3
    for name in names:
        image = cv2.imread(os.path.join(tmp_path, name))
        assert image is not None and image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) >= 12, name
