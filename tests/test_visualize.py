"""Tests of `utils/visualize.py` on a small graph: tracking several layers at once, receptive fields, files."""

import logging
import os
import types

import cv2
import numpy as np
import pytest
import tensorflow as tf

from activations import TopActivations
from conftest import build_session, tf1
from utils.visualize import (channels_to_draw, describe_layer, measure_receptive_field, track_top_activations,
                             write_image, write_layer_pictures, write_receptive_field_example)


class CountingSession:
    """A session that counts its `run` calls."""

    def __init__(self, session):
        self._session = session
        self.runs = 0

    def run(self, *args, **kwargs):
        self.runs += 1
        return self._session.run(*args, **kwargs)


@pytest.fixture(scope='module')
def network():
    """Two layers on 12x12 grey images: a 3x3 box filter with ReLU, then a 2x2/2 max-pool; and a flag."""
    def build():
        images = tf1.placeholder(tf.float32, [None, 12, 12, 1], name='images')
        flip = tf1.placeholder_with_default(1.0, [], name='flip')
        kernel = np.stack([np.ones((3, 3)), -np.ones((3, 3))], axis=-1)[:, :, None].astype(np.float32)
        conv = tf.nn.relu(flip * tf.nn.conv2d(images, kernel, 1, 'SAME'), name='conv/Relu')
        pool = tf.nn.max_pool2d(conv, 2, 2, 'VALID', name='pool/MaxPool')
        return images, flip, conv, pool
    session, (images, flip, conv, pool) = build_session(build)
    yield session, images, flip, [conv, pool]
    session.close()


def test_one_run_per_batch_and_the_same_result_as_one_layer_at_a_time(network, rng):
    session, images_ph, _, layers = network
    inputs = rng.normal(size=(10, 12, 12, 1)).astype(np.float32)
    display = rng.integers(0, 256, (10, 12, 12), dtype=np.uint8)
    batches = [(inputs[start:start + 4], display[start:start + 4]) for start in range(0, 10, 4)]
    counting = CountingSession(session)
    trackers = track_top_activations(counting, images_ph, layers, batches, num_samples=3, num_batches=3)
    assert counting.runs == 3
    for layer, tracker in zip(layers, trackers):
        expected = TopActivations(3).update(display, session.run(layer, {images_ph: inputs}))
        np.testing.assert_array_equal(tracker.firings, expected.firings)
        np.testing.assert_array_equal(tracker.indices, expected.indices)
        np.testing.assert_array_equal(tracker.coords, expected.coords)


def test_feed_dict_is_passed_with_every_batch(network, rng):
    session, images_ph, flip, layers = network
    inputs = rng.normal(size=(4, 12, 12, 1)).astype(np.float32)
    batches = [(inputs, np.zeros((4, 12, 12), np.uint8))]
    plain, = track_top_activations(session, images_ph, layers[:1], batches, 2)
    flipped, = track_top_activations(session, images_ph, layers[:1], batches, 2, feed_dict={flip: -1.0})
    # Flipping the sign swaps the two channels (a box filter and its negative).
    np.testing.assert_array_equal(flipped.firings, plain.firings[::-1])


def test_receptive_field_and_its_description(network):
    session, images_ph, _, layers = network
    field = measure_receptive_field(session, images_ph, layers[1], [4, 12, 12, 1], (-1.0, 1.0))
    assert (field.size, field.stride, field.padding) == ((4, 4), (2, 2), (1, 1))
    assert describe_layer(layers[1], field) == ('pool/MaxPool:0 feature map is of shape 6x6x2 and has receptive '
                                                'field 4x4 (stride 2x2, padding 1x1)')


def test_description_when_the_image_hides_the_geometry():
    field = types.SimpleNamespace(feature_shape=(2, 2), size=None, stride=None, padding=None, max=lambda: (32, 32))
    layer = types.SimpleNamespace(name='net/conv5:0', shape=(None, 2, 2, 512))
    assert describe_layer(layer, field) == ('net/conv5:0 feature map is of shape 2x2x512 and has receptive field '
                                            'up to 32x32 (boxes clipped by the image; size, stride and padding '
                                            'unknown)')


def tracker_with_silent_channels():
    """Channels 1 and 3 of five never rise above 0."""
    features = np.random.default_rng(0).uniform(0.1, 1.0, (6, 3, 3, 5))
    features[..., [1, 3]] = 0.0
    return TopActivations(2).update(np.zeros((6, 8, 8, 3), np.uint8), features)


@pytest.mark.parametrize('requested, expected', [(2, [0, 2]), (0, [0, 2, 4]), (3, [0, 2, 4])])
def test_channels_to_draw_skip_silent_channels(requested, expected, caplog):
    with caplog.at_level(logging.INFO, logger='utils.visualize'):
        channels = channels_to_draw(tracker_with_silent_channels(), requested, 'layer')
    assert list(channels) == expected
    assert '2 of the 5 channels of layer never fire' in caplog.text
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_asking_for_more_channels_than_fire_warns(caplog):
    with caplog.at_level(logging.WARNING, logger='utils.visualize'):
        channels = channels_to_draw(tracker_with_silent_channels(), 10, 'layer')
    assert list(channels) == [0, 2, 4]
    assert '--num_channels 10 is more than the 3 channels of layer that fire' in caplog.text


def test_layer_pictures_and_example_files(network, tmp_path, rng):
    session, images_ph, _, layers = network
    inputs = rng.normal(size=(5, 12, 12, 1)).astype(np.float32)
    display = rng.integers(0, 256, (5, 12, 12, 3), dtype=np.uint8)
    tracker, = track_top_activations(session, images_ph, layers[1:], [(inputs, display)], num_samples=2)
    field = measure_receptive_field(session, images_ph, layers[1], [5, 12, 12, 1], (-1.0, 1.0))
    full_path, crop_path = write_layer_pictures(str(tmp_path), 'net/pool/MaxPool:0', tracker, field, [0, 1])
    assert os.path.basename(full_path) == 'net-pool-MaxPool0-full.jpg'
    assert os.path.basename(crop_path) == 'net-pool-MaxPool0-crop.jpg'
    assert cv2.imread(full_path).shape[1] == 2 * (12 + 2)
    example = write_receptive_field_example(str(tmp_path), 'net/pool/MaxPool:0', field)
    assert os.path.basename(example) == 'recfield-net-pool-MaxPool0.png'
    np.testing.assert_array_equal(cv2.imread(example, cv2.IMREAD_UNCHANGED), field.draw_example())
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(path) for path in (full_path, crop_path, example))


def test_no_firing_channel_writes_nothing(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger='utils.visualize'):
        assert write_layer_pictures(str(tmp_path), 'layer:0', TopActivations(1), None, []) is None
    assert 'no channel of layer:0 fires' in caplog.text and not os.listdir(tmp_path)


def test_write_image_needs_a_known_extension(tmp_path):
    with pytest.raises(ValueError, match='.jpg or .png'):
        write_image(str(tmp_path / 'picture.unknown'), np.zeros((4, 4, 3), np.uint8))
    assert not os.listdir(tmp_path)
