"""utils.base.quiet_tf: scripts show none of TensorFlow's C++ start-up lines, but every error and Python warning."""

import os
import re

import pytest

from conftest import run_script
from utils.base.quiet_tf import debug_requested, log_lines_hidden

TF_LOG_LINE = re.compile(r'^[IWEF]\d{4} |absl::InitializeLog', re.MULTILINE)
TF_START_UP = (b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n'
               b'I0000 00:00:1795623563.431907   29271 port.cc:153] oneDNN custom operations are on.\n'
               b'E0000 00:00:1795623573.801148   29354 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n'
               b'I0000 00:00:1795623563.478768   29271 cpu_feature_guard.cc:227] This TensorFlow binary is\n'
               b'To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.\n')


@pytest.fixture
def as_users_run(monkeypatch):
    """Scripts run without the tests' TF_CPP_MIN_LOG_LEVEL, as a user runs them."""
    monkeypatch.delenv('TF_CPP_MIN_LOG_LEVEL', raising=False)


def test_log_lines_are_dropped_and_other_lines_kept(capfd):
    with log_lines_hidden():
        os.write(2, TF_START_UP + b'UserWarning: a real warning\n')
        os.write(2, b'F0000 00:00:1.0   1 check.cc:1] a fatal check\n')
    assert capfd.readouterr().err == 'UserWarning: a real warning\nF0000 00:00:1.0   1 check.cc:1] a fatal check\n'


def test_lines_written_before_an_error_still_show(capfd):
    with pytest.raises(ImportError):
        with log_lines_hidden():
            os.write(2, TF_START_UP + b'cannot load libfoo.so\n')
            raise ImportError('no libfoo')
    assert capfd.readouterr().err == 'cannot load libfoo.so\n'
    os.write(2, b'after\n')  # file descriptor 2 is back
    assert capfd.readouterr().err == 'after\n'


@pytest.mark.parametrize('argv, expected', [
    (['x.py', '--logging_level', 'DEBUG'], True), (['x.py', '--logging_level=debug'], True),
    (['x.py', '--logging_level', 'INFO'], False), (['x.py', '--layers', 'DEBUG'], False), (['x.py'], False),
])
def test_debug_requested(argv, expected):
    assert debug_requested(argv) is expected


@pytest.mark.slow  # seconds: left out of the quick loop
def test_help_shows_no_tensorflow_lines(as_users_run):
    result = run_script('vgg16_recfield.py', '--help')
    assert result.returncode == 0 and result.stdout.startswith('usage: ')
    assert result.stderr == ''


@pytest.mark.slow
def test_a_run_and_an_error_show_only_the_tools_lines(as_users_run, tmp_path):
    result = run_script('vgg16_recfield.py', '--layers', 'vgg_16/conv1/conv1_1/Relu:0', '--image_size', 32,
                        '--out_dir', tmp_path, '--no_recfield_cache')
    assert result.returncode == 0, result.stderr
    assert not TF_LOG_LINE.search(result.stderr), result.stderr
    assert all(line.startswith('receptive fields of ') for line in result.stderr.splitlines()), result.stderr
    result = run_script('vgg16_recfield.py', '--layers', 'conv1_1', '--image_size', 32, '--out_dir', tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: no layer 'conv1_1' in the graph.") and len(result.stderr.splitlines()) == 1


@pytest.mark.slow
def test_debug_logging_shows_everything(as_users_run):
    result = run_script('vgg16_recfield.py', '--help', '--logging_level', 'DEBUG')
    assert result.returncode == 0
    assert 'absl::InitializeLog' in result.stderr and re.search(r'^I\d{4} ', result.stderr, re.MULTILINE)
