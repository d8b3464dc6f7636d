"""ReceptiveField against closed-form answers, and stored as arrays (`from_arrays`, `to_arrays`).

The expected boxes come from `utils.benchmarks.closed_form`, the layers' arithmetic written independently of the
prober: chains of convolutions and pools, branches, networks that mask probes, and (slow) Keras VGG16 at
224x224 against the published table. Effective receptive fields (`measure_effective_field`) of linear stacks equal
their input-space kernels, worked out in numpy (`attribution_fixtures.stack_kernel_2d`), and are 0 outside the exact
field of every network.
"""

import logging

import numpy as np
import pytest
import tensorflow as tf

from attribution_fixtures import LINEAR_STACKS, LINEAR_VALUE_RANGE, opened_network, random_images, stack_kernel_2d
from conftest import tf1
from recfield import (ReceptiveField, disagreements, measure_effective_field, measure_model,
                      measure_receptive_fields)
from shard_fixtures import BOX_IMSHAPE, BOX_VALUE_RANGE, box_filter_maps, open_box_filter_model
from utils.benchmarks.closed_form import VGG16_TABLE, boxes_from_dependencies, chain_dependencies, chain_geometry
from utils.probing.attribution import ALL_CHANNELS


# -- graphs -------------------------------------------------------------------------------------------------

class Weights:
    """Random constant weights from a fixed seed, so every test builds the same network in any order."""

    def __init__(self, seed=7):
        self._rng = np.random.default_rng(seed)

    def __call__(self, *shape, scale=0.3):
        return tf.constant(self._rng.normal(0, scale, shape).astype(np.float32))


weights = None  # set per graph by new_graph()


def new_graph(seed=7):
    """A fresh graph, with `weights` reseeded."""
    global weights
    weights = Weights(seed)
    return tf.Graph()


def apply_layer(x, layer, channels=16):
    """The TF op for one layer dict: kind conv (default), depthwise, max or avg."""
    kind = layer.get('kind', 'conv')
    kernel, stride = layer['kernel'], layer.get('stride', 1)
    dilation, padding = layer.get('dilation', 1), layer.get('padding', 'SAME')
    if kind == 'conv':
        filters = weights(kernel, kernel, int(x.shape[-1]), channels)
        return tf.nn.relu(tf.nn.conv2d(x, filters, stride, padding, dilations=dilation))
    if kind == 'depthwise':
        filters = weights(kernel, kernel, int(x.shape[-1]), 1)
        return tf.nn.depthwise_conv2d(x, filters, [1, stride, stride, 1], padding, dilations=[dilation] * 2)
    pool = tf.nn.max_pool2d if kind == 'max' else tf.nn.avg_pool2d
    return pool(x, kernel, stride, padding)


def geometry_only(layer):
    return {key: value for key, value in layer.items() if key != 'kind'}


def run_chain(layers, image_size, batch_size=3, **options):
    """Builds the chain on an image of `image_size`, measures the last layer, returns (rf, expected boxes)."""
    graph = new_graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [batch_size, image_size[0], image_size[1], 3])
        output = images
        for layer in layers:
            output = apply_layer(output, layer)
        session = tf1.Session(graph=graph)
    with session:
        rf = ReceptiveField([batch_size, image_size[0], image_size[1], 3],
                            lambda batch: session.run([output], {images: batch}), **options)
    plain = [geometry_only(layer) for layer in layers]
    expected = boxes_from_dependencies(chain_dependencies(image_size[0], plain),
                                       chain_dependencies(image_size[1], plain))
    return rf, expected


CHAINS = {
    'conv3 SAME, odd size': ([dict(kernel=3)], (33, 27)),
    'conv5 stride 2 VALID': ([dict(kernel=5, stride=2, padding='VALID')], (32, 31)),
    'conv4 stride 2 SAME, even kernel': ([dict(kernel=4, stride=2)], (30, 29)),
    'conv2 VALID, even kernel': ([dict(kernel=2, padding='VALID'), dict(kernel=3)], (21, 24)),
    'dilated convs': ([dict(kernel=3, dilation=2), dict(kernel=3, dilation=3, padding='VALID')], (35, 28)),
    'max and avg pooling': ([dict(kernel=3), dict(kind='max', kernel=3, stride=2),
                             dict(kind='avg', kernel=2, stride=2, padding='VALID'), dict(kernel=3)], (41, 36)),
    'depthwise': ([dict(kind='depthwise', kernel=3, stride=2), dict(kernel=1),
                   dict(kind='max', kernel=2, stride=2, padding='VALID')], (33, 32)),
    'strided 1x1 (sparse field)': ([dict(kernel=1, stride=2, padding='VALID'), dict(kernel=3)], (40, 40)),
    'deep chain': ([dict(kernel=3), dict(kernel=5, stride=2, padding='VALID'), dict(kernel=4, stride=2),
                    dict(kernel=3, dilation=2), dict(kind='max', kernel=3, stride=2),
                    dict(kind='avg', kernel=2, stride=2, padding='VALID')], (61, 50)),
}


@pytest.mark.parametrize('name', sorted(CHAINS))
def test_boxes_equal_closed_form(name):
    layers, image_size = CHAINS[name]
    rf, expected = run_chain(layers, image_size)
    assert rf.recfield.shape == expected.shape
    np.testing.assert_array_equal(rf.recfield, expected)
    heights, widths = expected[..., 2] - expected[..., 0], expected[..., 3] - expected[..., 1]
    assert rf.max() == (heights.max(), widths.max())


@pytest.mark.parametrize('name', ['max and avg pooling', 'dilated convs', 'strided 1x1 (sparse field)'])
@pytest.mark.parametrize('batch_size', [1, 4])
def test_line_by_line_gives_the_same_boxes(name, batch_size):
    layers, image_size = CHAINS[name]
    multiplexed, expected = run_chain(layers, image_size, batch_size=batch_size)
    line_by_line, _ = run_chain(layers, image_size, batch_size=batch_size, multiplex=False)
    np.testing.assert_array_equal(multiplexed.recfield, expected)
    np.testing.assert_array_equal(line_by_line.recfield, expected)
    # Every line, each run four times: twice on grey (random signs, then the opposite), and from each end of
    # the value range.
    assert line_by_line.num_probe_images == 4 * (image_size[0] + image_size[1])


def test_multiplexing_needs_far_fewer_probes_on_a_large_image():
    """conv5 - max-pool 3/2 - conv5 (field 15) on 160x128: probes grow with the field, not the image."""
    layers = [dict(kernel=5), dict(kind='max', kernel=3, stride=2), dict(kernel=5)]
    multiplexed, expected = run_chain(layers, (160, 128), batch_size=8)
    line_by_line, _ = run_chain(layers, (160, 128), batch_size=8, multiplex=False)
    np.testing.assert_array_equal(multiplexed.recfield, expected)
    np.testing.assert_array_equal(line_by_line.recfield, expected)
    assert multiplexed.num_probe_images * 2 < line_by_line.num_probe_images
    assert multiplexed.size == (15, 15) and multiplexed.stride == (2, 2)


def test_size_stride_padding_of_a_chain():
    layers = [dict(kernel=3), dict(kind='max', kernel=2, stride=2, padding='VALID'), dict(kernel=3),
              dict(kind='max', kernel=2, stride=2, padding='VALID'), dict(kernel=5, stride=2)]
    rf, expected = run_chain(layers, (64, 64))
    np.testing.assert_array_equal(rf.recfield, expected)
    # SAME padding before: (3-1)//2 = 1 for conv3; conv5/2 on 16 -> out 8, pad total 3, before 1.
    with_padding = [dict(layer, pad_before=pad) for layer, pad in zip(layers, [1, 0, 1, 0, 1])]
    size, stride, padding = chain_geometry(with_padding)
    assert rf.size == (size, size) and rf.stride == (stride, stride) and rf.padding == (padding, padding)


def test_geometry_through_padding_of_an_inner_layer():
    """A VALID stride-2 conv on an even size never reads the last row; the next SAME conv pads there, so the
    last boxes stop short of the image edge yet are clipped. Size, stride and padding must still come out."""
    layers = [dict(kernel=3, stride=2, padding='VALID'), dict(kernel=3), dict(kernel=3)]
    rf, expected = run_chain(layers, (40, 40))
    np.testing.assert_array_equal(rf.recfield, expected)
    assert expected[-1, -1, 2] < 40  # the last box ends before the image edge
    assert rf.size == (11, 11) and rf.stride == (2, 2) and rf.padding == (4, 4)


def test_geometry_is_none_when_the_image_hides_every_edge():
    rf, _ = run_chain([dict(kernel=9, padding='SAME')], (5, 5))
    assert rf.size is None and rf.stride is None and rf.padding is None


# -- branches -----------------------------------------------------------------------------------------------

def test_branches_merged_by_concat_and_residual_add():
    size = (37, 34)
    graph = new_graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [2, size[0], size[1], 3])
        stem = apply_layer(images, dict(kernel=3))
        narrow = apply_layer(stem, dict(kernel=1))
        wide = apply_layer(apply_layer(stem, dict(kernel=3)), dict(kernel=3, dilation=2))
        concat = tf.concat([narrow, wide], axis=-1)
        residual = concat + apply_layer(apply_layer(concat, dict(kernel=3), channels=32), dict(kernel=5),
                                        channels=32)
        session = tf1.Session(graph=graph)

    def expected(extra_layers):
        per_axis = []
        for length in size:
            stem_reads = chain_dependencies(length, [dict(kernel=3)])
            narrow_reads = chain_dependencies(length, [dict(kernel=1)], stem_reads)
            wide_reads = chain_dependencies(length, [dict(kernel=3), dict(kernel=3, dilation=2)], stem_reads)
            merged = narrow_reads | wide_reads
            if extra_layers:
                merged = merged | chain_dependencies(length, extra_layers, merged)
            per_axis.append(merged)
        return boxes_from_dependencies(*per_axis)

    with session:
        for output, extra in ((concat, []), (residual, [dict(kernel=3), dict(kernel=5)])):
            rf = ReceptiveField([2, size[0], size[1], 3], lambda batch: session.run(output, {images: batch}))
            np.testing.assert_array_equal(rf.recfield, expected(extra))


# -- masking ------------------------------------------------------------------------------------------------

def build_masking_network(batch_size, size):
    """Units that hide changes: ReLUs dead at a zero image, a max-pool, then a saturating tanh(10 x)."""
    images = tf1.placeholder(tf.float32, [batch_size, size, size, 3])
    hidden = tf.nn.relu(tf.nn.conv2d(images, weights(5, 5, 3, 16), 1, 'SAME') - 2.0)
    pooled = tf.nn.max_pool2d(hidden, 3, 1, 'SAME')
    output = tf.tanh(10.0 * tf.nn.conv2d(pooled, weights(1, 1, 16, 4, scale=1.0), 1, 'SAME'))
    return images, output


def test_masked_probes_do_not_shrink_boxes():
    size = 30
    graph = new_graph()
    with graph.as_default():
        images, output = build_masking_network(4, size)
        session = tf1.Session(graph=graph)
    layers = [dict(kernel=5), dict(kernel=3)]
    reads = chain_dependencies(size, layers)
    expected = boxes_from_dependencies(reads, reads)
    with session:
        # A naive prober (black image, one row set to 1) gets many boxes wrong: the network really masks.
        blank = np.zeros((4, size, size, 3), np.float32)
        reference = session.run(output, {images: blank})
        naive_rows = []
        for row in range(size):
            probe = blank.copy()
            probe[0, row] = 1.0
            naive_rows.append((session.run(output, {images: probe})[0] != reference[0]).any(axis=-1))
        naive_rows = np.array(naive_rows)
        missed = 0
        for fy in range(size):
            for fx in range(size):
                seen = np.flatnonzero(naive_rows[:, fy, fx])
                y1, y2 = (seen.min(), seen.max() + 1) if len(seen) else (0, 0)
                missed += (y1, y2) != tuple(expected[fy, fx, [0, 2]])
        assert missed > 100, missed

        rf = ReceptiveField([4, size, size, 3], lambda batch: session.run([output], {images: batch}))
        np.testing.assert_array_equal(rf.recfield, expected)


# -- whole-image dependence ---------------------------------------------------------------------------------

def test_batchnorm_in_training_mode_is_reported(caplog):
    graph = new_graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [4, 20, 20, 3])
        phase_train = tf1.placeholder(tf.bool, [])
        features = tf.nn.conv2d(images, weights(3, 3, 3, 16), 1, 'SAME')
        mean, variance = tf.nn.moments(features, axes=[0, 1, 2])
        moving_mean, moving_variance = tf.zeros([16]), tf.ones([16])
        mean, variance = tf.cond(phase_train, lambda: (mean, variance), lambda: (moving_mean, moving_variance))
        output = tf.nn.relu(tf.nn.batch_normalization(features, mean, variance, None, None, 1e-3))
        session = tf1.Session(graph=graph)
    with session, caplog.at_level(logging.WARNING, logger='recfield'):
        inference = ReceptiveField([4, 20, 20, 3], lambda x: session.run(output, {images: x, phase_train: False}))
        assert not caplog.records
        assert inference.size == (3, 3) and not inference.whole_image
        training = ReceptiveField([4, 20, 20, 3], lambda x: session.run(output, {images: x, phase_train: True}))
    assert training.whole_image
    assert (training.recfield == [0, 0, 20, 20]).all()
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1
    assert 'mixes images' in messages[0] and 'whole image' in messages[0] and 'False' in messages[0]


def test_per_image_normalisation_is_reported_once(caplog):
    graph = new_graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [2, 16, 16, 3])
        output = tf.nn.conv2d(tf.map_fn(tf.image.per_image_standardization, images), weights(3, 3, 3, 4), 1,
                              'SAME')
        session = tf1.Session(graph=graph)
    with session, caplog.at_level(logging.WARNING, logger='recfield'):
        rf = ReceptiveField([2, 16, 16, 3], lambda x: session.run(output, {images: x}))
    assert rf.whole_image
    whole_image_warnings = [r for r in caplog.records if 'whole image' in r.getMessage()]
    assert len(whole_image_warnings) == 1
    assert 'normalis' in whole_image_warnings[0].getMessage()


# -- bad input ----------------------------------------------------------------------------------------------

def identity(batch):
    return batch


@pytest.mark.parametrize('imshape, words', [
    ([8, 32, 32], 'batch_size, height, width, channels'),
    ([None, 32, 32, 3], 'batch_size'),
    ([8, -1, 32, 3], 'height'),
    ([8, 32, 32.5, 3], 'width'),
    ('abcd', 'batch_size'),
])
def test_bad_imshape(imshape, words):
    with pytest.raises(ValueError, match=words):
        ReceptiveField(imshape, identity)


@pytest.mark.parametrize('forward_func, words', [
    (lambda batch: [batch, batch], 'returned 2 values'),
    (lambda batch: batch[..., 0], '4-D feature map'),
    (lambda batch: batch[:1], 'for a batch of 3'),
    (lambda batch: 'feature map', 'numeric'),
    (lambda batch: np.full(batch.shape, np.nan, np.float32), 'NaN'),
])
def test_bad_forward_func(forward_func, words):
    with pytest.raises(ValueError, match=words):
        ReceptiveField([3, 8, 8, 1], forward_func)


def test_forward_func_gets_full_batches_and_may_return_an_array():
    seen_shapes = set()

    def forward(batch):
        seen_shapes.add(batch.shape)
        return batch  # identity network: every pixel's box is itself

    rf = ReceptiveField([5, 13, 11, 2], forward)
    assert seen_shapes == {(5, 13, 11, 2)}
    y, x = np.mgrid[:13, :11]
    np.testing.assert_array_equal(rf.recfield, np.stack([y, x, y + 1, x + 1], axis=-1))
    assert rf.size == (1, 1) and rf.stride == (1, 1) and rf.padding == (0, 0)


def batch_size_recorder(session, images, output, change=lambda feature_map, batch_size: feature_map):
    """`(forward, batch_sizes)`: a forward function of one layer that records the size of every batch and
    returns `change(its map, the batch size)`."""
    batch_sizes = []

    def forward(batch):
        batch_sizes.append(len(batch))
        return [change(session.run(output, {images: batch}), len(batch))]
    return forward, batch_sizes


def test_without_full_batches_the_last_batch_of_a_round_is_short_and_the_boxes_the_same():
    layers, image_size = LARGE_FIELDS['six stride-2 convs at 64']
    session, images, outputs = build_chain_layers(layers, image_size, None)
    forward, batch_sizes = batch_size_recorder(session, images, outputs[-1])
    with session:
        full = ReceptiveField([8, *image_size, 3], forward)
        full_calls, batch_sizes[:] = len(batch_sizes), []
        short = ReceptiveField([8, *image_size, 3], forward, full_batches=False)
    assert short == full and short.num_probe_images == full.num_probe_images
    assert max(batch_sizes) == 8 and min(batch_sizes) < 8
    # Images run, the references of short batches (one batch per size) included: what the short batches save.
    assert sum(batch_sizes) < 8 * full_calls


def test_draw_example_marks_the_centre_box():
    rf, expected = run_chain([dict(kernel=5), dict(kind='max', kernel=2, stride=2)], (24, 20))
    picture = rf.draw_example()
    assert picture.shape == (24, 20) and picture.dtype == np.uint8
    y1, x1, y2, x2 = expected[6, 5]
    assert picture[y1, x1] == 255 and picture[y2 - 1, x2 - 1] == 255
    assert picture[(y1 + y2) // 2, (x1 + x2) // 2] != picture[0, 0] or (y1, x1) == (0, 0)
    outside = np.ones_like(picture, bool)
    outside[y1:y2, x1:x2] = False
    assert (picture[outside] == picture[outside][0]).all()


# -- stored fields -------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def measured_field():
    """A measured field whose size, stride and padding are known (conv5, max-pool 2/2 on 24x20)."""
    field, _ = run_chain([dict(kernel=5), dict(kind='max', kernel=2, stride=2)], (24, 20))
    assert field.size == (6, 6) and field.stride == (2, 2) and field.padding == (2, 2)
    return field


def assert_same_field(restored, measured):
    """Everything a stored field gives back: boxes, geometry, image size, largest box, drawing, equality."""
    np.testing.assert_array_equal(restored.recfield, measured.recfield)
    assert restored.recfield.dtype == np.int64
    assert (restored.size, restored.stride, restored.padding) == (measured.size, measured.stride, measured.padding)
    assert (restored.height, restored.width) == (measured.height, measured.width)
    assert tuple(restored.feature_shape) == tuple(measured.feature_shape)
    assert restored.max() == measured.max() and restored.whole_image == measured.whole_image
    np.testing.assert_array_equal(restored.draw_example(), measured.draw_example())
    assert restored == measured and not restored != measured


def test_from_arrays_gives_back_the_measured_field(measured_field, tmp_path):
    arrays = measured_field.to_arrays()
    assert sorted(arrays) == ['image_size', 'recfield'] and arrays['image_size'].tolist() == [24, 20]
    restored = ReceptiveField.from_arrays(**arrays)
    assert_same_field(restored, measured_field)
    assert restored.num_probe_images == 0  # nothing was run
    # The arrays are plain numbers: through an .npz file (no pickle) and back.
    np.savez(tmp_path / 'field.npz', **arrays)
    with np.load(tmp_path / 'field.npz', allow_pickle=False) as data:
        assert_same_field(ReceptiveField.from_arrays(data['recfield'], data['image_size']), measured_field)


def test_from_arrays_of_a_field_without_geometry():
    measured, _ = run_chain([dict(kernel=9, padding='SAME')], (5, 5))
    restored = ReceptiveField.from_arrays(**measured.to_arrays())
    assert restored.size is None and restored.stride is None and restored.padding is None
    assert_same_field(restored, measured)


BOXES = np.tile(np.array([0, 0, 3, 3], np.int64), (2, 2, 1))


@pytest.mark.parametrize('recfield, image_size, words', [
    (BOXES[0], (8, 8), 'int array'),                        # 2-D
    (BOXES[..., :3], (8, 8), 'int array'),                  # three coordinates
    (BOXES.astype(np.float32), (8, 8), 'int array'),        # not integers
    (BOXES[:0], (8, 8), 'int array'),                       # no feature pixels
    (BOXES, (8, 8, 3), 'image_size'),
    (BOXES, (8.0, 8.0), 'image_size'),
    (BOXES, (0, 8), 'image_size'),
    (BOXES - 1, (8, 8), 'outside the 8x8 image'),           # negative
    (BOXES, (2, 8), 'outside the 2x8 image'),               # below the bottom
    (BOXES, (8, 2), 'outside the 8x2 image'),               # beyond the right
    (BOXES[..., [2, 1, 0, 3]], (8, 8), 'outside'),          # y1 > y2
])
def test_from_arrays_refuses_arrays_that_are_no_field(recfield, image_size, words):
    with pytest.raises(ValueError, match=words):
        ReceptiveField.from_arrays(recfield, image_size)


def test_fields_are_equal_when_boxes_and_image_size_are(measured_field):
    arrays = measured_field.to_arrays()
    moved = arrays['recfield'].copy()
    moved[0, 0, 2] -= 1
    assert ReceptiveField.from_arrays(moved, arrays['image_size']) != measured_field
    assert ReceptiveField.from_arrays(arrays['recfield'], (30, 20)) != measured_field  # other image, same boxes
    assert measured_field != 'a field' and measured_field.__eq__(arrays) is NotImplemented  # not a field
    with pytest.raises(TypeError):
        hash(measured_field)  # mutable arrays inside: no hash


# -- Keras VGG16 against the published table ----------------------------------------------------------------

@pytest.mark.slow
def test_keras_vgg16_matches_the_published_table():
    """All 13 layers from one set of probes (`measure_receptive_fields`), each layer's output reduced to a
    random projection of its channels (less to compare). One random-sign run per probe: this is about
    geometry, masking has its own tests, and every further run adds some 45 s."""
    model = tf.keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    names = sorted(VGG16_TABLE)
    projections = [tf.constant(np.random.default_rng(index).normal(size=(model.get_layer(name).output.shape[-1],)))
                   for index, name in enumerate(names)]
    all_layers = tf.keras.Model(model.input, [model.get_layer(name).output for name in names])

    @tf.function
    def project_all(batch):
        return [tf.tensordot(tf.cast(output, tf.float64), projection, 1)[..., None]
                for output, projection in zip(all_layers(batch), projections)]

    fields = measure_receptive_fields([16, 224, 224, 3], lambda batch: [output.numpy() for output in project_all(
        tf.constant(batch))], len(names), num_trials=1, extreme_references=False)
    for name, rf in zip(names, fields):
        size, stride, padding = VGG16_TABLE[name]
        assert (rf.size, rf.stride, rf.padding) == ((size, size), (stride, stride), (padding, padding)), name
        # Every box is the closed-form one: centre -padding + i * stride + (size - 1) / 2, clipped.
        starts = np.clip(np.arange(rf.feature_shape[0]) * stride - padding, 0, 224)
        stops = np.clip(np.arange(rf.feature_shape[0]) * stride - padding + size, 0, 224)
        np.testing.assert_array_equal(rf.recfield[..., 0], np.broadcast_to(starts[:, None], rf.feature_shape))
        np.testing.assert_array_equal(rf.recfield[..., 2], np.broadcast_to(stops[:, None], rf.feature_shape))
        np.testing.assert_array_equal(rf.recfield[..., 1], np.broadcast_to(starts[None, :], rf.feature_shape))
        np.testing.assert_array_equal(rf.recfield[..., 3], np.broadcast_to(stops[None, :], rf.feature_shape))


# -- units that only a strong same-signed change wakes (issue 11) -------------------------------------------------

def build_one_signed_layer(imshape, kernel, stride, dilation, sign, value_range, channels=4, seed=5):
    """A first layer whose kernels are all positive (or all negative), with a bias that keeps every unit dead
    at mid-range: a unit wakes only when most of its window moves towards one end of the value range, as in
    a layer trained on bright (or dark) images. VALID padding: with SAME, a corner unit sees too few pixels
    ever to wake, so it depends on none. Returns `(session, images, output)`."""
    rng = np.random.default_rng(seed)
    low, high = value_range
    magnitudes = rng.uniform(0.5, 1.0, (kernel, kernel, imshape[-1], channels))
    filters = (sign * magnitudes).astype(np.float32)
    total = filters.reshape(-1, channels).sum(axis=0)
    middle, wakes_at = (low + high) / 2, (high if sign > 0 else low)
    # pre-activation at a flat image of value v is total * v + bias: negative at the middle, positive at the end.
    bias = (-(total * middle + 0.5 * total * (wakes_at - middle))).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, imshape)
        output = tf.nn.relu(tf.nn.conv2d(images, filters, stride, 'VALID', dilations=dilation) + bias)
    return tf1.Session(graph=graph), images, output


@pytest.mark.parametrize('value_range', [(-1.0, 1.0), (0.0, 1.0), (0.0, 255.0)])
@pytest.mark.parametrize('kernel, stride, dilation', [(3, 1, 1), (5, 1, 1), (3, 2, 1), (3, 1, 2), (5, 2, 2)])
@pytest.mark.parametrize('sign', [1, -1])
def test_units_woken_only_by_one_end_of_the_range_are_measured_exactly(kernel, stride, dilation, sign,
                                                                        value_range):
    imshape = [4, 20, 20, 3]
    session, images, output = build_one_signed_layer(imshape, kernel, stride, dilation, sign, value_range)
    with session:
        assert session.run(output, {images: np.full(imshape, sum(value_range) / 2, np.float32)}).max() == 0
        rf = ReceptiveField(imshape, lambda batch: session.run([output], {images: batch}), value_range=value_range)
    layer = [dict(kernel=kernel, stride=stride, dilation=dilation, padding='VALID')]
    expected = boxes_from_dependencies(chain_dependencies(20, layer), chain_dependencies(20, layer))
    np.testing.assert_array_equal(rf.recfield, expected)


# -- geometry of dilated networks (issue 11) ----------------------------------------------------------------------

def test_geometry_of_a_dilated_network_comes_from_its_interior_boxes():
    # Near the border the dilated taps skip lines, so edge boxes are neither clipped nor regular; the interior
    # ones follow size 21, stride 2, padding 9 (closed form: chain_geometry).
    layers = [dict(kernel=3), dict(kernel=3, stride=2, padding='VALID'), dict(kernel=5, dilation=2)]
    rf, expected = run_chain(layers, (64, 64))
    np.testing.assert_array_equal(rf.recfield, expected)
    pads = [dict(layer, pad_before=pad) for layer, pad in zip(layers, (1, 0, 4))]
    assert chain_geometry(pads) == (21, 2, 9)
    assert (rf.size, rf.stride, rf.padding) == ((21, 21), (2, 2), (9, 9))


# -- several layers from one set of probes (measure_receptive_fields, issue 11) -----------------------------------

def build_chain_layers(layers, image_size, batch_size):
    """Builds the chain; returns `(session, images placeholder, every layer's output)`."""
    graph = new_graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [batch_size, image_size[0], image_size[1], 3])
        outputs = [images]
        for layer in layers:
            outputs.append(apply_layer(outputs[-1], layer))
    return tf1.Session(graph=graph), images, outputs[1:]


@pytest.mark.parametrize('name', ['max and avg pooling', 'dilated convs', 'strided 1x1 (sparse field)', 'deep chain'])
def test_all_layers_at_once_give_the_boxes_of_each_layer_alone_from_fewer_probes(name):
    layers, image_size = CHAINS[name]
    imshape = [3, image_size[0], image_size[1], 3]
    session, images, outputs = build_chain_layers(layers, image_size, imshape[0])
    with session:
        together = measure_receptive_fields(imshape, lambda batch: session.run(outputs, {images: batch}),
                                            len(outputs))
        alone = [ReceptiveField(imshape, lambda batch, output=output: session.run([output], {images: batch}))
                 for output in outputs]
    assert len(together) == len(layers)
    plain = [geometry_only(layer) for layer in layers]
    for depth, (field, expected) in enumerate(zip(together, alone), start=1):
        np.testing.assert_array_equal(field.recfield, expected.recfield, err_msg=f'layer {depth}')
        assert (field.size, field.stride, field.padding) == (expected.size, expected.stride, expected.padding)
        closed_form = boxes_from_dependencies(chain_dependencies(image_size[0], plain[:depth]),
                                              chain_dependencies(image_size[1], plain[:depth]))
        np.testing.assert_array_equal(field.recfield, closed_form, err_msg=f'layer {depth}')
    # One set of probes, shared: every field counts all of them, fewer than the layers took one by one.
    assert len({field.num_probe_images for field in together}) == 1
    assert 0 < together[0].num_probe_images < sum(field.num_probe_images for field in alone)


def test_a_forward_func_that_selects_layers_runs_shallow_probes_without_the_deep_layers():
    # A small-field layer (multiplexed) and one whose field covers the image (edge search).
    layers = [dict(kernel=3), dict(kernel=3, stride=2), dict(kernel=3, stride=2), dict(kernel=5, stride=2),
              dict(kernel=5, stride=2), dict(kernel=5)]
    image_size = (64, 60)
    session, images, outputs = build_chain_layers(layers, image_size, 4)
    imshape = [4, image_size[0], image_size[1], 3]
    chosen = [outputs[0], outputs[-1]]
    asked = []

    def selecting(batch, layers=None):
        asked.append(layers)  # None: called without the keyword, for every layer
        return session.run(chosen if layers is None else [chosen[position] for position in layers], {images: batch})
    with session:
        selected = measure_receptive_fields(imshape, selecting, 2)
        plain = measure_receptive_fields(imshape, lambda batch: session.run(chosen, {images: batch}), 2)
    for field, expected in zip(selected, plain):
        np.testing.assert_array_equal(field.recfield, expected.recfield)
    assert selected[0].num_probe_images == plain[0].num_probe_images
    # The multiplexed probes asked for the shallow layer alone, the edge search's for the deep one alone.
    assert {tuple(layers) for layers in asked if layers is not None} == {(0,), (1,)}
    assert selected[0].size == (3, 3) and selected[1].recfield[..., 2:].min() > 0


def test_a_forward_func_that_selects_layers_must_return_as_many_maps():
    def both_maps_always(batch, layers=(0, 1)):  # a small field, and one of the whole image (an edge search)
        return [box_filter(batch), batch.sum(axis=(1, 2, 3))[:, None, None, None]]  # a global sum: 1x1 map
    with pytest.raises(ValueError, match=r'layers=\[0\]\) returned 2 values; .*one map per layer asked for \(1\)'):
        measure_receptive_fields([2, 64, 64, 1], both_maps_always, 2)


def test_one_layer_at_once_is_a_receptive_field():
    layers, image_size = CHAINS['max and avg pooling']
    session, images, outputs = build_chain_layers(layers, image_size, 3)
    imshape = [3, image_size[0], image_size[1], 3]
    with session:
        [field] = measure_receptive_fields(imshape, lambda batch: session.run(outputs[-1:], {images: batch}), 1)
        alone = ReceptiveField(imshape, lambda batch: session.run(outputs[-1:], {images: batch}))
    assert field == alone and field.num_probe_images == alone.num_probe_images


@pytest.mark.parametrize('forward_func, num_layers, words', [
    (lambda batch: [batch, batch], 3, 'returned 2 values; it must return a list of 3 feature maps'),
    (lambda batch: [batch, batch, batch, batch], 3, 'returned 4 values; it must return a list of 3'),
    (lambda batch: batch, 2, 'must return a list of 2 feature maps'),
    (lambda batch: [batch], 0, 'num_layers must be at least 1, got 0'),
])
def test_a_forward_func_that_does_not_return_num_layers_maps_is_refused(forward_func, num_layers, words):
    with pytest.raises(ValueError, match=words):
        measure_receptive_fields([3, 8, 8, 1], forward_func, num_layers)


# -- bad arguments and forward passes (issue 14) -----------------------------------------------------------------

def box_filter(batch):
    """A 3x3 box filter: a deterministic forward pass of known field."""
    padded = np.pad(batch.sum(axis=-1), ((0, 0), (1, 1), (1, 1)))
    return sum(padded[:, dy:dy + batch.shape[1], dx:dx + batch.shape[2]]
               for dy in range(3) for dx in range(3))[..., None]


@pytest.mark.parametrize('options, words', [
    ({'tolerance': -1}, 'tolerance must be None .automatic. or 0 or more'),
    ({'num_trials': 1.5}, 'num_trials must be a whole number'),
    ({'num_trials': 0}, 'num_trials must be a whole number'),
])
def test_bad_options_are_refused(options, words):
    with pytest.raises(ValueError, match=words):
        ReceptiveField([2, 8, 8, 1], box_filter, **options)


def test_a_forward_pass_that_is_not_repeatable_is_named_as_such():
    noise = np.random.default_rng(0)
    with pytest.raises(ValueError, match='not deterministic'):
        ReceptiveField([2, 8, 8, 1], lambda batch: box_filter(batch) + noise.normal(size=(2, 8, 8, 1)))
    # With one image per batch too, where mixing cannot be checked.
    with pytest.raises(ValueError, match='not deterministic'):
        ReceptiveField([1, 8, 8, 1], lambda batch: box_filter(batch) + noise.normal(size=(1, 8, 8, 1)))


def test_an_infinite_output_is_an_error_not_a_batchnorm_warning():
    with pytest.raises(ValueError, match='NaN or infinity'):
        ReceptiveField([2, 8, 8, 1], lambda batch: box_filter(batch) * np.inf)


def test_the_box_filter_measures_3x3():
    rf = ReceptiveField([2, 8, 8, 1], box_filter)
    assert (rf.size, rf.stride, rf.padding) == ((3, 3), (1, 1), (1, 1))


def test_warnings_name_the_layer(caplog):
    def forward(batch):  # the box filter, and a layer that nothing changes
        return [box_filter(batch), np.zeros((len(batch), 4, 4, 1))]

    with caplog.at_level(logging.WARNING, logger='recfield'):
        fields = measure_receptive_fields([2, 8, 8, 1], forward, 2, layer_names=['net/box:0', 'net/dead:0'])
    assert '16 of 16 feature pixels of net/dead:0 did not change for any probe' in caplog.text
    assert 'net/box:0' not in caplog.text and fields[0].size == (3, 3)


LARGE_FIELDS = {
    # Fields as large as the image or larger: the edge search measures them.
    'six stride-2 convs at 64': ([dict(kernel=3, stride=2)] * 5 + [dict(kernel=3)], (64, 60)),
    'VALID and dilated at 45': ([dict(kernel=5, stride=2, padding='VALID'), dict(kernel=3, dilation=2),
                                 dict(kind='max', kernel=3, stride=2), dict(kernel=5, stride=2)], (45, 50)),
    'pools at 48': ([dict(kernel=3), dict(kind='max', kernel=2, stride=2, padding='VALID'), dict(kernel=3),
                     dict(kind='max', kernel=2, stride=2, padding='VALID'), dict(kernel=3),
                     dict(kind='avg', kernel=2, stride=2, padding='VALID'), dict(kernel=7)], (48, 48)),
}


@pytest.mark.parametrize('name', sorted(LARGE_FIELDS))
def test_large_fields_equal_closed_form_from_fewer_probes_than_line_by_line(name):
    layers, image_size = LARGE_FIELDS[name]
    rf, expected = run_chain(layers, image_size)
    np.testing.assert_array_equal(rf.recfield, expected)
    assert rf.num_probe_images < 4 * (image_size[0] + image_size[1])  # line by line: 4 runs of each line


@pytest.mark.parametrize('change', [1e-6, 1e-2])
@pytest.mark.parametrize('tolerance', [None, 0])
def test_maps_that_change_with_the_batch_size_change_no_box_and_no_plan(change, tolerance):
    """A library may choose kernels or thread splits by batch size, whose sums round otherwise (TensorFlow's
    Eigen kernels on AVX2 did for batches of 2 and 5 images of VGG16, against 8: by about 1e-6; a GPU library
    may pick another precision). Compared with references from full batches, probes in short ones made boxes
    too large on an AVX2 CPU; each is compared with its reference in a batch of its own size."""
    layers, image_size = LARGE_FIELDS['pools at 48']
    session, images, outputs = build_chain_layers(layers, image_size, None)
    _, expected = run_chain(layers, image_size)

    def other_kernels(feature_map, batch_size):  # not 1 and 3: a check of those sizes (as there was) misses it
        return feature_map * np.float32(1 + change) if batch_size not in (1, 3, 8) else feature_map
    with session:
        full = ReceptiveField([8, *image_size, 3], lambda batch: [session.run(outputs[-1], {images: batch})],
                              tolerance=tolerance)
        forward, batch_sizes = batch_size_recorder(session, images, outputs[-1], other_kernels)
        short = ReceptiveField([8, *image_size, 3], forward, full_batches=False, tolerance=tolerance)
    np.testing.assert_array_equal(full.recfield, expected)
    assert short == full and short.num_probe_images == full.num_probe_images
    assert 2 in batch_sizes  # short batches ran, and rounded otherwise


def widened(layers):
    """The chain with its first convolution 4 wider: its field reaches 2 lines further on every side."""
    return [dict(layers[0], kernel=layers[0]['kernel'] + 4)] + layers[1:]


@pytest.mark.parametrize('name, chains', [('pools at 48', LARGE_FIELDS), ('deep chain', CHAINS)])
def test_rounding_moved_by_lit_lines_outside_the_field_changes_no_box_and_no_plan(name, chains):
    """Tiled kernels (Winograd, FFT) compute a tile of outputs from the inputs of the whole tile, so a
    lit line just outside a unit's field moves its value in the last bits. Here every value is rounded by a
    factor that depends on a field 2 lines wider on each side: the default threshold ignores it, bit for bit
    it makes boxes too large."""
    layers, image_size = chains[name]
    assert layers[0].get('stride', 1) == 1 and layers[0].get('padding', 'SAME') == 'SAME'  # same map sizes
    _, expected = run_chain(layers, image_size)
    imshape = [4, *image_size, 3]
    session, images, outputs = build_chain_layers(layers, image_size, None)
    wide_session, wide_images, wide_outputs = build_chain_layers(widened(layers), image_size, None)

    def tiled(batch):
        feature_map = session.run(outputs[-1], {images: batch})
        wide_map = wide_session.run(wide_outputs[-1], {wide_images: batch})
        return [feature_map * (1 + np.float32(2 ** -22) * np.sin(1e3 * wide_map)).astype(np.float32)]
    with session, wide_session:
        exact = ReceptiveField(imshape, lambda batch: [session.run(outputs[-1], {images: batch})])
        noisy = ReceptiveField(imshape, tiled)
        bit_for_bit = ReceptiveField(imshape, tiled, tolerance=0)
    np.testing.assert_array_equal(exact.recfield, expected)
    np.testing.assert_array_equal(noisy.recfield, expected)
    assert noisy.num_probe_images == exact.num_probe_images
    assert (bit_for_bit.recfield != expected).any()  # what the noise does to a comparison bit for bit


def test_large_fields_of_a_masking_network_are_exact():
    """The masking network (dead ReLUs, max-pool, saturating tanh) under stride-2 convs: edge search."""
    size = 40
    graph = new_graph()
    with graph.as_default():
        images, masked = build_masking_network(2, size)
        output = masked
        for _ in range(3):
            output = apply_layer(output, dict(kernel=3, stride=2))
        session = tf1.Session(graph=graph)
    layers = [dict(kernel=5), dict(kernel=3), dict(kernel=1)] + [dict(kernel=3, stride=2)] * 3
    reads = chain_dependencies(size, layers)
    with session:
        rf = ReceptiveField([2, size, size, 3], lambda batch: session.run([output], {images: batch}))
    np.testing.assert_array_equal(rf.recfield, boxes_from_dependencies(reads, reads))


@pytest.mark.parametrize('sign, value_range', [(1, (0.0, 1.0)), (-1, (-1.0, 1.0))])
def test_large_fields_over_units_woken_only_by_one_end_of_the_range_are_exact(sign, value_range):
    imshape = [4, 40, 40, 3]
    session, images, first = build_one_signed_layer(imshape, 3, 1, 1, sign, value_range)
    global weights
    weights = Weights(3)
    with session.graph.as_default():
        output = first
        for _ in range(4):
            output = apply_layer(output, dict(kernel=3, stride=2))
    with session:
        forward_func = lambda batch: session.run([output], {images: batch})  # noqa: E731
        rf = ReceptiveField(imshape, forward_func, value_range=value_range)
        grey_only = ReceptiveField(imshape, forward_func, value_range=value_range, extreme_references=False)
    layers = [dict(kernel=3, padding='VALID')] + [dict(kernel=3, stride=2)] * 4
    reads = chain_dependencies(40, layers)
    expected = boxes_from_dependencies(reads, reads)
    assert not np.array_equal(grey_only.recfield, expected)  # the grey references alone mislead the search
    np.testing.assert_array_equal(rf.recfield, expected)  # the extreme ones catch it
    assert rf.num_probe_images < 4 * 80  # not line by line


def test_an_empty_feature_map_is_a_clear_error():
    # A layer with no pixel at this image size (a zero-height map): once a ZeroDivisionError deep in the planner.
    with pytest.raises(ValueError, match=r'empty feature maps of shape \(0, 4, 2\) for 16x16 images.*use larger '
                                         'images'):
        ReceptiveField([4, 16, 16, 3], lambda batch: np.zeros((len(batch), 0, 4, 2), np.float32))


def test_images_too_large_for_memory_are_a_clear_error():
    with pytest.raises(ValueError, match=r'probing images of imshape \[4, 1000000, 1000000, 3\] needs more memory '
                                         'than there is'):
        ReceptiveField([4, 10 ** 6, 10 ** 6, 3], lambda batch: np.ones((len(batch), 2, 2, 1)))


def test_a_channels_first_map_is_warned_about(caplog):
    # A 3x3 convolution of stride 2 with 6 channels, returned [batch, channels, height, width] as PyTorch does.
    def channels_first(batch):
        maps = np.stack([batch[:, 1:-1:2, 1:-1:2, 0] * (channel + 1) for channel in range(6)], axis=1)
        return maps + batch[:, :-2:2, 1:-1:2, 0][:, None] + batch[:, 2::2, 1:-1:2, 0][:, None]
    with caplog.at_level(logging.WARNING, logger='recfield'):
        ReceptiveField([4, 16, 16, 1], channels_first)
    assert 'the map looks channels-first [batch, channels, height, width]' in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='recfield'):  # the same map the right way round: no warning
        ReceptiveField([4, 16, 16, 1], lambda batch: np.transpose(channels_first(batch), (0, 2, 3, 1)))
    assert 'channels-first' not in caplog.text


def test_a_dilated_kernels_own_field_agrees_with_it():
    # A 3x3 kernel of dilation 2 reads every other line of its 5x5 box: a lit middle line changes only some of the
    # pixels whose boxes hold it, and the field must agree all the same.
    def dilated(batch):
        padded = np.pad(batch[..., 0], ((0, 0), (2, 2), (2, 2)))
        return sum(padded[:, dy:dy + 16, dx:dx + 16] for dy in (0, 2, 4) for dx in (0, 2, 4))[..., None]
    field = ReceptiveField([4, 16, 16, 1], dilated)
    assert field.size == (5, 5)
    assert disagreements([4, 16, 16, 1], lambda batch: [dilated(batch)], [field]) == [None]


def test_measure_model_takes_an_adapter_and_reports_progress_as_a_callback():
    model = open_box_filter_model(None)
    counts = []
    conv, pool = measure_model(model, progress=counts.append)
    expected = measure_receptive_fields(BOX_IMSHAPE, box_filter_maps, 2, value_range=BOX_VALUE_RANGE)
    assert [conv, pool] == expected and (conv.size, pool.size) == ((3, 3), (4, 4))
    assert counts and all(count == BOX_IMSHAPE[0] for count in counts)  # a fixed batch: full batches only
    [alone] = measure_model(model, [1], num_trials=4)
    assert alone == pool


# -- effective receptive fields (issue 28) -------------------------------------------------------------------------

def placed(kernel, field, shape):
    """`kernel` placed at the box of the centre pixel of `field` in an image of `shape`, zeros elsewhere."""
    y1, x1, y2, x2 = field.recfield[field.feature_shape[0] // 2, field.feature_shape[1] // 2]
    assert (y2 - y1, x2 - x1) == kernel.shape  # the centre unit's field is not clipped by the image
    image = np.zeros(shape)
    image[y1:y2, x1:x2] = kernel
    return image


@pytest.mark.parametrize('n', [1, 2, 3, 4])
def test_the_erf_of_n_linear_convolutions_is_the_n_fold_box(attribution_networks, n):
    # Equal weights: the centre unit is a multiple of the sum of its inputs weighted by the n-fold convolution of a
    # 3x3 box with itself; its gradient is that kernel, on every image.
    model, fields = attribution_networks.get(f'linear{n}')
    box = np.ones((3, 3))
    kernel = box
    for _ in range(n - 1):
        kernel = np.array([[np.sum(np.pad(kernel, 2)[y:y + 3, x:x + 3] * box) for x in range(kernel.shape[1] + 2)]
                           for y in range(kernel.shape[0] + 2)])
    erf = measure_effective_field(random_images(model, 3), model.unit_gradients_func(n - 1), fields[-1],
                                  value_range=LINEAR_VALUE_RANGE)
    np.testing.assert_allclose(erf.erf, placed(kernel / kernel.sum(), fields[-1], erf.erf.shape), rtol=0, atol=1e-5)
    assert erf.num_images == 3 and erf.method == 'gradients'
    assert erf.feature_yx == (fields[-1].feature_shape[0] // 2, fields[-1].feature_shape[1] // 2)


@pytest.mark.parametrize('name', ['linear_strided', 'linear_dilated', 'linear_strided_dilated'])
def test_the_erf_of_strided_and_dilated_linear_stacks_is_their_composed_kernel(attribution_networks, name):
    _, layers = LINEAR_STACKS[name]
    model, fields = attribution_networks.get(name)
    erf = measure_effective_field(random_images(model, 2), model.unit_gradients_func(len(layers) - 1), fields[-1],
                                  value_range=LINEAR_VALUE_RANGE, batch_size=1)
    np.testing.assert_allclose(erf.erf, placed(stack_kernel_2d(layers), fields[-1], erf.erf.shape), rtol=0, atol=1e-5)


@pytest.mark.parametrize('name', ['linear1', 'linear4', 'linear_strided_dilated'])
def test_the_occlusion_erf_of_a_linear_stack_on_constant_images_is_its_kernel(attribution_networks, name):
    # On an image reference + c, putting one pixel back to the reference changes the unit by c times the sum of
    # that pixel's weights over its colour channels: the kernel again, scaled by |c|, whatever the sign of c.
    _, layers = LINEAR_STACKS[name]
    model, fields = attribution_networks.get(name)
    reference = np.mean(LINEAR_VALUE_RANGE)
    images = [np.full(model.imshape[1:], reference + c, np.float32) for c in (0.3, -0.2, 0.45)]
    erf = measure_effective_field(images, model.unit_values_func(len(layers) - 1), fields[-1], 'occlusion',
                                  LINEAR_VALUE_RANGE, batch_size=64)
    np.testing.assert_allclose(erf.erf, placed(stack_kernel_2d(layers), fields[-1], erf.erf.shape), rtol=0, atol=1e-5)
    assert erf.num_images == 3 and erf.method == 'occlusion'


ERF_NETWORKS = [*LINEAR_STACKS, 'relu_pool', 'keras_sequential', 'keras_residual', 'onnx']


@pytest.mark.parametrize('name', ERF_NETWORKS)
def test_the_erf_is_zero_outside_the_exact_field_of_its_unit(request, name):
    model, fields = opened_network(request, name)
    method = 'gradients' if model.gradient_func is not None else 'occlusion'
    for index, field in enumerate(fields):
        function = model.unit_gradients_func(index) if method == 'gradients' else model.unit_values_func(index)
        erf = measure_effective_field(random_images(model, 2, seed=index), function, field, method, model.value_range,
                                      batch_size=64)
        y1, x1, y2, x2 = field.recfield[field.feature_shape[0] // 2, field.feature_shape[1] // 2]
        assert erf.box == [y1, x1, y2, x2]
        outside = np.ones(erf.erf.shape, bool)
        outside[y1:y2, x1:x2] = False
        assert not erf.erf[outside].any(), (model.layers[index].name, np.argwhere(erf.erf * outside))
        assert erf.erf.sum() == pytest.approx(1) and (erf.erf >= 0).all()


def test_the_erf_is_the_normalised_mean_over_images_of_the_centre_units_absolute_gradient(attribution_networks):
    # Measured the way Luo et al. do, by hand: the gradient of the mean over the channels of the centre unit, its size
    # summed over colour channels, averaged over the images; then made to sum to 1.
    model, fields = attribution_networks.get('relu_pool')
    images = random_images(model, 5, seed=9)
    for index, field in enumerate(fields):
        centre = (field.feature_shape[0] // 2, field.feature_shape[1] // 2, ALL_CHANNELS)
        gradients = model.gradient_func(images, index, np.repeat([centre], len(images), axis=0))
        expected = np.abs(gradients).sum(axis=-1).mean(axis=0)
        erf = measure_effective_field(iter(images), model.unit_gradients_func(index), field, batch_size=2,
                                      value_range=model.value_range)
        np.testing.assert_allclose(erf.erf, expected / expected.sum(), rtol=1e-6, atol=1e-9)
        assert erf.num_images == 5 and erf.exact_size == field.size
