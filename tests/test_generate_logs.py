"""utils/generate_logs.py: a model's graph in a TensorBoard event file, read back with TensorBoard's reader.

Models: the frozen graph and the checkpoint folder of `model_fixtures` (ops `input`, `scale`, `output`), and
the CIFAR-10 training folder of `cifar10_fixtures` (two checkpoints, each with its `.meta`). The script runs
once as a subprocess from the repository root; other cases run `main` in this process, which is faster.
"""

import glob
import os

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import run_script, tf1
from cifar10_fixtures import CIFAR10_OPS
from utils import generate_logs
from utils.running.cli import run_main

REMINDER = 'operation "my/op" outputs the tensor "my/op:0"'
TRAINING_OPS = {'labels', 'total_loss', 'global_step'}


def read_graph(logdir):
    """The op names of the graph in `logdir`'s one event file, read with TensorBoard's event reader."""
    assert len(glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))) == 1
    accumulator = EventAccumulator(str(logdir))
    accumulator.Reload()
    assert accumulator.Tags()['graph']
    return {node.name for node in accumulator.Graph().node}


def generate(capsys, *args):
    """Runs generate_logs.main in this process; returns `(status, stdout, stderr)`."""
    status = run_main(generate_logs.main, [str(arg) for arg in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.slow
def test_frozen_graph_as_a_script(saved_models, tmp_path):
    logdir = tmp_path / 'logs'
    result = run_script('utils/generate_logs.py', '--model', saved_models / 'frozen.pb', '--logdir', logdir,
                        timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f'tensorboard --logdir {logdir}\n' in result.stdout
    assert REMINDER in result.stdout
    frozen = tf1.GraphDef.FromString((saved_models / 'frozen.pb').read_bytes())
    assert read_graph(logdir) == {node.name for node in frozen.node}
    assert {'input', 'output'} < read_graph(logdir)


def test_checkpoint_folder(saved_models, tmp_path, capsys):
    status, out, _ = generate(capsys, '--model', saved_models / 'checkpoints', '--logdir', tmp_path)
    assert status == 0 and f'tensorboard --logdir {tmp_path}' in out
    assert {'input', 'scale', 'output', 'save/restore_all'} <= read_graph(tmp_path)  # the .meta graph, as saved


def test_cifar10_training_folder_gives_the_network_the_scripts_build(cifar10_train_dir, tmp_path, capsys):
    status, out, _ = generate(capsys, '--model', cifar10_train_dir, '--logdir', tmp_path)
    assert status == 0 and REMINDER in out
    names = read_graph(tmp_path)
    assert CIFAR10_OPS <= names and not TRAINING_OPS & names


def test_logdir_with_a_space_is_quoted_in_the_command(saved_models, tmp_path, capsys):
    logdir = tmp_path / 'my logs'
    status, out, _ = generate(capsys, '--model', saved_models / 'frozen.pb', '--logdir', logdir)
    assert status == 0 and f"tensorboard --logdir '{logdir}'" in out


@pytest.mark.parametrize('model, message', [
    ('missing', 'no model at'),
    ('not-a-graph.pb', 'is not a frozen graph'),
    ('empty-folder', 'must hold exactly one .meta file'),
])
def test_bad_model_gives_the_model_loading_error(tmp_path, capsys, model, message):
    (tmp_path / 'not-a-graph.pb').write_text('hello')
    (tmp_path / 'empty-folder').mkdir()
    status, out, err = generate(capsys, '--model', tmp_path / model, '--logdir', tmp_path / 'logs')
    assert status == 2 and out == ''
    assert err.startswith('error: ') and message in err and err.count('\n') == 1
    assert not (tmp_path / 'logs').exists()


def test_logdir_that_is_a_file(saved_models, tmp_path, capsys):
    (tmp_path / 'a-file').write_text('')
    status, _, err = generate(capsys, '--model', saved_models / 'frozen.pb', '--logdir', tmp_path / 'a-file')
    assert status == 2 and 'is a file; give a folder with --logdir' in err


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        generate_logs.main(['--help'])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert '--model' in out and '--logdir' in out and 'TensorBoard' in out


def test_a_frozen_graph_is_written_as_saved_with_its_weights_as_constants(small_facenet_path):
    # Running a model feeds a frozen graph's weights to variables (utils.models.tf_load); its picture does not.
    graph = generate_logs.load_graph(small_facenet_path)
    assert graph.get_operation_by_name('InceptionResnetV1/Conv2d_2b_3x3/weights').type == 'Const'
    assert not [op.name for op in graph.get_operations() if op.name.startswith('fed_weights/')]
