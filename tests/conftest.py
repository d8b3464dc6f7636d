"""Shared test setup: the project root on the import path, TensorFlow quiet and in TF1-compat graph mode."""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

tf1 = tf.compat.v1

# Session fixtures shared by several test modules, registered once (an import in each module would run them
# once per module).
pytest_plugins = ['shard_fixtures']


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


class LoopbackServer:
    """A real HTTP server on 127.0.0.1 (a free port) in a thread; tests add routes as they need them.

    `routes[path]` is a function taking the `BaseHTTPRequestHandler`; it writes the whole response.
    """

    def __init__(self):
        import http.server
        import threading

        routes = self.routes = {}
        self.requests = []  # (path, headers) of every request, in order

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def do_GET(self):  # noqa: N802 (the name http.server calls)
                path = self.path.split('?')[0]
                server.requests.append((self.path, dict(self.headers)))
                if path in routes:
                    routes[path](self)
                else:
                    self.send_error(404)

            def log_message(self, *args):  # keep test output clean
                pass

        server = self
        self._httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f'http://127.0.0.1:{self._httpd.server_address[1]}'
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


def send_bytes(handler, body, content_type='application/octet-stream', status=200, headers=()):
    """Writes a complete HTTP response."""
    handler.send_response(status)
    handler.send_header('Content-Type', content_type)
    handler.send_header('Content-Length', str(len(body)))
    for name, value in headers:
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def http_server():
    server = LoopbackServer()
    yield server
    server.close()


def write_mixed_images_dir(folder):
    """Fills `folder` with 3 readable images (one in a subfolder, one grey) and 2 files that are not images.

    Returns:
        `(image_paths, other_paths)`, each sorted.
    """
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(folder, 'nested'), exist_ok=True)
    images = {'wide.png': (40, 70, 3), os.path.join('nested', 'tall.jpg'): (90, 45, 3), 'grey.png': (50, 50)}
    for name, shape in images.items():
        cv2.imwrite(os.path.join(folder, name), rng.integers(0, 256, shape, dtype=np.uint8))
    with open(os.path.join(folder, 'corrupt.jpg'), 'wb') as stream:  # a JPEG header, then noise
        stream.write(b'\xff\xd8\xff\xe0' + bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
    with open(os.path.join(folder, 'notes.txt'), 'w') as stream:
        stream.write('not an image')
    image_paths = sorted(os.path.join(folder, name) for name in images)
    other_paths = sorted(os.path.join(folder, name) for name in ('corrupt.jpg', 'notes.txt'))
    return image_paths, other_paths
