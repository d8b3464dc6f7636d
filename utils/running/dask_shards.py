"""Scanning the shards of a dataset as tasks on a Dask cluster (`--dask_scheduler`, see `utils.running.shards`).

The client submits one task that measures every layer's receptive field from one set of probes
(`measure_fields_task`, first: it takes longest) and one task per shard that scans it (`scan_shard_task`), and
merges the states as they come back, with a progress bar of finished tasks; the script then draws and saves
the merged states. Small tasks let the scheduler keep every worker busy. Each worker process opens the
example's network and dataset once and keeps them for its next tasks with the same flags.

A worker lost in the middle of a task (killed, out of memory, its machine gone) makes the scheduler run the
task again on another worker, up to `distributed.scheduler.allowed-failures` times (3 by default); a task
that raises is retried `RETRIES` times (a network file system that hiccups). Either way the result is the
same: a shard's state depends only on its images.

Workers need this repository's modules and requirements. A `LocalCluster`'s workers inherit this process's
`sys.path`; start remote workers (`dask worker tcp://scheduler:8786`) from the repository root or with it on
`PYTHONPATH`, with the same package versions, and with the model and data at the paths the flags give.
TensorFlow in a worker uses as many threads as the worker has (`--nthreads`) unless `TF_NUM_INTRAOP_THREADS`
and `TF_NUM_INTEROP_THREADS` are set (`utils.models.tf_session.session_config`); a local cluster shares this machine's
cores equally among its workers.
"""

import contextlib
import logging
import os
import threading

from distributed import Client, LocalCluster, as_completed, get_worker

from utils.base import progress
from utils.base.progress import progress_bar
from utils.base.threads import THREAD_VARIABLES
from utils.core.attributing import check_options, explain
from utils.core.states import merge_states
from utils.running.scanner import Scanner

logger = logging.getLogger(__name__)

RETRIES = 2

# In a worker process: the scanner of the latest flags, so that the tasks of a run share it.
_opened = {}
_opened_lock = threading.Lock()


def scan_shard_task(example, args, shard_index, num_shards):
    """The Dask task of a shard: scans it on a worker and returns its states, without receptive fields.

    Args:
        example: the script's `utils.core.model.Example`.
        args: the script's parsed flags.
        shard_index, num_shards: which shard.
    """
    return _scanner(example, args).scan(shard_index, num_shards, fields=False, print_lines=False)


def measure_fields_task(example, args):
    """The Dask task of the receptive fields: returns `{layer index: recfield.ReceptiveField}` of every layer,
    measured from one set of probes (`utils.running.shards.Scanner.fields`)."""
    return _scanner(example, args).fields(print_lines=False)


def check_options_task(example, args, options):
    """The Dask task that refuses, before the scan, what the model cannot give (`utils.core.attributing.check_options`:
    a gradient method for a model that runs forward only); it opens the worker's scanner, which the scan's tasks
    then share.

    Returns:
        None, or the refusal's message: returned, not raised, so that the worker logs no failed task and traceback.
    """
    try:
        check_options(_scanner(example, args).model, options)
    except ValueError as error:
        return str(error)
    return None


def check_options_on(client, example, args, options):
    """Runs `check_options_task` on the cluster of `client`.

    Raises:
        ValueError: the model cannot give what `options` ask for.
    """
    message = client.submit(check_options_task, example, args, options, pure=False, retries=RETRIES).result()
    if message is not None:
        raise ValueError(message)


def explain_task(example, args, layers, options):
    """The Dask task of `--attribution` and `--erf` after the merge: `utils.core.attributing.explain` on a worker,
    which reads again the images it needs.

    Args:
        example, args: as for `scan_shard_task`.
        layers: `(name, field, tracker, channels)` of the layers drawn, their trackers without images
            (`activations.TopActivations.without_images`).
        options: `utils.core.attributing.AttributionOptions`.
    """
    scanner = _scanner(example, args)
    return explain(scanner.model, scanner.dataset, layers, options)


def explain_on(client, example, args, options):
    """The `explain` function of `utils.pictures.drawing.draw_layers` that runs `explain_task` on the cluster of
    `client`."""
    def remote_explain(layers):
        logger.info('attributions and effective receptive fields on a worker')
        slim = [(name, field, tracker.without_images(), channels) for name, field, tracker, channels in layers]
        return client.submit(explain_task, example, args, slim, options, pure=False, retries=RETRIES).result()
    return remote_explain


def _scanner(example, args):
    """This worker's `Scanner` of `example` with `args`, opened by the first task (closing another's)."""
    key = (example.name, repr(sorted(vars(args).items())))
    with _opened_lock:
        if _opened.get('key') != key:
            _opened.pop('key', None)
            stale = _opened.pop('scanner', None)
            if stale is not None:
                stale.close()
            _limit_tensorflow_threads()
            # The client shows a bar of the tasks: the workers' own bars (which a local cluster's workers print on
            # the script's stderr) would interleave with it; --quiet quiets their warnings too.
            progress.enabled = False
            if getattr(args, 'quiet', False):
                logging.getLogger().setLevel(logging.ERROR)
            _opened['scanner'] = Scanner(example, args)
            _opened['key'] = key
        return _opened['scanner']


def _limit_tensorflow_threads():
    """Gives TensorFlow the worker's thread count, unless the environment sets it (read at the first session)."""
    threads = str(get_worker().state.nthreads)
    for variable in THREAD_VARIABLES:
        os.environ.setdefault(variable, threads)


@contextlib.contextmanager
def connect(address, num_workers=None, num_shards=None):
    """A `distributed.Client` of the cluster at `address`, or of a new `LocalCluster` for `'local'`.

    A local cluster has `num_workers` worker processes (default: `num_shards` or the CPU cores, whichever
    is fewer) of one thread each, on 127.0.0.1 and without a dashboard; TensorFlow in each uses an equal part
    of the cores, unless this process's environment sets its thread counts (`utils.base.threads.THREAD_VARIABLES`).
    Client and cluster are closed at the end.

    Raises:
        OSError: no scheduler answers at `address` (a `TimeoutError`).
    """
    # Dask logs at INFO (connections, workers starting and closing); follow this program's level instead.
    distributed_logger = logging.getLogger('distributed')
    saved_level = distributed_logger.level
    distributed_logger.setLevel(max(logging.getLogger().getEffectiveLevel(), logging.INFO))
    try:
        if address != 'local':
            with Client(address) as client:
                yield client
            return
        cores = os.cpu_count() or 1
        num_workers = num_workers or max(1, min(num_shards or cores, cores))
        threads = str(max(1, cores // num_workers))
        with LocalCluster(n_workers=num_workers, threads_per_worker=1, processes=True, host='127.0.0.1',
                          dashboard_address=None,
                          env={variable: os.environ.get(variable, threads) for variable in THREAD_VARIABLES},
                          silence_logs=distributed_logger.level) as cluster:
            with Client(cluster) as client:
                yield client
    finally:
        distributed_logger.setLevel(saved_level)


def scan_on_dask(address, example, args, num_shards=None, num_workers=None, task=scan_shard_task):
    """Scans every shard of an example's dataset on a Dask cluster, measures the receptive fields, merges.

    Args:
        address: the scheduler's address (`tcp://host:8786`), or `'local'` (see `connect`).
        example: the script's `utils.core.model.Example`.
        args: the example script's parsed flags; they travel to the workers.
        num_shards: how many shards (tasks); default: one per worker thread.
        num_workers: workers of a local cluster.
        task: the function run per shard, called as `task(example, args, shard_index, num_shards)`.

    Returns:
        the merged `utils.core.states.ShardState`s, one per layer, with their receptive fields.

    Raises:
        ValueError, OSError: what a task raised (bad flags, data or model), or workers that cannot import
            this project.
    """
    with connect(address, num_workers, num_shards) as client:
        return scan_with(client, example, args, num_shards, task)


def scan_with(client, example, args, num_shards=None, task=scan_shard_task):
    """`scan_on_dask` on the cluster of a `distributed.Client` (`connect`), which stays open for more tasks."""
    num_shards = num_shards or sum(client.nthreads().values())
    logger.info('%d shards and the receptive fields on %s (%d workers)', num_shards, client.scheduler.address,
                len(client.nthreads()))
    # Submitted first, run first: probing takes longer than a shard of a small dataset.
    futures = [client.submit(measure_fields_task, example, args, pure=False, retries=RETRIES)]
    futures += [client.submit(task, example, args, index, num_shards, pure=False, retries=RETRIES)
                for index in range(num_shards)]
    merged, fields = [], {}
    try:
        with progress_bar('shards and receptive fields ', len(futures)) as bar:
            for done, future in enumerate(as_completed(futures), start=1):
                result = future.result()
                if isinstance(result, dict):  # {layer index: field}
                    fields = result
                else:
                    merged = merge_states(merged + result)
                future.release()
                bar.update(done)
    except ImportError as error:
        client.cancel(futures)
        raise ValueError(f'a Dask worker cannot import this project ({error}): start the workers from the '
                         'repository root or with it on PYTHONPATH.') from error
    except BaseException:
        client.cancel(futures)
        raise
    for layer_index, state in enumerate(merged):
        state.field = fields[layer_index]
    return merged
