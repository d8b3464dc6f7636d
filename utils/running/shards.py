"""Scanning part of a dataset (`--num_shards N --shard_index I`), or all of it on Dask (`--dask_scheduler`).

Finding each channel's strongest images is a map-reduce. An example's dataset is cut into contiguous runs of
whole batches (`utils.core.pipeline.shard_bounds`), so every image goes through the network in the same batch as
in a single run; each shard gives a `utils.core.states.ShardState` per layer, and states merge exactly.

    python vgg16_activations.py --num_shards 2 --shard_index 0 --out_dir states   # on one machine
    python vgg16_activations.py --num_shards 2 --shard_index 1 --out_dir states   # on another
    python utils/merge_activations.py --states states/state-*.npz --out_dir pictures
    python vgg16_activations.py --dask_scheduler local       # or tcp://scheduler:8786 (utils/running/dask_shards.py)
    python vgg16_activations.py --states states/state-*.npz --attribution gradients --out_dir pictures

A shard opens its example's model and dataset through the example's `utils.core.model.Example` (the functions
its script uses too) and runs the same `utils.core.pipeline.scan` as a single run. Receptive fields depend on the
model and the image size, not on the data, so they are measured once per run, all layers from one set of
probes, by shard 0, which stores them in its states so that merging and drawing need no model. What needs the model
after the merge (`--attribution`, `--erf`, `--heatmap`) reads again only the images it needs: `--states` opens the
model here, a Dask run sends it to a worker as one more task.

TensorFlow in a process takes every core unless `utils.base.threads.THREAD_VARIABLES` say otherwise: shards
that run side by side on one machine should share its cores (`TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1`
for two shards on two cores), as Dask workers do (`utils.running.dask_shards`).
"""

import logging

from utils.core import pipeline
from utils.core.attributing import explain
from utils.core.states import ShardState, draw_states, merge_states, state_path, warn_if_incomplete
from utils.running.cli import attribution_options, ensure_output_dirs
from utils.running.scanner import Scanner

logger = logging.getLogger(__name__)


def requested(args):
    """Whether the shard flags (`utils.running.cli.add_activation_arguments`) ask for a sharded or Dask run.

    `--print_all_names` wins: it only lists the layers.
    """
    return not args.print_all_names and (args.num_shards is not None or args.shard_index is not None
                                         or args.dask_scheduler is not None or args.dask_workers is not None
                                         or getattr(args, 'states', None) is not None)


def check_arguments(args):
    """Refuses shard flags that do not go together.

    Raises:
        ValueError: the message says which flags to give.
    """
    if getattr(args, 'states', None) is not None:
        if args.num_shards is not None or args.shard_index is not None or args.dask_scheduler is not None:
            raise ValueError('--states draws the states of an earlier scan instead of scanning; leave out '
                             '--num_shards, --shard_index and --dask_scheduler.')
        return
    if getattr(args, 'heatmap', False):
        raise ValueError('--heatmap runs the kept images through the network again while drawing, which shards and '
                         'Dask runs do not do; use it in a single run, or with --states after the merge.')
    explaining = getattr(args, 'attribution', None) or getattr(args, 'erf', False)
    if explaining and args.dask_scheduler is None:
        raise ValueError('--attribution and --erf need the merged states of every shard: merge them '
                         '(utils/merge_activations.py), then run this script with --states <merged states> and these '
                         'flags; or scan with --dask_scheduler.')
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


def run(example, args):
    """What an `*_activations.py` script does when `requested(args)`: scan a shard, or all on Dask.

    With `--shard_index`, scans that shard and saves its states (`utils.core.states.state_path`); shard 0 measures
    the receptive fields and prints their lines. With `--dask_scheduler`, scans
    every shard on the cluster (`utils.running.dask_shards`), then saves the merged states and draws them, printing
    every layer's line.

    Args:
        example: the script's `utils.core.model.Example`.
        args: the script's parsed flags (`utils.running.cli.add_common_arguments` and `add_activation_arguments`).

    Returns:
        0.

    Raises:
        ValueError, OSError: bad flags, data or model (the scripts print them as `error: ...`).
    """
    check_arguments(args)
    if getattr(args, 'states', None) is not None:
        return draw_saved_states(example, args)
    if args.tensorboard_dir and args.dask_scheduler is None:
        raise ValueError('--tensorboard_dir takes the pictures, which a shard does not draw: give it to '
                         'utils/merge_activations.py, or scan with --dask_scheduler.')
    if args.dask_scheduler is not None:
        from utils.running import dask_shards  # Dask is heavy: loaded only when asked for

        options = attribution_options(args)
        ensure_output_dirs(args)
        with dask_shards.connect(args.dask_scheduler, args.dask_workers, args.num_shards) as client:
            if options.method:  # what the model cannot give is refused before the scan, as in a single run
                dask_shards.check_options_on(client, example, args, options)
            states = dask_shards.scan_with(client, example, args, args.num_shards)
            for state in states:
                state.save(state_path(args.out_dir, state.layer))
            draw_states(states, args.out_dir, tensorboard_dir=args.tensorboard_dir,
                        explain=dask_shards.explain_on(client, example, args, options)
                        if options.asked else None)
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


def draw_saved_states(example, args):
    """`--states`: merges the state files of an earlier sharded scan of this model and dataset, and draws them as
    `utils/merge_activations.py` does, with what needs the model: `--attribution`, `--erf`, `--heatmap` (only the
    images they need are read again). The merged states are saved in `--out_dir` too.

    Returns:
        0.

    Raises:
        ValueError: states of another model, dataset or flags (`check_states_fit`), or see `merge_states`.
    """
    merged = merge_states([ShardState.load(path) for path in args.states])
    warn_if_incomplete(merged)
    with Scanner(example, args) as scanner:
        check_states_fit(merged, scanner)
        options = attribution_options(args, scanner.model)
        ensure_output_dirs(args)
        for state in merged:
            state.save(state_path(args.out_dir, state.layer))
        model, dataset = scanner.model, scanner.dataset
        draw_states(merged, args.out_dir, args.num_channels, args.tensorboard_dir,
                    heatmaps=(lambda layers: pipeline.channel_heatmaps(model, dataset, layers)) if args.heatmap
                    else None,
                    explain=(lambda layers: explain(model, dataset, layers, options)) if options.asked
                    else None)
    logger.info('pictures and merged states are in %s', args.out_dir)
    return 0


def check_states_fit(states, scanner):
    """Makes sure that states are of the scan that `scanner`'s flags would run (the same example, model, dataset,
    batch size, `--num_samples`, candidates and `--layers`): their kept images are read again by index.

    Raises:
        ValueError: the first difference, and what to do.
    """
    expected = scanner.run_values(states[0].run['num_shards'])
    for key, value in states[0].run.items():
        if expected.get(key) != value:
            raise ValueError(f'the states are of another scan: their {key} is {value!r}, this script\'s flags give '
                             f'{expected.get(key)!r}; give the flags of the scan (--layers, --batch_size, '
                             '--num_samples, --bottom_k, --allow_repeats, --candidates_per_sample, the model and the '
                             'images).')
