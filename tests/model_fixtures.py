"""Small saved TensorFlow models for the loading and TensorBoard tests: a checkpoint folder and a frozen graph."""

import numpy as np
import pytest
import tensorflow as tf

tf1 = tf.compat.v1

INPUT = np.arange(6, dtype=np.float32).reshape(1, 6)


def build_scaler():
    """input [None, 6] -> output = input * scale, with `scale` a variable."""
    images = tf1.placeholder(tf.float32, [None, 6], name='input')
    scale = tf1.get_variable('scale', initializer=np.float32(1.0))
    tf.multiply(images, scale, name='output')
    return scale


@pytest.fixture(scope='session')
def saved_models(tmp_path_factory):
    """A checkpoint folder with steps 10 (scale 2) and 20 (scale 3), and a frozen graph (scale 5)."""
    folder = tmp_path_factory.mktemp('models')
    graph = tf.Graph()
    with graph.as_default():
        scale = build_scaler()
        saver = tf1.train.Saver()
        with tf1.Session(graph=graph) as session:
            session.run(tf1.global_variables_initializer())
            checkpoints = folder / 'checkpoints'
            checkpoints.mkdir()
            for step, value in ((10, 2.0), (20, 3.0)):
                session.run(scale.assign(value))
                saver.save(session, str(checkpoints / 'model.ckpt'), global_step=step,
                           write_meta_graph=step == 10)
            session.run(scale.assign(5.0))
            frozen = tf1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), ['output'])
    (folder / 'frozen.pb').write_bytes(frozen.SerializeToString())
    return folder
