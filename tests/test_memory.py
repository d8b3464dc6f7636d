"""utils.core.memory: a run that cannot fit in memory is refused before the network runs, with what to lower."""

import argparse

import pytest
import tensorflow as tf

from conftest import run_script
from utils.core import memory
from utils.models.tf_session import find_layers
from utils.pictures.drawing import check_picture_size

tf1 = tf.compat.v1
MIB = 1 << 20


def test_needed_bytes_by_step():
    # 10x10x3 inputs, largest tensor 1000 bytes, one 5x5x4 layer (400 bytes per image).
    needed = memory.needed_bytes(32, (10, 10, 3), 1000, [(5, 5, 4)], num_samples=2, num_channels=0)
    forward_per_image = 1200 + 2 * 1000
    assert needed == {'receptive-field probes': 16 * forward_per_image + 4 * 16 * 400,  # 16 at most, 4 maps each
                      'scan': 32 * forward_per_image + 3 * 32 * 300,  # the batch and 2 decoded ahead
                      'pictures': 4 * 2 * 12 * 12 * 3}  # every channel (0), 2 images each, with borders
    recfield_only = memory.needed_bytes(4, (10, 10, 3), 1000, [(5, 5, 4)])
    assert recfield_only == {'receptive-field probes': 4 * forward_per_image + 4 * 4 * 400}


def test_pictures_count_the_channels_asked_for():
    layers = [(5, 5, 4), (2, 2, 64)]
    assert memory.needed_bytes(1, (10, 10, 3), 0, layers, 1, 10)['pictures'] == 10 * 12 * 12 * 3
    assert memory.needed_bytes(1, (10, 10, 3), 0, layers, 1, 100)['pictures'] == 64 * 12 * 12 * 3


def test_check_memory_names_the_step_and_what_to_lower():
    needed = {'receptive-field probes': 3 * MIB, 'scan': 5 * MIB, 'pictures': 4 * MIB}
    memory.check_memory(needed, available=5 * MIB)
    with pytest.raises(ValueError, match=r'^this run needs at least 0.0 GiB of memory for its scan, more than the '
                                         r'0.0 GiB available; lower --batch_size or --image_size.$'):
        memory.check_memory(needed, available=5 * MIB - 1, image_size_flag='--image_size')
    with pytest.raises(ValueError, match='for its pictures, .* lower --num_channels or --num_samples.$'):
        memory.check_memory(dict(needed, pictures=6 * MIB), available=MIB)


def test_available_bytes_is_known_here():
    assert memory.available_bytes() > 0


@pytest.fixture(scope='module')
def small_network():
    """A graph on 64x64 images: a 16-channel convolution, then a 2-channel layer; `(graph, images)`."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, 64, 64, 3], name='images')
        wide = tf.nn.conv2d(images, tf.zeros([3, 3, 3, 16]), 1, 'SAME', name='wide')
        tf.nn.conv2d(wide, tf.zeros([3, 3, 16, 2]), 1, 'SAME', name='narrow')
    return graph, images


def test_layers_are_found_only_for_a_run_that_fits(small_network, monkeypatch):
    graph, images = small_network
    args = argparse.Namespace(layers=['narrow'], batch_size=8, num_samples=5, num_channels=10, image_size=64)
    # The probes, the most: 8 x (input 48 KiB + 2 x the 256 KiB of 'wide') + 4 x 8 x the 32 KiB of 'narrow'.
    probes = 8 * (64 * 64 * 3 * 4 + 2 * 64 * 64 * 16 * 4) + 4 * 8 * 64 * 64 * 2 * 4
    monkeypatch.setattr(memory, 'available_bytes', lambda: probes)
    assert [layer.name for layer in find_layers(graph, images, args)] == ['narrow:0']
    monkeypatch.setattr(memory, 'available_bytes', lambda: probes - 1)
    with pytest.raises(ValueError, match='for its receptive-field probes, .* lower --batch_size or --image_size'):
        find_layers(graph, images, args)


def test_a_huge_image_size_is_refused_by_the_picture_check_too():
    with pytest.raises(ValueError, match='^100000-pixel images are taller than the 65500 pixels a JPEG can hold'):
        check_picture_size(1, 100000)


@pytest.mark.slow
def test_script_refuses_at_once_with_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv('TF_CPP_MIN_LOG_LEVEL')  # as users run it (the tests' level 2 shows cuInit errors)
    out_dir = tmp_path / 'pictures'
    result = run_script('vgg16_activations.py', '--image_size', 100000, '--out_dir', out_dir)
    assert result.returncode == 2
    assert result.stderr.startswith('error: this run needs at least ') and len(result.stderr.splitlines()) == 1
    assert 'lower --batch_size or --image_size.' in result.stderr
    assert not out_dir.exists()  # refused before the output folder was made, and before anything ran
