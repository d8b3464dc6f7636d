"""utils.models.tf_load: frozen graphs (their weights fed to variables where a session is given) and checkpoint folders
into the default graph, and clear errors for the rest."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from conftest import tf1
from model_fixtures import INPUT
from utils.core.model import Model
from utils.models.tf_load import FED_CONSTANT_SIZE, checkpoint_files, latest_checkpoint, load_model


def run_output(path):
    """Loads `path` into a fresh graph and runs `output:0` on INPUT."""
    graph = tf.Graph()
    with graph.as_default(), tf1.Session(graph=graph) as session:
        load_model(str(path), session)
        return session.run('output:0', {'input:0': INPUT})


def test_frozen_graph(saved_models):
    np.testing.assert_array_equal(run_output(saved_models / 'frozen.pb'), INPUT * 5)


def test_checkpoint_folder_restores_the_latest_step(saved_models):
    np.testing.assert_array_equal(run_output(saved_models / 'checkpoints'), INPUT * 3)


def test_default_session_receives_the_checkpoint(saved_models):
    graph = tf.Graph()
    with graph.as_default(), tf1.Session(graph=graph) as session, session.as_default():
        load_model(str(saved_models / 'checkpoints'))
        np.testing.assert_array_equal(session.run('output:0', {'input:0': INPUT}), INPUT * 3)


def test_highest_step_without_a_checkpoint_state_file(saved_models, tmp_path):
    folder = tmp_path / 'copy'
    shutil.copytree(saved_models / 'checkpoints', folder)
    (folder / 'checkpoint').unlink()
    assert latest_checkpoint(str(folder)) == str(folder / 'model.ckpt-20')
    np.testing.assert_array_equal(run_output(folder), INPUT * 3)


def test_checkpoint_files_are_the_index_and_data_of_one_step(saved_models):
    folder = saved_models / 'checkpoints'
    files = checkpoint_files(str(folder / 'model.ckpt-20'))
    assert files[0] == str(folder / 'model.ckpt-20.index') and len(files) >= 2
    assert all(os.path.basename(path).startswith('model.ckpt-20.data-') for path in files[1:])
    assert files[1:] == sorted(files[1:]) and all(os.path.isfile(path) for path in files)


def test_missing_path():
    with pytest.raises(FileNotFoundError, match='no model at'):
        run_output('/nonexistent/model.pb')


UNKNOWN_OP = tf1.GraphDef(node=[tf1.NodeDef(name='custom', op='OpOfANewerTensorFlow')]).SerializeToString()


@pytest.mark.parametrize('content', [b'', b'\xff\xfe not a protocol buffer \x00\x01',
                                     b'node {\n  name: "input"\n  op: "Placeholder"\n}\n', UNKNOWN_OP],
                         ids=['empty', 'binary', 'text', 'unknown-op'])
def test_file_that_is_not_a_graph_def(tmp_path, content):
    path = tmp_path / 'model.pb'
    path.write_bytes(content)
    with pytest.raises(ValueError, match='not a frozen graph|not a graph'):
        run_output(path)


def test_folder_with_zero_or_several_meta_files(saved_models, tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ValueError, match='exactly one .meta file.*holds none'):
        run_output(empty)
    several = tmp_path / 'several'
    shutil.copytree(saved_models / 'checkpoints', several)
    shutil.copy(several / 'model.ckpt-10.meta', several / 'other.meta')
    with pytest.raises(ValueError, match=r'holds 2 \(model.ckpt-10.meta, other.meta\)'):
        run_output(several)


def test_meta_graph_without_checkpoint(saved_models, tmp_path):
    folder = tmp_path / 'meta_only'
    folder.mkdir()
    shutil.copy(saved_models / 'checkpoints' / 'model.ckpt-10.meta', folder)
    with pytest.raises(ValueError, match='no checkpoint'):
        run_output(folder)


def test_checkpoint_without_session(saved_models):
    with tf.Graph().as_default(), pytest.raises(ValueError, match='needs a session'):
        load_model(str(saved_models / 'checkpoints'))
    assert os.path.isdir(saved_models / 'checkpoints')


def write_frozen_conv(path, kernel):
    """A frozen graph `images [None, 8, 8, 3]` -> conv with `kernel` -> + bias (64 values, a small constant)
    -> ReLU, named `output`; a scale constant as large as the kernel waits on `output` as a control input."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf1.placeholder(tf.float32, [None, 8, 8, 3], name='images')
        convolved = tf.nn.conv2d(images, tf.constant(kernel, name='kernel'), 1, 'SAME')
        output = tf.nn.relu(convolved + tf.constant(np.linspace(-1, 1, 64, dtype=np.float32), name='bias'),
                            name='output')
        with tf.control_dependencies([tf.constant(np.ones(kernel.size, np.float32), name='guard')]):
            tf.identity(output, name='guarded')
    path.write_bytes(graph.as_graph_def().SerializeToString())


def load_in_session(path, feed_weights):
    """`(graph, session)` after loading `path` into a new graph and session."""
    graph = tf.Graph()
    with graph.as_default():
        session = tf1.Session(graph=graph)
        load_model(str(path), session, feed_weights=feed_weights)
    return graph, session


def test_a_frozen_graph_loaded_in_a_session_feeds_its_weights_to_variables(tmp_path, rng):
    kernel = rng.normal(size=(3, 3, 3, 64)).astype(np.float32)
    assert kernel.size >= FED_CONSTANT_SIZE > 64
    write_frozen_conv(tmp_path / 'conv.pb', kernel)
    batch = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    outputs = {}
    for fed in (False, True):
        graph, session = load_in_session(tmp_path / 'conv.pb', feed_weights=fed)
        with session:
            outputs[fed] = session.run(['output:0', 'guarded:0'], {'images:0': batch})
        graph_def = graph.as_graph_def().SerializeToString()
        types = {op.name: op.type for op in graph.get_operations()}
        assert types['kernel'] == ('VarHandleOp' if fed else 'Const')
        assert (kernel.tobytes() in graph_def) != fed
        # Small constants, and a constant used as a control input only, stay constants.
        assert types['bias'] == types['guard'] == 'Const'
        assert ('fed_weights/sha256' in types) == fed
    assert outputs[True][0].any()
    for fed, constant in zip(outputs[True], outputs[False]):
        np.testing.assert_array_equal(fed, constant)


def test_the_fingerprint_of_a_frozen_graph_with_fed_weights_still_tells_weights_apart(tmp_path, rng):
    kernel = rng.normal(size=(3, 3, 3, 64)).astype(np.float32)
    changed = kernel.copy()
    changed[0, 0, 0, 0] += 1.0
    fingerprints = []
    for number, weights in enumerate((kernel, kernel, changed)):
        path = tmp_path / f'conv{number}.pb'
        write_frozen_conv(path, weights)
        graph, session = load_in_session(path, feed_weights=True)
        with session:
            output = graph.get_tensor_by_name('output:0')
            fingerprints.append(Model(lambda batch: [batch], [output], [2, 8, 8, 3], (-1.0, 1.0)).fingerprint())
    assert fingerprints[0] == fingerprints[1] != fingerprints[2]
