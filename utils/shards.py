"""Scanning a dataset in shards and merging the results exactly: the map-reduce behind `--num_shards`.

Finding each channel's strongest images is a map-reduce. An example's dataset (`utils.examples`) is an
ordered list of images, each with its dataset index and a name that is the same on every machine. It is cut
into `num_shards` contiguous runs of whole batches (`shard_bounds`), so that every image goes through the
network in the same batch as in a single run. Scanning a shard (`Scanner.scan`) gives, per layer, a
`ShardState`, and states merge exactly (`merge_states`): each shard's `activations.TopActivations` numbers
its images by their dataset indices, so ties go to the earlier image of the whole dataset, as in one scan.
Merging the states of all shards gives the state, and the pictures, of a single run.

    python vgg16_activations.py --num_shards 2 --shard_index 0 --out_dir states   # on one machine
    python vgg16_activations.py --num_shards 2 --shard_index 1 --out_dir states   # on another
    python utils/merge_activations.py --states states/state-*.npz --out_dir pictures
    python vgg16_activations.py --dask_scheduler local       # or tcp://scheduler:8786 (utils/dask_shards.py)

A shard's state is saved as `<out_dir>/state-<layer>-<I>-of-<N>.npz`, a merged one as `state-<layer>.npz`:
numpy arrays only (no pickle), written atomically. It holds the tracker (firings, coordinates, dataset
indices, each kept image once), the kept images' names, the layer's receptive field if the shard measured it,
and what tells states that belong together: the example, the model (`utils.examples.model_id`), the dataset
(its number of images and a hash of their names), the batch size, `--num_samples`, the run's `--layers` and
the number of shards. A state file is also a `TopActivations` file: `TopActivations.load` reads it.

Receptive fields are stored in the states, so that merging and drawing need no model
(`utils/merge_activations.py` runs without TensorFlow). They depend on the model and the image size, not on
the data, so each is measured once per run, by one shard: the field of the i-th layer of `--layers` by shard
`i % N`. That spreads the probing over the shards (it costs as much as scanning a few hundred images per layer
for VGG16 at 128 pixels) instead of repeating it in each.
"""

import argparse
import collections
import hashlib
import logging
import os
import threading

import numpy as np

from activations import TopActivations
from utils.cli import ensure_output_dirs, positive_int
from utils.layers import file_stem
from utils.visualize import describe_layer, draw_layers, measure_receptive_field, track_top_activations

logger = logging.getLogger(__name__)

STATE_VERSION = 1
# What must be equal for two states to merge, and how an error names a difference.
RUN_FIELDS = {'example': 'examples', 'model': 'models', 'dataset': 'datasets', 'batch_size': 'batch sizes',
              'num_samples': '--num_samples', 'layers': '--layers', 'num_shards': 'numbers of shards'}

LayerInfo = collections.namedtuple('LayerInfo', 'name shape')  # what `describe_layer` reads of a tensor


def add_arguments(parser):
    """Adds `--num_shards`, `--shard_index`, `--dask_scheduler` and `--dask_workers`."""
    group = parser.add_argument_group(
        'shards', 'scan part of the dataset, or all of it on a Dask cluster; see utils/shards.py')
    group.add_argument('--num_shards', type=positive_int, metavar='N',
                       help='cut the dataset into N shards (contiguous runs of whole batches). With --shard_index, '
                            'scan one and save its state per layer as <out_dir>/state-<layer>-<I>-of-<N>.npz '
                            'instead of drawing; merge them with utils/merge_activations.py. With '
                            '--dask_scheduler, the number of tasks (default: one per worker thread)')
    group.add_argument('--shard_index', type=_index, metavar='I', help='the shard to scan, 0 to N-1')
    group.add_argument('--dask_scheduler', metavar='ADDRESS',
                       help='scan the shards as tasks on the Dask cluster whose scheduler is at ADDRESS '
                            '(tcp://host:8786), or "local" for a LocalCluster on this machine; the states are '
                            'merged and drawn here, and saved as <out_dir>/state-<layer>.npz')
    group.add_argument('--dask_workers', type=positive_int, metavar='N',
                       help='with --dask_scheduler local: worker processes (default: --num_shards or the CPU '
                            'cores, whichever is fewer)')


def _index(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be 0 or more, got {text}')
    return value


def requested(args):
    """Whether the shard flags of `add_arguments` ask for a sharded or Dask run (not with --print_all_names)."""
    return not args.print_all_names and (args.num_shards is not None or args.shard_index is not None
                                         or args.dask_scheduler is not None)


def check_arguments(args):
    """Refuses shard flags that do not go together.

    Raises:
        ValueError: the message says which flags to give.
    """
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


def shard_bounds(num_images, batch_size, num_shards, shard_index):
    """The images of one shard: `[start, stop)` of the dataset indices.

    Shards are contiguous runs of whole batches (the last batch of the dataset may be short), as equal in
    length as whole batches allow; shards beyond the number of batches are empty.
    """
    num_batches = -(-num_images // batch_size)
    first, last = (num_batches * shard_index // num_shards, num_batches * (shard_index + 1) // num_shards)
    return min(first * batch_size, num_images), min(last * batch_size, num_images)


def state_path(out_dir, layer_name, shard_index=None, num_shards=None):
    """`<out_dir>/state-<layer>-<I>-of-<N>.npz` of a shard, or `<out_dir>/state-<layer>.npz` of a merge."""
    shard = '' if shard_index is None else f'-{shard_index}-of-{num_shards}'
    return os.path.join(out_dir, f'state-{file_stem(layer_name)}{shard}.npz')


NO_FIELD = np.zeros((0, 0, 4), np.int64)  # how a state without its layer's receptive field stores it


class StoredField:
    """A receptive field as a state stores it: what drawing and `describe_layer` read of a `ReceptiveField`.

    Attributes:
        recfield: int64 `[feat_h, feat_w, 4]` boxes `[y1, x1, y2, x2]`.
        size, stride, padding: `(y, x)` pairs, or None where they could not be derived.
        feature_shape: `(feat_h, feat_w)`.
    """

    def __init__(self, recfield, size=None, stride=None, padding=None):
        self.recfield = np.asarray(recfield, np.int64)
        self.size, self.stride, self.padding = size, stride, padding
        self.feature_shape = self.recfield.shape[:2]

    @classmethod
    def of(cls, field):
        """The stored form of a `recfield.ReceptiveField` (or of another `StoredField`)."""
        return cls(field.recfield, field.size, field.stride, field.padding)

    def max(self):
        """`(max box height, max box width)`, as `ReceptiveField.max`."""
        heights = self.recfield[..., 2] - self.recfield[..., 0]
        widths = self.recfield[..., 3] - self.recfield[..., 1]
        return int(heights.max()), int(widths.max())

    def geometry(self):
        """int64 `[3, 2]`: size, stride and padding as rows; `[0, 2]` when they are unknown."""
        if self.size is None:
            return np.zeros((0, 2), np.int64)
        return np.array([self.size, self.stride, self.padding], np.int64)

    def __eq__(self, other):
        return (np.array_equal(self.recfield, other.recfield)
                and np.array_equal(self.geometry(), other.geometry()))

    __hash__ = None


class ShardState:
    """What scanning one or more shards found for one layer, with what merging and drawing it needs.

    Attributes:
        layer: the layer's tensor name.
        tracker: its `activations.TopActivations`, indexed by dataset index, with the kept images.
        image_ids: dict from the dataset index of every kept image to its name (`utils.examples`).
        field: the layer's `StoredField`, or None where another shard measured it (see the module's doc).
        num_channels: the layer's channel count.
        run: the values that must be equal for states to merge (`RUN_FIELDS`): `example`, `model`, `dataset`,
            `batch_size`, `num_samples`, `layers` (a tuple) and `num_shards`.
        shards: sorted tuple of the shard indices scanned.
        draw_channels: the run's `--num_channels`, the default of `utils/merge_activations.py`.
        source: where the state comes from (a file, a shard), for messages.
    """

    def __init__(self, layer, tracker, image_ids, field, num_channels, run, shards, draw_channels, source):
        self.layer, self.tracker, self.image_ids, self.field = layer, tracker, dict(image_ids), field
        self.num_channels, self.run, self.shards = int(num_channels), dict(run), tuple(sorted(shards))
        self.draw_channels, self.source = int(draw_channels), source

    @property
    def complete(self):
        """Whether the state covers every shard of its run."""
        return self.shards == tuple(range(self.run['num_shards']))

    def layer_info(self):
        """A stand-in for the layer tensor in `utils.visualize.describe_layer` (needs the field)."""
        return LayerInfo(self.layer, (None,) + tuple(self.field.feature_shape) + (self.num_channels,))

    def merge(self, other):
        """Adds the state of other shards of the same run and layer; returns self.

        Raises:
            ValueError: the states do not belong together (another layer, model, dataset, ...), or both hold
                the same shard.
        """
        if other.layer != self.layer:
            raise ValueError(f'cannot merge {self.source} and {other.source}: they hold different layers '
                             f'({self.layer} and {other.layer}).')
        check_same_run(self, other)
        differ = self.field is not None and other.field is not None and other.field != self.field
        if differ or other.num_channels != self.num_channels:
            raise ValueError(f'cannot merge {self.source} and {other.source}: {self.layer} has different receptive '
                             'fields or channel counts in them (another model or image size?).')
        both = sorted(set(self.shards) & set(other.shards))
        if both:
            raise ValueError(f'cannot merge {self.source} and {other.source}: both hold shard {both[0]} of '
                             f'{self.run["num_shards"]} of {self.layer}.')
        self.tracker.merge(other.tracker)
        kept = set(self.tracker.kept_image_indices.tolist())
        self.image_ids = {index: name for index, name in {**self.image_ids, **other.image_ids}.items()
                          if index in kept}
        self.shards = tuple(sorted(self.shards + other.shards))
        self.field = self.field if self.field is not None else other.field
        return self

    def save(self, path):
        """Writes the state to an `.npz` file (no pickle), atomically.

        The file is the tracker's `TopActivations.save` file with the state's arrays added (named `state_*`
        and `run_*`).
        """
        self.tracker.save(path, **self._arrays())

    def _arrays(self):
        kept = self.tracker.kept_image_indices
        arrays = {
            'state_version': STATE_VERSION,
            'state_layer': np.str_(self.layer),
            'state_image_ids': np.array([self.image_ids[int(index)] for index in kept], dtype=np.str_)
            if len(kept) else np.zeros(0, np.str_),
            'state_recfield': NO_FIELD if self.field is None else self.field.recfield,
            'state_geometry': np.zeros((0, 2), np.int64) if self.field is None else self.field.geometry(),
            'state_num_channels': self.num_channels,
            'state_shards': np.array(self.shards, np.int64),
            'state_draw_channels': self.draw_channels,
        }
        for key in RUN_FIELDS:
            value = self.run[key]
            arrays[f'run_{key}'] = np.array(value, dtype=np.str_) if isinstance(value, (str, tuple)) else value
        return arrays

    @classmethod
    def load(cls, path):
        """Reads a state written by `save`.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not a state (or of another version).
        """
        tracker = TopActivations.load(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                version = int(data['state_version'])
                if version != STATE_VERSION:
                    raise ValueError(f'{path} is a state of version {version}; this code reads version '
                                     f'{STATE_VERSION}. Scan again with this version.')
                recfield, geometry = data['state_recfield'], data['state_geometry']
                field = StoredField(recfield, *(tuple(int(value) for value in row) for row in geometry)) \
                    if recfield.size else None
                ids = dict(zip(tracker.kept_image_indices.tolist(), data['state_image_ids'].tolist()))
                run = {key: data[f'run_{key}'] for key in RUN_FIELDS}
                run = {key: tuple(value.tolist()) if value.ndim else value.item() for key, value in run.items()}
                return cls(str(data['state_layer']), tracker, ids, field, int(data['state_num_channels']), run,
                           data['state_shards'].tolist(), int(data['state_draw_channels']), path)
        except KeyError as error:
            raise ValueError(f'{path} is not a state of a sharded scan (it has no {error}); states are written by '
                             'the *_activations.py scripts with --num_shards and --shard_index.') from error


def check_same_run(state, other):
    """Raises ValueError, naming the difference, unless the two states' `run` values are equal."""
    for key, what in RUN_FIELDS.items():
        if state.run[key] != other.run[key]:
            raise ValueError(f'cannot merge {state.source} and {other.source}: they come from different {what} '
                             f'({_text(state.run[key])} and {_text(other.run[key])}).')


def _text(values):
    return ','.join(map(str, values)) if isinstance(values, tuple) else str(values)


def merge_states(states):
    """Merges the states of one run, layer by layer (into the first state of each layer).

    Args:
        states: `ShardState`s of the same run: the same example, model, dataset, batch size, `num_samples`,
            `--layers` and number of shards; each layer's states of different shards, and every layer with
            states of the same shards.

    Returns:
        list of merged `ShardState`, one per layer, in the run's `--layers` order.

    Raises:
        ValueError: no states, or states that do not belong together (see `ShardState.merge`).
    """
    if not states:
        raise ValueError('there are no states to merge.')
    merged = {}
    for state in states:
        check_same_run(states[0], state)
        if state.layer in merged:
            merged[state.layer].merge(state)
        else:
            merged[state.layer] = state
    layers = [name for name in states[0].run['layers'] if name in merged]
    for name in layers[1:]:
        if merged[name].shards != merged[layers[0]].shards:
            raise ValueError(f'the states of {layers[0]} are of shards {_text(merged[layers[0]].shards)} but those '
                             f'of {name} of shards {_text(merged[name].shards)}; give every layer\'s states of the '
                             'same shards.')
    return [merged[name] for name in layers]


def warn_if_incomplete(states):
    """Warns when merged states lack some shards of their run: their pictures show part of the dataset."""
    if states and not states[0].complete:
        missing = sorted(set(range(states[0].run['num_shards'])) - set(states[0].shards))
        logger.warning('the states lack shard%s %s of %d: the pictures show part of the dataset only.',
                       's' if len(missing) > 1 else '', ', '.join(map(str, missing)), states[0].run['num_shards'])


def draw_states(states, out_dir, num_channels=None, tensorboard_dir=None):
    """For every state: prints its `describe_layer` line and writes its `-full`/`-crop` pictures.

    Args:
        states: merged `ShardState`s of one run.
        out_dir: an existing folder.
        num_channels: `--num_channels` (see `utils.visualize.channels_to_draw`); None for the run's.
        tensorboard_dir: see `utils.visualize.draw_layers`.
    """
    def described():
        for state in states:
            if state.field is None:
                logger.warning('no receptive field of %s: shard %d of %d, which measures it, is missing; it is not '
                               'drawn.', state.layer, state.run['layers'].index(state.layer) % state.run['num_shards'],
                               state.run['num_shards'])
                continue
            print(describe_layer(state.layer_info(), state.field), flush=True)
            yield state.layer_info(), state.field, state.tracker

    if states:
        draw_layers(described(), out_dir, states[0].draw_channels if num_channels is None else num_channels,
                    tensorboard_dir)


class Scanner:
    """An example's network and dataset, opened once, scanning any shard of the dataset.

    Use it as a context manager, or `close` it: it holds a TensorFlow session.
    """

    def __init__(self, example, args):
        """Opens the example's network and dataset (`utils.examples`).

        Args:
            example: the example's name, one of `utils.examples.EXAMPLES`.
            args: the example script's parsed flags.

        Raises:
            ValueError, FileNotFoundError: see `utils.examples.open_network` and `open_dataset`.
        """
        from utils import examples  # TensorFlow and the models: only where shards are scanned

        self.example, self.args = example, args
        self.network = examples.open_network(example, args)
        try:
            self.dataset = examples.open_dataset(example, args, self.network)
        except BaseException:
            self.close()
            raise
        self._fields = {}
        self._fields_lock = threading.Lock()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self.network.session.close()

    def field(self, layer_index):
        """The receptive field of the `layer_index`-th layer as a `StoredField`, measured on the first call."""
        with self._fields_lock:
            if layer_index not in self._fields:
                network = self.network
                self._fields[layer_index] = StoredField.of(measure_receptive_field(
                    network.session, network.images_ph, network.layers[layer_index], network.imshape,
                    network.value_range, network.feed_dict))
            return self._fields[layer_index]

    def run_values(self, num_shards):
        """The `ShardState.run` values of this scanner's states."""
        ids = self.dataset.ids
        names_hash = hashlib.sha256('\n'.join(ids).encode()).hexdigest()[:16]
        return {'example': self.example, 'model': self.network.model_id,
                'dataset': f'{len(ids)} images, names sha256:{names_hash}', 'batch_size': self.dataset.batch_size,
                'num_samples': self.args.num_samples, 'layers': tuple(layer.name for layer in self.network.layers),
                'num_shards': num_shards}

    def scan(self, shard_index, num_shards, fields=True):
        """Scans one shard, and measures the receptive fields of the layers `shard_index` modulo `num_shards`.

        Args:
            shard_index, num_shards: which shard (see `shard_bounds`).
            fields: measure those receptive fields (False: every state's `field` is None, for a caller that
                measures them on its own, as `utils.dask_shards` does).

        Returns:
            list of `ShardState`, one per layer.
        """
        network, dataset = self.network, self.dataset
        start, stop = shard_bounds(len(dataset.ids), dataset.batch_size, num_shards, shard_index)
        if start == stop:
            logger.warning('shard %d of %d is empty: the dataset has fewer batches (%d images in batches of %d) '
                           'than shards.', shard_index, num_shards, len(dataset.ids), dataset.batch_size)
        trackers = track_top_activations(network.session, network.images_ph, network.layers,
                                         dataset.read(start, stop), self.args.num_samples,
                                         num_batches=-(-(stop - start) // dataset.batch_size),
                                         feed_dict=network.feed_dict, first_index=start)
        run = self.run_values(num_shards)
        states = []
        for number, (layer, tracker) in enumerate(zip(network.layers, trackers)):
            field = self.field(number) if fields and number % num_shards == shard_index else None
            image_ids = {index: dataset.ids[index] for index in tracker.kept_image_indices.tolist()}
            states.append(ShardState(layer.name, tracker, image_ids, field, layer.shape[-1], run, [shard_index],
                                     self.args.num_channels, f'shard {shard_index} of {num_shards}'))
        return states


def run(example, args):
    """What an `*_activations.py` script does when `requested(args)`: scan a shard, or all on Dask.

    With `--shard_index`, scans that shard, saves its states (`state_path`) and prints the `describe_layer`
    line of the layers whose receptive fields it measured; with `--dask_scheduler`, scans every shard on the
    cluster (`utils.dask_shards`), then saves the merged states and draws them, printing every layer's line.

    Args:
        example: the script's example, one of `utils.examples.EXAMPLES`.
        args: the script's parsed flags (`add_arguments` and the common ones).

    Returns:
        0.

    Raises:
        ValueError, OSError: bad flags, data or model (the scripts print them as `error: ...`).
    """
    check_arguments(args)
    if args.tensorboard_dir and args.dask_scheduler is None:
        raise ValueError('--tensorboard_dir takes the pictures, which a shard does not draw: give it to '
                         'utils/merge_activations.py, or scan with --dask_scheduler.')
    ensure_output_dirs(args)
    if args.dask_scheduler is not None:
        from utils import dask_shards

        states = dask_shards.scan_on_dask(args.dask_scheduler, example, args, args.num_shards, args.dask_workers)
        for state in states:
            state.save(state_path(args.out_dir, state.layer))
        draw_states(states, args.out_dir, tensorboard_dir=args.tensorboard_dir)
        logger.info('pictures and merged states are in %s', args.out_dir)
        return 0
    with Scanner(example, args) as scanner:
        states = scanner.scan(args.shard_index, args.num_shards)
    for state in states:
        path = state_path(args.out_dir, state.layer, args.shard_index, args.num_shards)
        state.save(path)
        if state.field is not None:
            print(describe_layer(state.layer_info(), state.field), flush=True)
        print(f'saved {path}', flush=True)
    return 0
