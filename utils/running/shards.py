"""Scanning part of a dataset (`--num_shards N --shard_index I`), or all of it on Dask (`--dask_scheduler`).

Finding each channel's strongest images is a map-reduce. An example's dataset is cut into contiguous runs of
whole batches (`utils.core.pipeline.shard_bounds`), so every image goes through the network in the same batch as
in a single run; each shard gives a `utils.core.states.ShardState` per layer, and states merge exactly.

    python vgg16_activations.py --num_shards 2 --shard_index 0 --out_dir states   # on one machine
    python vgg16_activations.py --num_shards 2 --shard_index 1 --out_dir states   # on another
    python utils/merge_activations.py --states states/state-*.npz --out_dir pictures
    python vgg16_activations.py --dask_scheduler local       # or tcp://scheduler:8786 (utils/running/dask_shards.py)

A shard opens its example's model and dataset through the example's `utils.core.pipeline.Example` (the functions
its script uses too) and runs the same `utils.core.pipeline.scan` as a single run. Receptive fields depend on the
model and the image size, not on the data, so they are measured once per run, all layers from one set of
probes, by shard 0, which stores them in its states so that merging and drawing need no model.

TensorFlow in a process takes every core unless THREAD_VARIABLES say otherwise: shards that run side by side
on one machine should share its cores (`TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1` for two shards on
two cores), as Dask workers do (`utils.running.dask_shards`).
"""

import hashlib
import logging
import threading

from utils.core import pipeline
from utils.running.cli import ensure_output_dirs, recfield_cache
from utils.core.states import ShardState, draw_states, state_path

logger = logging.getLogger(__name__)

# TensorFlow's threads per process (`utils.models.tf_session.session_config`): a machine's cores shared by the shards or
# Dask workers that run on it at once.
THREAD_VARIABLES = ('TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS')


def requested(args):
    """Whether the shard flags (`utils.running.cli.add_activation_arguments`) ask for a sharded or Dask run.

    `--print_all_names` wins: it only lists the layers.
    """
    return not args.print_all_names and (args.num_shards is not None or args.shard_index is not None
                                         or args.dask_scheduler is not None or args.dask_workers is not None)


def check_arguments(args):
    """Refuses shard flags that do not go together.

    Raises:
        ValueError: the message says which flags to give.
    """
    if getattr(args, 'heatmap', False):
        raise ValueError('--heatmap runs the kept images through the network again while drawing, which shards and '
                         'Dask runs do not do; use it in a single run (without --num_shards or --dask_scheduler).')
    if args.dask_scheduler is not None:
        if args.shard_index is not None:
            raise ValueError('--shard_index scans one shard here; with --dask_scheduler every shard is scanned on '
                             'the cluster. Give one or the other.')
        if args.dask_workers is not None and args.dask_scheduler != 'local':
            raise ValueError('--dask_workers sets the size of a local cluster; with --dask_scheduler ADDRESS the '
                             'cluster has the workers it was started with.')
        return
    if args.dask_workers is not None:
        raise ValueError('--dask_workers needs --dask_scheduler local.')
    if args.num_shards is None or args.shard_index is None:
        raise ValueError('give both --num_shards N and --shard_index I (0 to N-1) to scan one shard, or '
                         '--dask_scheduler to scan every shard on a Dask cluster.')
    if args.shard_index >= args.num_shards:
        raise ValueError(f'--shard_index {args.shard_index} is not a shard of {args.num_shards}: give 0 to '
                         f'{args.num_shards - 1}.')


class Scanner:
    """An example's model and dataset, opened once, scanning any shard of the dataset.

    Use it as a context manager, or `close` it: it holds the model (a TensorFlow session).
    """

    def __init__(self, example, args):
        """Opens the example's model and dataset.

        Args:
            example: the example's `utils.core.pipeline.Example`.
            args: the example script's parsed flags.

        Raises:
            ValueError, FileNotFoundError: bad flags, a missing model or dataset.
        """
        self.example, self.args = example, args
        self.model = example.open_model(args)
        with pipeline.closed_on_error(self.model):
            self.dataset = example.open_dataset(args, self.model)
        self._fields = None
        self._fields_lock = threading.Lock()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self.model.close()

    def fields(self, print_lines=True):
        """Every layer's receptive field (`utils.core.pipeline.measure_receptive_fields`, with the script's
        `--recfield_cache`), measured on the first call, which prints the lines unless `print_lines` is False."""
        with self._fields_lock:
            if self._fields is None:
                self._fields = pipeline.measure_receptive_fields(self.model, cache=recfield_cache(self.args),
                                                                 print_lines=print_lines)
            return self._fields

    def run_values(self, num_shards):
        """The `ShardState.run` values of this scanner's states."""
        ids = self.dataset.ids
        names_hash = hashlib.sha256('\n'.join(ids).encode()).hexdigest()[:16]
        return {'example': self.example.name, 'model': self.model.model_id,
                'dataset': f'{len(ids)} images, names sha256:{names_hash}', 'batch_size': self.dataset.batch_size,
                'num_samples': self.args.num_samples, 'layers': tuple(self.model.layer_names),
                'num_shards': num_shards}

    def scan(self, shard_index, num_shards, fields=True, print_lines=True):
        """Scans one shard; shard 0 also measures every layer's receptive field (one set of probes).

        Args:
            shard_index, num_shards: which shard (see `utils.core.pipeline.shard_bounds`).
            fields: let shard 0 measure the receptive fields (False: every state's `field` is None, for a
                caller that measures them on its own, as `utils.running.dask_shards` does).
            print_lines: print the scan's line and the fields' lines.

        Returns:
            list of `ShardState`, one per layer.
        """
        trackers = pipeline.scan(self.model, self.dataset, self.args.num_samples, shard_index, num_shards,
                                 print_line=print_lines)
        fields = self.fields(print_lines) if fields and shard_index == 0 else {}
        run = self.run_values(num_shards)
        states = []
        for number, (layer, tracker) in enumerate(zip(self.model.layers, trackers)):
            image_ids = {index: self.dataset.ids[index] for index in tracker.kept_image_indices.tolist()}
            states.append(ShardState(layer.name, tracker, image_ids, fields.get(number), layer.num_channels, run,
                                     [shard_index], self.args.num_channels, f'shard {shard_index} of {num_shards}'))
        return states


def run(example, args):
    """What an `*_activations.py` script does when `requested(args)`: scan a shard, or all on Dask.

    With `--shard_index`, scans that shard and saves its states (`utils.core.states.state_path`); shard 0 measures
    the receptive fields and prints their lines. With `--dask_scheduler`, scans
    every shard on the cluster (`utils.running.dask_shards`), then saves the merged states and draws them, printing
    every layer's line.

    Args:
        example: the script's `utils.core.pipeline.Example`.
        args: the script's parsed flags (`utils.running.cli.add_common_arguments` and `add_activation_arguments`).

    Returns:
        0.

    Raises:
        ValueError, OSError: bad flags, data or model (the scripts print them as `error: ...`).
    """
    check_arguments(args)
    if args.tensorboard_dir and args.dask_scheduler is None:
        raise ValueError('--tensorboard_dir takes the pictures, which a shard does not draw: give it to '
                         'utils/merge_activations.py, or scan with --dask_scheduler.')
    if args.dask_scheduler is not None:
        from utils.running import dask_shards  # Dask is heavy: loaded only when asked for

        ensure_output_dirs(args)
        states = dask_shards.scan_on_dask(args.dask_scheduler, example, args, args.num_shards, args.dask_workers)
        for state in states:
            state.save(state_path(args.out_dir, state.layer))
        draw_states(states, args.out_dir, tensorboard_dir=args.tensorboard_dir)
        logger.info('pictures and merged states are in %s', args.out_dir)
        return 0
    with Scanner(example, args) as scanner:
        # Once the model and the data opened: bad input leaves no folder behind. Not locked: the other shards'
        # states may be written into it at the same time.
        ensure_output_dirs(args, lock=False)
        states = scanner.scan(args.shard_index, args.num_shards)
    for state in states:
        path = state_path(args.out_dir, state.layer, args.shard_index, args.num_shards)
        state.save(path)
        print(f'saved {path}', flush=True)
    return 0
