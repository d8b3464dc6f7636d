"""Shared test setup: the project root on the import path, TensorFlow quiet and in TF1-compat graph mode."""

import contextlib
import io
import json
import os
import re
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# The receptive-field cache of every script the tests run, in-process or as a subprocess, lands in a folder of
# this test session, never in the user's ~/.cache.
os.environ['XDG_CACHE_HOME'] = tempfile.mkdtemp(prefix='strongest-conv-activations-tests-')
sys.path.insert(0, REPO)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import utils  # noqa: E402,F401,I100 (its TensorFlow settings, before TensorFlow is imported)
import tensorflow as tf  # noqa: E402,I100

from recfield import ReceptiveField  # noqa: E402
from utils.base.layer_names import file_stem  # noqa: E402
from utils.core.pipeline import shard_bounds  # noqa: E402
from utils.pictures.drawing import describe_layer  # noqa: E402

tf1 = tf.compat.v1

# Fixtures shared by several test modules, registered once (an import in each module would run session
# fixtures once per module). Test modules never import each other: what they share lives here or there.
pytest_plugins = ['attribution_fixtures', 'cifar10_fixtures', 'facenet_fixtures', 'keras_fixtures', 'model_fixtures',
                  'onnx_fixtures', 'shard_fixtures']


def run_script(script, *args, timeout=300):
    """Runs a script of the repository as a user would (`python <script> <args>` from the repository root).

    Returns:
        the `subprocess.CompletedProcess`, with text stdout and stderr.
    """
    return subprocess.run([sys.executable, script, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


RECFIELD_SUMMARY = re.compile(r'^receptive fields: (\d+) layers?, (\d+) probe images, [\d.]+ s$', re.MULTILINE)


def layer_lines(stdout):
    """The `describe_layer` lines of a run's output, one per layer, without the summary lines of the receptive
    fields and the scan (which hold timings, and which a merge does not print)."""
    return [line for line in stdout.splitlines() if ' feature map is of shape ' in line]


def drawing_lines(stdout):
    """What drawing a run prints, as a merge of its shards prints it: the `layer_lines`, then a line for every layer
    with channels that never fire (`utils.pictures.drawing.draw_layers`)."""
    return layer_lines(stdout) + [line for line in stdout.splitlines() if ' channels never fire on ' in line]


def assert_one_line_error(result, message):
    """A subprocess failed as bad input must: exit status 2, its last stderr line (the only `error:` one) says
    `message`, no traceback. TensorFlow's own start-up lines may stand before it."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert [line for line in lines if line.startswith('error: ')] == lines[-1:], result.stderr[-3000:]
    assert message in lines[-1] and 'Traceback' not in result.stderr


def assert_usage_error(status, stderr, message):
    """A script refused its flags as argparse does: exit status 2, its usage first, then one `<prog>: error: ...`
    line, the last, that says `message`; no traceback. `status` and `stderr` of a subprocess, or of a `SystemExit`
    and capsys."""
    lines = stderr.splitlines()
    assert status == 2, stderr[-3000:]
    assert lines and lines[0].startswith('usage: '), stderr[-3000:]
    assert [line for line in lines if ': error: ' in line] == lines[-1:], stderr[-3000:]
    assert message in lines[-1] and 'Traceback' not in stderr, stderr[-3000:]


EXPLANATION_FILES = ('attributions.npz', 'erf.npz')
ERF_LINE = re.compile(r'^(\S+) effective receptive field: 50 % of its weight in (\d+)x(\d+), 90 % in (\d+)x(\d+) '
                      r'of the exact (\d+)x(\d+) \(feature pixel \((\d+), (\d+)\), (\d+) images, (\w+)\)$',
                      re.MULTILINE)


def read_document(out_dir):
    """The `activations.json` of a run's folder."""
    with open(os.path.join(out_dir, 'activations.json'), encoding='utf-8') as stream:
        return json.load(stream)


def erf_lines(stdout):
    """`{layer: (mass_50, mass_90, exact_size, feature_yx, images, method)}` of the `--erf` lines of a run's output,
    in the order printed; the sides and positions as `[a, b]` lists, as activations.json has them."""
    lines = {}
    for match in ERF_LINE.finditer(stdout):
        numbers = [int(value) for value in match.groups()[1:10]]
        lines[match[1]] = (numbers[0:2], numbers[2:4], numbers[4:6], numbers[6:8], numbers[8], match[11])
    return lines


def assert_explained_run(out_dir, stdout, method, settings, erf_method, erf_images):
    """A run with `--attribution <method> --erf --erf_images <n>` wrote, besides its pictures and gallery, what these
    flags ask for, and every record of it agrees with the others.

    - `attributions.npz`: exactly one float32 array per kept entry of every drawn channel, keyed
      `<layer>/<channel>/<rank>` (the entry's `attribution` in activations.json; entries of channels not drawn have
      none), of the entry's box height x width, not all zero.
    - `erf.npz`: per layer, an image-sized float64 map of non-negative weights summing to 1, zero outside the box of
      its feature pixel, and that pixel under `<layer>/feature_yx`; nothing else.
    - activations.json: the top-level `attribution` (`method`, `file`, `reference` and `settings`) and
      `effective_receptive_field` records; per layer `pictures.attr` and `effective_receptive_field`, whose picture
      exists and whose sizes agree with the exact field.
    - `<stem>-attr.jpg` of the size of `<stem>-crop.jpg`; the page's checkbox and an ERF line per layer.
    - the printed ERF line of every layer, in layer order, with the numbers of activations.json.

    Args:
        out_dir: the run's folder (a `pathlib.Path`).
        stdout: what it printed.
        method: its `--attribution`; settings: the method's own entries of the `attribution` record
            (`{'ig_steps': 8}`, ...).
        erf_method: 'gradients' or 'occlusion'; erf_images: how many images the effective fields average.

    Returns:
        the activations.json document.
    """
    document = read_document(out_dir)
    assert {key: value for key, value in document['attribution'].items() if key != 'reference'} == {
        'method': method, 'file': 'attributions.npz', **settings}
    assert isinstance(document['attribution']['reference'], float)
    assert document['effective_receptive_field'] == {'method': erf_method, 'file': 'erf.npz'}
    with np.load(out_dir / 'attributions.npz') as stored:
        attributions = {key: stored[key] for key in stored.files}
    with np.load(out_dir / 'erf.npz') as stored:
        erfs = {key: stored[key] for key in stored.files}
    expected_keys = set()
    for layer in document['layers']:
        name, stem = layer['name'], file_stem(layer['name'])
        for channel, ranked in enumerate(layer['channels']):
            for rank, record in enumerate(ranked):
                if channel not in layer['drawn_channels']:
                    assert 'attribution' not in record, (name, channel, rank)
                    continue
                key = f'{name}/{channel}/{rank}'
                assert record['attribution'] == key
                expected_keys.add(key)
                y1, x1, y2, x2 = record['box']
                assert attributions[key].dtype == np.float32 and attributions[key].shape == (y2 - y1, x2 - x1), key
                assert np.isfinite(attributions[key]).all(), key
        if layer['pictures'] is not None:
            assert layer['pictures'] == {'full': f'{stem}-full.jpg', 'crop': f'{stem}-crop.jpg',
                                         'attr': f'{stem}-attr.jpg'}
            attr, crop = (cv2.imread(str(out_dir / layer['pictures'][kind])) for kind in ('attr', 'crop'))
            assert attr is not None and attr.shape == crop.shape, name
        field = layer['effective_receptive_field']
        assert sorted(field) == ['box', 'exact_size', 'feature_yx', 'images', 'mass_50', 'mass_90', 'method',
                                 'picture']
        assert field['feature_yx'] == [layer['feature_map'][0] // 2, layer['feature_map'][1] // 2]
        assert field['images'] == erf_images and field['method'] == erf_method
        assert field['picture'] == f'erf-{stem}.png' and cv2.imread(str(out_dir / field['picture'])) is not None
        y1, x1, y2, x2 = field['box']
        exact = [y2 - y1, x2 - x1] if layer['receptive_field'] is None else layer['receptive_field']['size']
        assert field['exact_size'] == exact, name
        assert all(1 <= half <= most <= side for half, most, side in zip(field['mass_50'], field['mass_90'],
                                                                           field['exact_size'])), (name, field)
        erf = erfs[name]
        assert erf.dtype == np.float64 and list(erf.shape) == layer['image_size'] and (erf >= 0).all(), name
        assert erf.sum() == pytest.approx(1) and erf[y1:y2, x1:x2].sum() == pytest.approx(1), name
        assert erfs[f'{name}/feature_yx'].tolist() == field['feature_yx'], name
    assert set(attributions) == expected_keys and any(values.any() for values in attributions.values())
    assert set(erfs) == {key for layer in document['layers'] for key in (layer['name'], f'{layer["name"]}/feature_yx')}
    fields = {layer['name']: layer['effective_receptive_field'] for layer in document['layers']}
    assert erf_lines(stdout) == {name: (field['mass_50'], field['mass_90'], field['exact_size'], field['feature_yx'],
                                        field['images'], field['method']) for name, field in fields.items()}
    assert [match[1] for match in ERF_LINE.finditer(stdout)] == list(fields)  # one line per layer, in layer order
    page = (out_dir / 'index.html').read_text(encoding='utf-8')
    assert page.count('id="show-attributions"') == 1 and page.count('<p class="erf">') == len(fields)
    return document


def assert_not_explained(out_dir, stdout=''):
    """A run without `--attribution` and `--erf` wrote none of their files, records or page parts, and printed no
    effective receptive field."""
    names = os.listdir(out_dir)
    assert not [name for name in names if name in EXPLANATION_FILES or name.endswith('-attr.jpg')
                or (name.startswith('erf-') and name.endswith('.png'))], names
    document = read_document(out_dir)
    assert 'attribution' not in document and 'effective_receptive_field' not in document
    for layer in document['layers']:
        assert 'effective_receptive_field' not in layer
        assert layer['pictures'] is None or sorted(layer['pictures']) == ['crop', 'full']
        assert not [record for ranked in layer['channels'] for record in ranked if 'attribution' in record]
    page = (out_dir / 'index.html').read_text(encoding='utf-8')
    assert 'id="show-attributions"' not in page and 'class="erf"' not in page
    assert not erf_lines(stdout)


def assert_recfield_run(run, fields, channels, layers, image_size):
    """A receptive-field script's run `(out_dir, CompletedProcess)` succeeded, printed the closed-form line of every
    layer and drew each centre pixel's closed-form box.

    Args:
        fields: `{layer: recfield.ReceptiveField}` of the closed form; channels: `{layer: channel count}`.
        layers: the layers of the run, in order; image_size: `(height, width)` of its probes.
    """
    out_dir, result = run
    assert result.returncode == 0, result.stderr[-3000:]
    assert layer_lines(result.stdout) == [describe_layer(layer, fields[layer], channels[layer]) for layer in layers]
    assert sorted(os.listdir(out_dir)) == sorted(f'recfield-{layer}.png' for layer in layers)
    for layer in layers:
        drawn = cv2.imread(str(out_dir / f'recfield-{layer}.png'), cv2.IMREAD_GRAYSCALE)
        assert drawn.shape == image_size
        np.testing.assert_array_equal(drawn, fields[layer].draw_example(), err_msg=layer)


def probe_image_counts(stdout):
    """`[(layers, probe images)]` of every `receptive fields: <n> layers, <p> probe images, <t> s` line."""
    return [(int(layers), int(probes)) for layers, probes in RECFIELD_SUMMARY.findall(stdout)]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def read_batches(dataset, start=0, stop=None):
    """`dataset.read(start, stop)` (by default all of it) as a list of `(inputs, display_images, indices)`."""
    return list(dataset.read(start, len(dataset) if stop is None else stop))


def assert_shards_read_like_the_whole(dataset, num_shards):
    """The shards of a `utils.core.pipeline.Dataset`, read one after another, give the batches of one whole read.

    Also checks what every `read` must keep: each image in the batch of `index // batch_size`, inputs as
    float32 and display images as uint8, one of each per index.

    Returns:
        the whole read (`read_batches`).
    """
    whole = read_batches(dataset)
    sharded = [batch for shard_index in range(num_shards) for batch in
               read_batches(dataset, *shard_bounds(len(dataset), dataset.batch_size, num_shards, shard_index))]
    assert len(sharded) == len(whole)
    for got, expected in zip(sharded, whole):
        for got_part, expected_part in zip(got, expected):
            np.testing.assert_array_equal(got_part, expected_part)
    for inputs, display_images, indices in whole:
        assert inputs.dtype == np.float32 and display_images.dtype == np.uint8
        assert len(inputs) == len(display_images) == len(indices) > 0
        assert len(set(indices // dataset.batch_size)) == 1, indices  # one batch per batch_size images
    all_indices = np.concatenate([indices for _, _, indices in whole])
    assert (np.diff(all_indices) > 0).all() and 0 <= all_indices[0] and all_indices[-1] < len(dataset)
    return whole


def build_session(build_graph):
    """Builds a graph with `build_graph()` (which returns its outputs) and returns `(session, outputs)`."""
    graph = tf.Graph()
    with graph.as_default():
        outputs = build_graph()
        session = tf1.Session(graph=graph)
        session.run(tf1.global_variables_initializer())
    return session, outputs


def grid_field(feat_h, feat_w, image_size, before=(2, 2), after=(3, 3)):
    """A `recfield.ReceptiveField` with chosen boxes, for tests that need a field but no network.

    Feature pixel (y, x) sees the box from image pixel (2y - before[0], 2x - before[1]) to
    (2y + after[0], 2x + after[1]) (end-exclusive), clipped to an `image_size` square.
    """
    ys, xs = np.mgrid[0:feat_h, 0:feat_w]
    boxes = np.stack([2 * ys - before[0], 2 * xs - before[1], 2 * ys + after[0], 2 * xs + after[1]], axis=-1)
    return ReceptiveField.from_arrays(np.clip(boxes, 0, image_size).astype(np.int64), (image_size, image_size))


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
        # A short poll interval: shutdown() waits for the next poll (0.5 s by default) after every test.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={'poll_interval': 0.02},
                                        daemon=True)
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


def write_png_claiming(path, height, width):
    """Writes a small PNG whose header says `height x width` RGB pixels (its data holds a few rows only): the
    first bytes of a decompression bomb, which a reader must refuse from the header."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    rows = zlib.compress(bytes(4 * (1 + 3 * width)))
    with open(path, 'wb') as stream:
        stream.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
                     + chunk(b'IDAT', rows) + chunk(b'IEND', b''))


def write_sparse_file(path, size):
    """A file of `size` bytes that takes no disk space (all zeros: not an image), to catch code that reads a
    file whole."""
    with open(path, 'wb') as stream:
        stream.truncate(size)


@pytest.fixture
def decoded_paths(monkeypatch):
    """The paths `utils.data.images.read_image` decodes while the test runs, in the order it starts them (a list)."""
    from utils.data import images

    decoded, real_read_image = [], images.read_image

    def read_image(path, *args, **kwargs):
        decoded.append(path)
        return real_read_image(path, *args, **kwargs)

    monkeypatch.setattr(images, 'read_image', read_image)
    return decoded


@contextlib.contextmanager
def folder_locked_by_another_process(folder):
    """A process that takes `folder` for a run (`utils.base.files.lock_folder`) and holds it until the block ends."""
    code = ('import sys; sys.path.insert(0, sys.argv[2]); from utils.base import files; '
            'files.lock_folder(sys.argv[1]); print("locked", flush=True); sys.stdin.read()')
    holder = subprocess.Popen([sys.executable, '-c', code, str(folder), REPO], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == 'locked\n'
        yield holder
    finally:
        holder.communicate('')  # ends it: the lock goes with the process


def make_tar(members, mode='w:gz'):
    """A tar archive in memory; `members` maps member names to bytes (or to None for a symlink to /etc)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, '/etc/passwd'
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_zip(members):
    """A zip archive in memory; `members` maps member names to bytes (stored uncompressed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def write_npz_with_a_lying_header(path, arrays, liar, shape=(10 ** 9, 10 ** 4), dtype=np.float32, payload=16):
    """Writes `arrays` to an `.npz` file at `path` as `np.savez` does, except array `liar`: its `.npy` header
    declares `shape` and `dtype` (40 TB by default) over `payload` zero bytes. Returns `path`."""
    header = {'descr': np.lib.format.dtype_to_descr(np.dtype(dtype)), 'fortran_order': False, 'shape': shape}
    with zipfile.ZipFile(path, 'w') as archive:
        for name, array in arrays.items():
            with archive.open(f'{name}.npy', 'w') as stream:
                if name == liar:
                    np.lib.format.write_array_header_1_0(stream, header)
                    stream.write(bytes(payload))
                else:
                    np.lib.format.write_array(stream, np.asanyarray(array), allow_pickle=False)
    return path


def set_zip_directory_field(path, offset, value, width=2):
    """Overwrites a field of the first central-directory record of the zip file at `path`: `width` bytes,
    little-endian, at `offset` from the record's start (e.g. 8: flags, 10: compression, 24: size)."""
    with open(path, 'rb') as stream:
        whole = bytearray(stream.read())
    record = whole.index(b'PK\x01\x02')
    whole[record + offset:record + offset + width] = value.to_bytes(width, 'little')
    with open(path, 'wb') as stream:
        stream.write(whole)


def arrays_read(monkeypatch):
    """A list that every `numpy.lib.format.read_array` call (how `np.load` reads an array) appends to from now
    on: empty while no array's data was read (nor allocated)."""
    calls = []
    read_array = np.lib.format.read_array

    def recording_read_array(*args, **kwargs):
        calls.append(args)
        return read_array(*args, **kwargs)
    monkeypatch.setattr(np.lib.format, 'read_array', recording_read_array)
    return calls


def send_half_then_hang_up(handler, body):
    """Announces all of `body` (Content-Length), sends only its first half and closes the connection."""
    handler.send_response(200)
    handler.send_header('Content-Length', str(len(body)))
    handler.end_headers()
    handler.wfile.write(body[:len(body) // 2])
    handler.wfile.flush()
    handler.close_connection = True


def send_without_length(handler, body):
    """Sends `body` with no Content-Length and closes the connection: the end of the body is where it stops, so
    a body cut short looks complete (`body[:n]` plays a connection that broke after n bytes)."""
    handler.send_response(200)
    handler.send_header('Content-Type', 'application/octet-stream')
    handler.send_header('Connection', 'close')
    handler.end_headers()
    handler.wfile.write(body)
    handler.wfile.flush()
    handler.close_connection = True
