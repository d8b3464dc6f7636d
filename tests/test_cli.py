"""Tests of `utils/running/cli.py`: the common flags, the layer names they give, and bad input turned into a
one-line error with exit code 2."""

import argparse
import logging
import signal
import subprocess
import sys
import time

import progressbar
import pytest

import onnx_activations
import vgg16_activations
from conftest import REPO, assert_usage_error
from utils.base import progress
from utils.base.layer_names import names_from_flags
from utils.running import cli


def parser_with_all_flags():
    """A parser with the flags of an `*_activations.py` script."""
    parser = argparse.ArgumentParser()
    cli.add_common_arguments(parser, ['net/conv1:0', 'net/conv2:0'], '/tmp/out')
    cli.add_activation_arguments(parser)
    return parser


def test_defaults():
    args = parser_with_all_flags().parse_args([])
    assert names_from_flags(args.layers) == ['net/conv1:0', 'net/conv2:0'] and args.out_dir == '/tmp/out'
    assert (args.num_channels, args.num_samples, args.batch_size) == (10, 5, 16)
    assert args.logging_level == 'WARNING' and not args.print_all_names
    assert args.tensorboard_dir is None and (args.num_shards, args.shard_index, args.dask_scheduler) == (None,) * 3


def test_flags_are_parsed():
    args = parser_with_all_flags().parse_args(['--layers', 'a:0', 'b:0', '--num_channels', 'all', '--num_samples', '3',
                                               '--logging_level', 'debug', '--batch_size', '4'])
    assert names_from_flags(args.layers) == ['a:0', 'b:0'] and args.num_channels == 0 and args.num_samples == 3
    assert args.logging_level == 'DEBUG' and args.batch_size == 4


@pytest.mark.parametrize('values', [['a:0,b/c:0'], ['a:0', 'b/c:0'], ['a:0,', ' b/c:0'], ['a:0', ',b/c:0,']])
def test_layers_separated_by_commas_or_spaces(values):
    """The original tool took --layers conv1/conv1:0,conv2/conv2:0; separate words work too."""
    args = parser_with_all_flags().parse_args(['--layers'] + values)
    assert names_from_flags(args.layers) == ['a:0', 'b/c:0']


@pytest.mark.parametrize('text, value', [('all', 0), ('ALL', 0), ('0', 0), ('7', 7)])
def test_count_or_all(text, value):
    assert cli.count_or_all(text) == value


@pytest.mark.parametrize('parse, text, value', [(cli.non_negative_int, '0', 0), (cli.non_negative_int, '3', 3),
                                                (cli.positive_int, '1', 1)])
def test_counts(parse, text, value):
    assert parse(text) == value


@pytest.mark.parametrize('parse, text', [(cli.count_or_all, '-1'), (cli.count_or_all, 'many'),
                                         (cli.positive_int, '0'), (cli.positive_int, '2.5'),
                                         (cli.non_negative_int, '-1'), (cli.non_negative_int, 'all')])
def test_bad_counts(parse, text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse(text)


def test_bad_flag_exits_with_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parser_with_all_flags().parse_args(['--num_samples', '0'])
    assert exit_info.value.code == 2
    assert 'must be at least 1' in capsys.readouterr().err


def test_attribution_flags_are_off_by_default_and_parsed():
    args = parser_with_all_flags().parse_args([])
    assert (args.attribution, args.ig_steps, args.occlusion_window, args.occlusion_stride) == (None, 32, None, None)
    assert (args.erf, args.erf_images, args.states) == (False, 0, None)
    args = parser_with_all_flags().parse_args(['--attribution', 'occlusion', '--occlusion_window', '4',
                                               '--occlusion_stride', '2', '--erf', '--erf_images', 'all',
                                               '--ig_steps', '8', '--states', 'a.npz', 'b.npz'])
    assert (args.attribution, args.ig_steps, args.occlusion_window, args.occlusion_stride) == ('occlusion', 8, 4, 2)
    assert (args.erf, args.erf_images, args.states) == (True, 0, ['a.npz', 'b.npz'])


@pytest.mark.parametrize('script', [vgg16_activations, onnx_activations], ids=['vgg16', 'onnx'])
@pytest.mark.parametrize('flags, message', [
    (['--attribution', 'bogus'], "argument --attribution: invalid choice: 'bogus' (choose from 'occlusion', "
                                 "'gradients', 'integrated_gradients')"),
    (['--ig_steps', '0'], 'argument --ig_steps: must be at least 1, got 0'),
    (['--occlusion_window', '0'], 'argument --occlusion_window: must be at least 1, got 0'),
    (['--occlusion_stride', '-2'], 'argument --occlusion_stride: must be at least 1, got -2'),
    (['--erf_images', 'some'], 'argument --erf_images: must be a count (0 or more) or "all", got some'),
])
def test_bad_attribution_flags_are_refused_by_the_scripts_parser_with_its_usage(script, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(flags)
    assert_usage_error(exit_info.value.code, capsys.readouterr().err, message)


def test_bottom_k_is_off_by_default_and_a_negative_one_is_refused_by_the_scripts_parser(capsys):
    assert parser_with_all_flags().parse_args([]).bottom_k == 0
    assert vgg16_activations.parse_args(['--bottom_k', '3']).bottom_k == 3
    with pytest.raises(SystemExit) as exit_info:
        vgg16_activations.parse_args(['--bottom_k', '-1'])
    assert_usage_error(exit_info.value.code, capsys.readouterr().err, 'argument --bottom_k: must be 0 or more, got -1')


@pytest.mark.parametrize('error', [ValueError('bad layer'), FileNotFoundError('no weights'),
                                   PermissionError('read-only')])
def test_bad_input_is_one_line_and_exit_code_2(error, capsys):
    def main(argv):
        raise error
    assert cli.run_main(main, []) == 2
    assert capsys.readouterr().err == f'error: {error}\n'


def test_run_main_returns_mains_value_and_lets_bugs_through():
    assert cli.run_main(lambda argv: 0, []) == 0 and cli.run_main(lambda argv: 3, []) == 3
    assert cli.run_main(lambda argv: None, []) == 0  # a main that just ends succeeded
    with pytest.raises(KeyError):
        cli.run_main(lambda argv: {}['bug'], [])


def test_ctrl_c_is_one_line_and_exit_status_130(capsys):
    def interrupted(argv):
        raise KeyboardInterrupt

    assert cli.run_main(interrupted, []) == 130
    assert capsys.readouterr().err == 'interrupted\n'


@pytest.mark.parametrize('script', ['vgg16_recfield.py', 'keras_recfield.py'])
def test_ctrl_c_while_a_script_starts_is_one_line_and_exit_status_130(script):
    # Importing TensorFlow takes seconds: Ctrl-C then once gave a KeyboardInterrupt traceback and exit status -2.
    process = subprocess.Popen([sys.executable, script, '--help'], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    if process.returncode == 0:  # it had printed its help and ended before the signal: nothing to check
        pytest.skip(f'{script} started in under a second')
    assert process.returncode == 130 and err.endswith('interrupted\n') and 'Traceback' not in err, err


def test_importing_the_ctrl_c_module_outside_a_script_changes_nothing():
    from utils.base import ctrl_c

    assert signal.getsignal(signal.SIGINT) is not ctrl_c._end_quietly
    ctrl_c.restore()  # nothing to give back
    assert signal.getsignal(signal.SIGINT) is not ctrl_c._end_quietly


def test_quiet_leaves_results_and_errors_only(monkeypatch):
    monkeypatch.setattr(logging.getLogger(), 'level', logging.WARNING)
    parser = argparse.ArgumentParser()
    cli.add_logging_arguments(parser)
    cli.parse_args(parser, ['--quiet'])
    assert logging.getLogger().level == logging.ERROR and not progress.enabled
    assert isinstance(progress.progress_bar('x ', 3), progressbar.NullBar)
    cli.parse_args(parser, [])
    assert progress.enabled and not isinstance(progress.progress_bar('x ', 3), progressbar.NullBar)


def test_a_layer_named_twice_is_kept_once_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger='utils.base.layer_names'):
        assert names_from_flags(['conv1,conv2', 'conv1', 'conv2,conv3']) == ['conv1', 'conv2', 'conv3']
    assert '--layers names conv1 (and 1 more) more than once; each layer is drawn once.' in caplog.text


@pytest.mark.parametrize('flags, shown', [([], True), (['--quiet'], False), (['--logging_level', 'ERROR'], False)])
def test_opencvs_own_warnings_follow_the_logging_level(flags, shown):
    code = ('import argparse, sys; sys.path.insert(0, sys.argv[1]); import cv2; from utils.running import cli; '
            'parser = argparse.ArgumentParser(); cli.add_logging_arguments(parser); '
            'cli.parse_args(parser, sys.argv[2:]); '
            'cv2.imread("/no/such/picture.png")')  # OpenCV writes a [ WARN:...] line about the missing file
    result = subprocess.run([sys.executable, '-c', code, REPO, *flags], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert ("can't open/read file" in result.stderr) == shown, result.stderr
