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


class FakeRecfield:
    """Stands in for recfield.ReceptiveField in picture tests: `.recfield` boxes and `.max()`.

    Feature pixel (y, x) sees the box from image pixel (2y - before[0], 2x - before[1]) to
    (2y + after[0], 2x + after[1]) (end-exclusive), clipped to an `image_size` square.
    """

    def __init__(self, feat_h, feat_w, image_size, before=(2, 2), after=(3, 3)):
        ys, xs = np.mgrid[0:feat_h, 0:feat_w]
        self.recfield = np.stack([np.clip(2 * ys - before[0], 0, image_size),
                                  np.clip(2 * xs - before[1], 0, image_size),
                                  np.clip(2 * ys + after[0], 0, image_size),
                                  np.clip(2 * xs + after[1], 0, image_size)], axis=-1).astype(np.int64)

    def max(self):
        heights = self.recfield[..., 2] - self.recfield[..., 0]
        widths = self.recfield[..., 3] - self.recfield[..., 1]
        return int(heights.max()), int(widths.max())
