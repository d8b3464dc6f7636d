"""Tests of `utils/pictures/drawing.py`: the printed line, the channels drawn, the picture files. No network needed:
the layers are `TopActivations` of generated feature maps with receptive fields of chosen boxes."""

import errno
import glob
import logging
import os

import cv2
import numpy as np
import pytest

from conftest import grid_field, read_document
from activations import TopActivations, distinct_layers
from recfield import EffectiveReceptiveField, ReceptiveField
from utils.core.attributing import Explanations
from utils.pictures import drawing
from utils.pictures.drawing import (channels_to_draw, check_picture_size, describe_layer, draw_layers, write_image,
                            write_layer_pictures, write_receptive_field_example)

IMAGE_SIZE = 12


def pool_field():
    """The field of a 3x3 convolution, then a 2x2/2 max-pool, on 12x12 images: 4x4, stride 2, padding 1."""
    return grid_field(6, 6, IMAGE_SIZE, before=(1, 1), after=(3, 3))


def tracker_with_silent_channels(num_channels=5, silent=(1, 3)):
    """Six 12x12 colour images on a 6x6 feature map; the `silent` channels never rise above 0."""
    rng = np.random.default_rng(0)
    features = rng.uniform(0.1, 1.0, (6, 6, 6, num_channels))
    features[..., list(silent)] = 0.0
    return TopActivations(2).update(rng.integers(0, 256, (6, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8), features)


# -- the printed line -------------------------------------------------------------------------------------------

def test_description_of_a_layer_with_known_geometry():
    field = pool_field()
    assert (field.size, field.stride, field.padding) == ((4, 4), (2, 2), (1, 1))
    assert describe_layer('pool/MaxPool:0', field, 2) == ('pool/MaxPool:0 feature map is of shape 6x6x2 and has '
                                                          'receptive field 4x4 (stride 2x2, padding 1x1)')


def test_description_when_the_image_hides_the_geometry():
    every_box_the_whole_image = np.tile(np.array([0, 0, 32, 32], np.int64), (2, 2, 1))
    field = ReceptiveField.from_arrays(every_box_the_whole_image, (32, 32))
    assert field.size is None
    assert describe_layer('net/conv5:0', field, 512) == ('net/conv5:0 feature map is of shape 2x2x512 and has '
                                                         'receptive field up to 32x32 (boxes clipped by the image; '
                                                         'size, stride and padding unknown)')


# -- the channels drawn -----------------------------------------------------------------------------------------

@pytest.mark.parametrize('requested, expected', [(2, [0, 2]), (0, [0, 2, 4]), (3, [0, 2, 4])])
def test_channels_to_draw_skip_silent_channels(requested, expected, caplog):
    with caplog.at_level(logging.INFO, logger='utils.pictures.drawing'):
        channels = channels_to_draw(tracker_with_silent_channels(), requested, 'layer')
    assert list(channels) == expected
    assert '2 of the 5 channels of layer never fire' in caplog.text
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_asking_for_more_channels_than_fire_warns(caplog):
    with caplog.at_level(logging.WARNING, logger='utils.pictures.drawing'):
        channels = channels_to_draw(tracker_with_silent_channels(), 10, 'layer')
    assert list(channels) == [0, 2, 4]
    assert '--num_channels 10 is more than the 3 channels of layer that fire' in caplog.text


def test_a_tracker_that_saw_nothing_has_no_channels_to_draw():
    assert list(channels_to_draw(TopActivations(2), 0, 'layer')) == []


# -- files ------------------------------------------------------------------------------------------------------

def test_layer_pictures_and_example_files(tmp_path):
    field = pool_field()
    full_path, crop_path = write_layer_pictures(str(tmp_path), 'net/pool/MaxPool:0', tracker_with_silent_channels(),
                                                field, [0, 2])
    assert os.path.basename(full_path) == 'net-pool-MaxPool0-full.jpg'
    assert os.path.basename(crop_path) == 'net-pool-MaxPool0-crop.jpg'
    assert cv2.imread(full_path).shape[1] == 2 * (IMAGE_SIZE + 2)
    assert cv2.imread(crop_path).shape[1] == 2 * (4 + 2)  # the largest box, 4 wide
    example = write_receptive_field_example(str(tmp_path), 'net/pool/MaxPool:0', field)
    assert os.path.basename(example) == 'recfield-net-pool-MaxPool0.png'
    np.testing.assert_array_equal(cv2.imread(example, cv2.IMREAD_UNCHANGED), field.draw_example())
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(path) for path in (full_path, crop_path, example))


def test_no_firing_channel_writes_nothing(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger='utils.pictures.drawing'):
        assert write_layer_pictures(str(tmp_path), 'layer:0', TopActivations(1), None, []) is None
    assert 'no channel of layer:0 fires' in caplog.text and not os.listdir(tmp_path)


def test_write_image_needs_a_known_extension(tmp_path):
    with pytest.raises(ValueError, match='.jpg or .png'):
        write_image(str(tmp_path / 'picture.unknown'), np.zeros((4, 4, 3), np.uint8))
    assert not os.listdir(tmp_path)


def test_draw_layers_writes_the_pictures_of_every_layer_with_a_firing_channel(tmp_path, caplog):
    layers = [('net/pool/MaxPool:0', pool_field(), tracker_with_silent_channels()),
              ('net/silent:0', pool_field(), tracker_with_silent_channels(3, silent=(0, 1, 2))),
              ('net/wide:0', pool_field(), tracker_with_silent_channels(4, silent=()))]
    with caplog.at_level(logging.WARNING, logger='utils.pictures.drawing'):
        draw_layers(iter(layers), str(tmp_path), num_channels=2)
    assert sorted(os.listdir(tmp_path)) == ['activations.json', 'index.html', 'net-pool-MaxPool0-crop.jpg',
                                            'net-pool-MaxPool0-full.jpg', 'net-wide0-crop.jpg', 'net-wide0-full.jpg']
    assert 'no channel of net/silent:0 fires' in caplog.text
    for stem in ('net-pool-MaxPool0', 'net-wide0'):  # two channels each: 0 and 2, and 0 and 1
        assert cv2.imread(str(tmp_path / f'{stem}-full.jpg')).shape[1] == 2 * (IMAGE_SIZE + 2)
    # The same layer drawn alone gives the same file.
    alone = tmp_path / 'alone'
    alone.mkdir()
    name, field, tracker = layers[0]
    write_layer_pictures(str(alone), name, tracker, field, [0, 2])
    assert (alone / 'net-pool-MaxPool0-full.jpg').read_bytes() == (tmp_path / 'net-pool-MaxPool0-full.jpg').read_bytes()


def test_draw_layers_with_places_draws_distinct_lists_and_warns_once_a_layer_about_short_ones(tmp_path, caplog):
    rng = np.random.default_rng(0)
    images = rng.integers(100, 256, (6, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    features = np.zeros((6, 6, 6, 2))
    features[[0, 1, 4], 2, 2, 0] = [3, 2, 1]  # channel 0: images 0 and 1 show one place, image 4 another
    features[[2, 3], 2, 2, 1] = [3, 2]
    tracker = TopActivations(2).update(images, features)  # 2 candidates each
    places = np.array([(0, 0, 0, 12, 12, 0)] + [(photo, 0, 0, 12, 12, 0) for photo in range(5)])
    name = 'net/pool/MaxPool:0'
    with caplog.at_level(logging.WARNING, logger='activations'):
        layers, record = distinct_layers([(name, pool_field(), tracker), ('net/other:0', pool_field(), tracker)],
                                         places, num_samples=2)
        draw_layers(layers, str(tmp_path), 2, record=record)
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2 and warnings[0].startswith(
        f'1 of the 2 channels of {name} show fewer than 2 distinct places (the first: channel 0): their 2 candidates '
        'repeat places. Scan with a larger --candidates_per_sample')
    document = read_document(tmp_path)
    assert document['distinct_places'] == {'max_overlap': 0.5, 'candidates': 2,
                                           'short_channels': {name: [0], 'net/other:0': [0]}}
    assert [[entry['index'] for entry in ranked] for ranked in document['layers'][0]['channels']] == [[0], [2, 3]]
    # A short column keeps the rows of the others: its second cell is black.
    full = cv2.imread(str(tmp_path / 'net-pool-MaxPool0-full.jpg'))
    without_places = tmp_path / 'without_places'
    without_places.mkdir()
    draw_layers([(name, pool_field(), tracker)], str(without_places), 2)
    assert full.shape == cv2.imread(str(without_places / 'net-pool-MaxPool0-full.jpg')).shape
    cell = IMAGE_SIZE + 2
    assert full[-cell:, :cell].mean() < 10 < 100 < full[-cell + 2:-2, cell + 2:2 * cell - 2].mean()
    plain = read_document(without_places)
    assert 'distinct_places' not in plain
    assert [[entry['index'] for entry in ranked] for ranked in plain['layers'][0]['channels']] == [[0, 1], [2, 3]]


def test_draw_layers_also_logs_the_pictures_for_tensorboard(tmp_path, caplog):
    logs = tmp_path / 'logs'
    with caplog.at_level(logging.INFO, logger='utils.pictures.drawing'):
        draw_layers([('net/pool/MaxPool:0', pool_field(), tracker_with_silent_channels())], str(tmp_path), 0,
                    tensorboard_dir=str(logs))
    event_files = glob.glob(str(logs / 'events.out.tfevents.*'))
    assert len(event_files) == 1 and os.path.getsize(event_files[0]) > 0
    assert f'see them with: tensorboard --logdir {logs}' in caplog.text


def test_pictures_taller_than_a_jpeg_are_refused_before_the_run():
    check_picture_size(5, 128)
    check_picture_size(503, 128)
    with pytest.raises(ValueError, match='--num_samples 600 with 128-pixel images .* use at most 503'):
        check_picture_size(600, 128)


def test_pictures_of_an_earlier_run_in_the_folder_are_mentioned(tmp_path, caplog):
    layer = ('net/pool/MaxPool:0', pool_field(), tracker_with_silent_channels())
    (tmp_path / 'net-old0-full.jpg').write_bytes(b'from an earlier run')
    (tmp_path / 'notes.txt').write_text('not a picture of this tool')
    with caplog.at_level(logging.WARNING, logger='utils.pictures.drawing'):
        draw_layers([layer], str(tmp_path), num_channels=2)
    assert f'pictures of an earlier run stay in {tmp_path}: 1, the first net-old0-full.jpg' in caplog.text
    caplog.clear()
    os.remove(tmp_path / 'net-old0-full.jpg')
    with caplog.at_level(logging.WARNING, logger='utils.pictures.drawing'):
        draw_layers([layer], str(tmp_path), num_channels=2)  # drawn again: its own pictures are not older ones
    assert 'earlier run' not in caplog.text


def test_effective_field_pictures_of_an_earlier_run_are_mentioned_too(tmp_path, caplog):
    layer = ('net/pool/MaxPool:0', pool_field(), tracker_with_silent_channels())
    erf = np.zeros((IMAGE_SIZE, IMAGE_SIZE))
    erf[4:8, 4:8] = 1
    explanations = Explanations({}, [EffectiveReceptiveField(erf, (3, 3), [4, 4, 8, 8], (4, 4), 2, 'gradients')], {})
    (tmp_path / 'erf-net-old0.png').write_bytes(b'from an earlier run')
    with caplog.at_level(logging.WARNING, logger='utils.pictures.drawing'):
        draw_layers([layer], str(tmp_path), num_channels=2, explain=lambda layers: explanations)
    assert (tmp_path / 'erf-net-pool-MaxPool0.png').exists()
    assert f'pictures of an earlier run stay in {tmp_path}: 1, the first erf-net-old0.png' in caplog.text
    caplog.clear()
    os.remove(tmp_path / 'erf-net-old0.png')
    with caplog.at_level(logging.WARNING, logger='utils.pictures.drawing'):
        draw_layers([layer], str(tmp_path), num_channels=2, explain=lambda layers: explanations)
    assert 'earlier run' not in caplog.text  # its own effective field picture is not an older one


def test_a_run_that_fails_while_drawing_leaves_no_gallery_over_mixed_pictures(tmp_path, monkeypatch):
    layers = [('net/pool/MaxPool:0', pool_field(), tracker_with_silent_channels()),
              ('net/wide:0', pool_field(), tracker_with_silent_channels(4, silent=()))]
    draw_layers(layers, str(tmp_path), num_channels=2)
    earlier = (tmp_path / 'net-wide0-full.jpg').read_bytes()
    real_write = drawing.write_image

    def disk_full_at_the_second_layer(path, image):
        if 'wide' in os.path.basename(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real_write(path, image)

    monkeypatch.setattr(drawing, 'write_image', disk_full_at_the_second_layer)
    with pytest.raises(OSError, match='No space left on device'):
        draw_layers(layers, str(tmp_path), num_channels=2)
    # The first layer's pictures are new, the second's old: no index.html or activations.json shows them together.
    assert sorted(os.listdir(tmp_path)) == ['net-pool-MaxPool0-crop.jpg', 'net-pool-MaxPool0-full.jpg',
                                            'net-wide0-crop.jpg', 'net-wide0-full.jpg']
    assert (tmp_path / 'net-wide0-full.jpg').read_bytes() == earlier


def test_a_layer_that_does_not_depend_on_its_input_is_drawn_with_empty_boxes(tmp_path, caplog):
    # A constant layer (zero kernel, positive bias): no feature pixel changes for any probe, every box is empty.
    with caplog.at_level(logging.WARNING, logger='recfield'):
        constant = ReceptiveField([4, IMAGE_SIZE, IMAGE_SIZE, 3], lambda batch: np.ones((len(batch), 6, 6, 5)))
    assert constant.max() == (0, 0) and 'did not change for any probe' in caplog.text
    draw_layers([('net/constant:0', constant, tracker_with_silent_channels())], str(tmp_path), num_channels=2)
    assert {'index.html', 'activations.json', 'net-constant0-full.jpg'} <= set(os.listdir(tmp_path))


def test_a_layer_with_a_300_character_name_is_drawn(tmp_path):
    name = 'stage/' * 49 + 'conv:0'
    draw_layers([(name, pool_field(), tracker_with_silent_channels())], str(tmp_path), num_channels=2)
    pictures = sorted(path for path in os.listdir(tmp_path) if path.endswith('.jpg'))
    assert len(pictures) == 2 and all(len(path.encode()) <= 255 for path in pictures)
