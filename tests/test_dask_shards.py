"""Shards as Dask tasks (`utils/running/dask_shards.py`) on a `LocalCluster` of 2 worker processes on 127.0.0.1.

The merged states must equal those of a single process (`shard_fixtures.vgg16_scans`), also when the worker
running a task is killed in the middle of it: the scheduler runs the task again on a worker that is alive. The
attributions and effective receptive fields, one task after the merge, must equal those of a single process bit for bit.
Tiles of photographs (`shard_fixtures.TILED_EXAMPLE`) scanned on the cluster draw the top lists of distinct places of
a single process. All slow: a cluster, and the VGG16 example.
"""

import concurrent.futures
import functools
import os
import signal
import time

import dask
import numpy as np
import pytest
from distributed import LocalCluster

import vgg16_activations
from conftest import EXPLANATION_FILES, erf_lines, layer_lines, run_script
from shard_fixtures import (EXPLAIN_FLAGS, FLAGS, LAYERS, TILED_EXAMPLE, assert_same_state, outputs, run_tiled,
                            shard_state_paths, tiled_args)
from utils.base.layer_names import file_stem
from utils.base.threads import thread_counts
from utils.core.states import ShardState, draw_states, state_path
from utils.examples import vgg16
from utils.models.tf_session import session_config
from utils.running import dask_shards
from utils.running.cli import run_main

pytestmark = pytest.mark.slow
WAIT_S = 60  # every wait is bounded


@pytest.fixture(scope='module')
def cluster():
    """Two single-threaded worker processes, TensorFlow in each on one thread; closed after the module."""
    env = {variable: '1' for variable in dask_shards.THREAD_VARIABLES}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host='127.0.0.1', dashboard_address=None,
                      env=env) as local_cluster:
        yield local_cluster


@pytest.fixture(scope='module')
def single_states(vgg16_scans):
    """The states of the whole dataset scanned in one process, by layer."""
    return {state.layer: state for state in map(ShardState.load, shard_state_paths(vgg16_scans, 'shard-0-of-1'))}


def scan(cluster, num_shards, task=dask_shards.scan_shard_task):
    args = vgg16_activations.parse_args(FLAGS)
    return dask_shards.scan_on_dask(cluster.scheduler_address, vgg16.EXAMPLE, args, num_shards, task=task)


def test_tasks_on_two_workers_give_the_state_of_one_process(cluster, single_states):
    states = scan(cluster, num_shards=3)
    assert [state.layer for state in states] == LAYERS
    for state in states:
        assert state.shards == (0, 1, 2) and state.complete
        assert_same_state(state, single_states[state.layer])


def test_tiles_scanned_on_two_workers_draw_the_distinct_lists_of_one_process(cluster, tmp_path):
    run_tiled(tmp_path / 'single', candidates_per_sample=1)  # 1: some lists are short
    args = tiled_args(tmp_path / 'dask', candidates_per_sample=1)
    states = dask_shards.scan_on_dask(cluster.scheduler_address, TILED_EXAMPLE, args, num_shards=3)
    assert states[0].shards == (0, 1, 2) and states[0].places is not None
    (tmp_path / 'dask').mkdir()
    draw_states(states, str(tmp_path / 'dask'))
    assert outputs(tmp_path / 'dask') == outputs(tmp_path / 'single')


def stall_first_attempt(marker_dir, example, args, shard_index, num_shards):
    """A `scan_shard_task` whose first attempt at shard 0 writes its process id and waits to be killed."""
    started = os.path.join(marker_dir, 'started')
    if shard_index == 0 and not os.path.exists(started):
        with open(started + '.tmp', 'w') as stream:
            stream.write(str(os.getpid()))
        os.replace(started + '.tmp', started)
        time.sleep(WAIT_S)
        raise RuntimeError(f'shard 0 was not killed within {WAIT_S} s')
    if shard_index == 0:
        with open(os.path.join(marker_dir, 'finished'), 'w') as stream:
            stream.write(str(os.getpid()))
    return dask_shards.scan_shard_task(example, args, shard_index, num_shards)


def test_a_task_whose_worker_is_killed_runs_again_with_the_same_result(cluster, single_states, tmp_path):
    task = functools.partial(stall_first_attempt, str(tmp_path))
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        result = executor.submit(scan, cluster, 2, task)
        started = tmp_path / 'started'
        deadline = time.monotonic() + WAIT_S
        while not started.exists() and time.monotonic() < deadline and not result.done():
            time.sleep(0.1)
        assert started.exists(), 'shard 0 did not start'
        worker_pid = int(started.read_text())
        assert worker_pid in [process.pid for process in (worker.process.process for worker in
                                                          cluster.workers.values()) if process is not None]
        os.kill(worker_pid, signal.SIGKILL)
        states = result.result(timeout=2 * WAIT_S)
    assert int((tmp_path / 'finished').read_text()) != worker_pid  # run again, in another process
    for state in states:
        assert_same_state(state, single_states[state.layer])


def test_the_error_of_a_task_reaches_the_client(cluster):
    # Not under capsys: a progress bar drawn there breaks the later ones of this process (progressbar2 keeps
    # the stream of its first bar).
    args = vgg16_activations.parse_args([*FLAGS, '--layers', 'vgg_16/conv9/Relu:0'])
    with pytest.raises(ValueError, match="no layer 'vgg_16/conv9/Relu:0'"):
        dask_shards.scan_on_dask(cluster.scheduler_address, vgg16.EXAMPLE, args, 2)


def test_an_unreachable_scheduler_is_a_one_line_error(tmp_path, capsys):
    with dask.config.set({'distributed.comm.timeouts.connect': '1s'}):
        status = run_main(vgg16_activations.main, [*FLAGS, '--dask_scheduler', 'tcp://127.0.0.1:9',
                                                   '--out_dir', str(tmp_path)])
    assert status == 2
    error = capsys.readouterr().err
    assert error.startswith('error: ') and 'tcp://127.0.0.1:9' in error and error.count('\n') == 1


def test_local_cluster_from_the_command_line_draws_what_one_process_draws(vgg16_scans, single_states, tmp_path):
    result = run_script('vgg16_activations.py', *FLAGS, '--dask_scheduler', 'local', '--dask_workers', '2',
                        '--num_shards', '3', '--out_dir', tmp_path)
    assert result.returncode == 0, result.stderr
    single_dir, single = vgg16_scans['single']
    # The drawing's lines come last; before them, the workers of a local cluster, whose stdout is the script's,
    # print what they measured and scanned.
    assert layer_lines(result.stdout)[-len(LAYERS):] == layer_lines(single.stdout)
    assert 'shards and receptive fields 100% (4 of 4)' in result.stderr  # 3 shards, 1 task for every field
    assert 'top activations (batches)' not in result.stderr  # the workers show no bars of their own
    names = sorted(name for name in os.listdir(single_dir))
    assert [(tmp_path / name).read_bytes() for name in names] == [(single_dir / name).read_bytes() for name in names]
    for layer in LAYERS:
        assert_same_state(ShardState.load(state_path(str(tmp_path), layer)), single_states[layer])


def test_local_cluster_with_attributions_gives_the_arrays_and_files_of_one_process(vgg16_scans, tmp_path):
    result = run_script('vgg16_activations.py', *FLAGS, *EXPLAIN_FLAGS, '--dask_scheduler', 'local',
                        '--dask_workers', '2', '--num_shards', '2', '--out_dir', tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    single_dir, single = vgg16_scans['explained']
    for name in EXPLANATION_FILES:
        with np.load(single_dir / name) as expected, np.load(tmp_path / name) as got:
            assert got.files == expected.files, name
            for key in expected.files:
                assert got[key].dtype == expected[key].dtype and np.array_equal(got[key], expected[key]), key
    # The effective fields' lines come from the worker that measured them (its stdout is the script's).
    assert erf_lines(result.stdout) == erf_lines(single.stdout)
    names = sorted(os.listdir(single_dir))
    assert sorted(os.listdir(tmp_path)) == sorted(names + [f'state-{file_stem(layer)}.npz' for layer in LAYERS])
    assert [(tmp_path / name).read_bytes() for name in names] == [(single_dir / name).read_bytes() for name in names]


def test_the_workers_of_a_local_cluster_share_the_cores_among_their_tensorflow_sessions(monkeypatch):
    for variable in dask_shards.THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    def configured_threads():
        config = session_config()
        return config.intra_op_parallelism_threads, config.inter_op_parallelism_threads
    with dask_shards.connect('local', num_workers=2) as client:
        threads = client.run(configured_threads)  # in every worker process
    share = max(1, (os.cpu_count() or 1) // 2)
    assert list(threads.values()) == [(share, share)] * 2
    monkeypatch.setenv('TF_NUM_INTRAOP_THREADS', '3')  # this process's setting wins
    with dask_shards.connect('local', num_workers=2) as client:
        assert set(client.run(thread_counts).values()) == {(3, share)}


def test_weakest_lists_of_tiles_scanned_on_two_workers_draw_the_pictures_of_one_process(cluster, tmp_path):
    run_tiled(tmp_path / 'single', bottom_k=2)
    args = tiled_args(tmp_path / 'dask', bottom_k=2)
    states = dask_shards.scan_on_dask(cluster.scheduler_address, TILED_EXAMPLE, args, num_shards=3)
    assert states[0].run['bottom_k'] == 2 and states[0].tracker.weakest.num_seen == 72
    (tmp_path / 'dask').mkdir()
    draw_states(states, str(tmp_path / 'dask'))
    drawn = outputs(tmp_path / 'dask')
    assert drawn == outputs(tmp_path / 'single') and len([name for name in drawn if name.endswith('-bottom.jpg')]) == 2
