"""Shared test setup: the project root on the import path, TensorFlow quiet and in TF1-compat graph mode."""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

tf1 = tf.compat.v1


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def build_session(build_graph):
    """Builds a graph with `build_graph()` (which returns its outputs) and returns `(session, outputs)`."""
    graph = tf.Graph()
    with graph.as_default():
        outputs = build_graph()
        session = tf1.Session(graph=graph)
        session.run(tf1.global_variables_initializer())
    return session, outputs
