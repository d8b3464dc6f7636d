"""Results in TensorBoard (`utils/pictures/tensorboard_logs.py`, `--tensorboard_dir`), and a real server showing them.

One log folder holds two runs, both from CIFAR-10 scripts run as subprocesses on the training folder of
`cifar10_fixtures`: `graph` (utils/generate_logs.py) and `activations` (cifar10_activations.py
--tensorboard_dir). The event files are read back with TensorBoard's event reader; then a `tensorboard`
server on 127.0.0.1 (a free port) is asked for its runs, the graph and the images over its HTTP API. Every
wait is bounded and the server is stopped after the module's tests, whatever happens.
"""

import socket
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import requests
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util

import cifar10_activations
from conftest import run_script
from cifar10_fixtures import CIFAR10_OPS
from utils.base.layer_names import file_stem
from utils.pictures.tensorboard_logs import EventLog
from utils.running.cli import run_main

FIELDS = {'conv1/conv1:0': '5x5 (stride 1x1, padding 2x2)', 'conv2/conv2:0': '15x15 (stride 2x2, padding 6x6)'}
TAGS = sorted(f'{layer}/{kind}' for layer in FIELDS for kind in ('full', 'crop'))
NUM_CHANNELS = 3
SERVER_START_S = 60  # TensorBoard takes several seconds to start and to load the logs
REQUEST_TIMEOUT_S = 10


@pytest.fixture(scope='module')
def logs(cifar10_data, cifar10_train_dir, tmp_path_factory):
    """`(logdir, pictures_dir)`: runs `graph` and `activations` in logdir, the JPEG pictures in pictures_dir."""
    logdir, pictures_dir = tmp_path_factory.mktemp('logs'), tmp_path_factory.mktemp('pictures')
    runs = [('utils/generate_logs.py', '--model', cifar10_train_dir, '--logdir', logdir / 'graph'),
            ('cifar10_activations.py', '--train_dir', cifar10_train_dir, '--data_dir', cifar10_data[0],
             '--out_dir', pictures_dir, '--tensorboard_dir', logdir / 'activations', '--batches', 2,
             '--batch_size', 16, '--num_channels', NUM_CHANNELS, '--num_samples', 2)]
    for run in runs:
        result = run_script(*run)
        assert result.returncode == 0, result.stderr[-3000:]
    return logdir, pictures_dir


def picture_path(pictures_dir, tag):
    """The JPEG file behind an image tag `<layer>/<kind>`."""
    layer, kind = tag.rsplit('/', 1)
    return pictures_dir / f'{file_stem(layer)}-{kind}.jpg'


# -- the event files --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_image_summaries_are_the_pictures_with_the_receptive_field(logs):
    logdir, pictures_dir = logs
    accumulator = EventAccumulator(str(logdir / 'activations'))
    accumulator.Reload()
    assert sorted(accumulator.Tags()['tensors']) == TAGS
    for tag in TAGS:
        metadata = accumulator.SummaryMetadata(tag)
        assert metadata.plugin_data.plugin_name == 'images'  # what the Images tab shows
        assert FIELDS[tag.rsplit('/', 1)[0]] in metadata.summary_description
        [event] = accumulator.Tensors(tag)
        width, height, encoded = tensor_util.make_ndarray(event.tensor_proto)
        stored = picture_path(pictures_dir, tag).read_bytes()
        assert encoded == stored  # the JPEG as written, not a re-encoded copy
        picture = cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_COLOR)
        assert (int(width), int(height)) == (picture.shape[1], picture.shape[0])


def test_tensorboard_dir_that_cannot_be_written_fails_before_the_scan(cifar10_data, cifar10_train_dir, tmp_path,
                                                                     capsys):
    (tmp_path / 'a-file').write_text('')
    status = run_main(cifar10_activations.main, [
        '--train_dir', cifar10_train_dir, '--data_dir', cifar10_data[0], '--batches', '2', '--batch_size', '16',
        '--out_dir', str(tmp_path / 'out'), '--tensorboard_dir', str(tmp_path / 'a-file' / 'logs')])
    output, error = capsys.readouterr()
    assert status == 2 and error.startswith('error: cannot write to output folder')
    assert 'give another folder with --tensorboard_dir' in error and 'scan:' not in output


def test_event_log_refuses_a_file_that_is_not_an_image(tmp_path):
    (tmp_path / 'notes.jpg').write_text('not an image')
    with EventLog(str(tmp_path / 'logs')) as log, pytest.raises(ValueError, match='is not a PNG or JPEG image'):
        log.add_image_file('notes', str(tmp_path / 'notes.jpg'))


# -- a real TensorBoard -----------------------------------------------------------------------------------------

def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


class TensorBoard:
    """A `tensorboard` server process on 127.0.0.1 and an HTTP session to it (proxies ignored)."""

    def __init__(self, logdir, log_path):
        self.url = f'http://127.0.0.1:{free_port()}'
        self.log_path = log_path
        with open(log_path, 'wb') as log:
            self.process = subprocess.Popen(
                [sys.executable, '-m', 'tensorboard.main', '--logdir', str(logdir), '--host', '127.0.0.1',
                 '--port', self.url.rsplit(':', 1)[1]], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        self.http = requests.Session()
        self.http.trust_env = False

    def get(self, path, **params):
        response = self.http.get(self.url + path, params=params, timeout=REQUEST_TIMEOUT_S)
        response.raise_for_status()
        return response

    def wait_for(self, path, ready, deadline):
        """`get(path).json()` once `ready(json)` holds; fails at `deadline` (time.monotonic) or if the server
        exits."""
        while True:
            if self.process.poll() is not None:
                pytest.fail(f'tensorboard exited with status {self.process.returncode}:\n{self.log_tail()}')
            try:
                data = self.get(path).json()
                if ready(data):
                    return data
            except requests.RequestException:
                data = None  # not listening yet
            if time.monotonic() > deadline:
                pytest.fail(f'tensorboard did not answer {path} as expected within {SERVER_START_S} s (last answer: '
                            f'{data}):\n{self.log_tail()}')
            time.sleep(0.25)

    def log_tail(self):
        return self.log_path.read_text(errors='replace')[-3000:]

    def stop(self):
        self.http.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope='module')
def tensorboard(logs, tmp_path_factory):
    """A running server on the logs, with both runs and all image tags loaded; stopped afterwards."""
    server = TensorBoard(logs[0], tmp_path_factory.mktemp('tensorboard') / 'server.log')
    try:
        deadline = time.monotonic() + SERVER_START_S
        server.wait_for('/data/runs', lambda runs: {'graph', 'activations'} <= set(runs), deadline)
        server.wait_for('/data/plugin/images/tags',
                        lambda tags: sorted(tags.get('activations', {})) == TAGS, deadline)
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_server_lists_both_runs_and_their_plugins(tensorboard):
    assert sorted(tensorboard.get('/data/runs').json()) == ['activations', 'graph']
    plugins = tensorboard.get('/data/plugins_listing').json()
    assert plugins['graphs']['enabled'] and plugins['images']['enabled']


@pytest.mark.slow
def test_server_shows_the_graph(tensorboard):
    info = tensorboard.get('/data/plugin/graphs/info').json()
    assert info['graph']['run_graph'] and 'activations' not in info
    graph = tensorboard.get('/data/plugin/graphs/graph', run='graph', conceptual='false').text
    for name in CIFAR10_OPS:
        assert f'name: "{name}"\n' in graph, name


@pytest.mark.slow
def test_server_shows_the_pictures_with_their_receptive_fields(tensorboard, logs):
    tags = tensorboard.get('/data/plugin/images/tags').json()
    assert sorted(tags) == ['activations']
    for tag, entry in tags['activations'].items():
        assert FIELDS[tag.rsplit('/', 1)[0]] in entry['description']  # Markdown, rendered as HTML
        [image] = tensorboard.get('/data/plugin/images/images', run='activations', tag=tag, sample=0).json()
        served = tensorboard.get('/data/plugin/images/individualImage?' + image['query'])
        assert served.headers['Content-Type'] == 'image/jpeg'
        assert served.content == picture_path(logs[1], tag).read_bytes()
