"""The state of a sharded scan, per layer: saved, loaded, merged exactly, drawn. No TensorFlow needed.

A shard's state (`ShardState`) holds its `activations.TopActivations` (numbered by dataset index, so that
ties go to the earlier image of the whole dataset, as in one scan), the kept images' names and, for images cut from
photographs, their places (the top lists of distinct places are chosen from the tracker's candidates when drawing),
the layer's `recfield.ReceptiveField` if that shard measured it, and what tells states that belong together
(`RUN_FIELDS`: the example, the model, the dataset, the batch size, `--num_samples`, `--bottom_k`, the candidates kept,
`--layers`, the number of shards). With `--bottom_k` the tracker holds its `weakest` lists too. Merging the states of
all shards gives the state, and the pictures, of a single run.

A shard's state is saved as `<out_dir>/state-<layer>-<I>-of-<N>.npz`, a merged one as `state-<layer>.npz`:
numpy arrays only (no pickle), written atomically. A state file is also a `TopActivations` file:
`TopActivations.load` reads it.
"""

import logging
import os

import numpy as np

from activations import TopActivations, distinct_layers
from recfield import ReceptiveField
from utils.base.files import load_arrays, save_arrays
from utils.base.layer_names import file_stem
from utils.data.images import PLACE_COLUMNS
from utils.pictures.drawing import describe_layer, draw_layers

logger = logging.getLogger(__name__)

STATE_VERSION = 3  # 3: every channel's statistics (`utils.base.channel_statistics`), candidates and places
# What must be equal for two states to merge, and how an error names a difference.
RUN_FIELDS = {'example': 'examples', 'model': 'models', 'dataset': 'datasets', 'batch_size': 'batch sizes',
              'num_samples': '--num_samples', 'bottom_k': '--bottom_k',
              'candidates': 'candidates per channel (--candidates_per_sample, --allow_repeats)', 'layers': '--layers',
              'num_shards': 'numbers of shards'}
# Run values saved only where they differ from these, so that a state of a run without the flag is as before it.
RUN_DEFAULTS = {'bottom_k': 0}


def state_path(out_dir, layer_name, shard_index=None, num_shards=None):
    """`<out_dir>/state-<layer>-<I>-of-<N>.npz` of a shard, or `<out_dir>/state-<layer>.npz` of a merge."""
    shard = '' if shard_index is None else f'-{shard_index}-of-{num_shards}'
    return os.path.join(out_dir, f'state-{file_stem(layer_name)}{shard}.npz')


class ShardState:
    """What scanning one or more shards found for one layer, with what merging and drawing it needs.

    Attributes:
        layer: the layer's tensor name.
        tracker: its `activations.TopActivations`, indexed by dataset index, with the kept images (and its `weakest`
            lists, with theirs, where the run has `--bottom_k`).
        image_ids: dict from the dataset index of every kept image (those of `weakest` too) to its name
            (`utils.core.pipeline.Dataset`).
        places: None, or a dict from the dataset index of every kept image to its place (a tuple of the
            `utils.data.images.PLACE_COLUMNS`): the tracker's lists are candidates, from which the drawing chooses
            the top lists of distinct places (`activations.distinct_top`).
        field: the layer's `recfield.ReceptiveField`, or None where another shard measures it.
        num_channels: the layer's channel count.
        run: the values that must be equal for states to merge (`RUN_FIELDS`); `layers` is a tuple.
        shards: sorted tuple of the shard indices scanned.
        draw_channels: the run's `--num_channels`, the default of `utils/merge_activations.py`.
        source: where the state comes from (a file, a shard), for messages.
    """

    def __init__(self, layer, tracker, image_ids, field, num_channels, run, shards, draw_channels, source,
                 places=None):
        self.layer, self.tracker, self.image_ids, self.field = layer, tracker, dict(image_ids), field
        self.num_channels, self.run, self.shards = int(num_channels), dict(run), tuple(sorted(shards))
        self.draw_channels, self.source = int(draw_channels), source
        self.places = None if places is None else {int(index): tuple(int(value) for value in place)
                                                   for index, place in places.items()}

    @property
    def complete(self):
        """Whether the state covers every shard of its run."""
        return self.shards == tuple(range(self.run['num_shards']))

    def describe(self):
        """The layer's `utils.pictures.drawing.describe_layer` line (needs the field)."""
        return describe_layer(self.layer, self.field, self.num_channels)

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
        if (self.places is None) != (other.places is None):
            raise ValueError(f'cannot merge {self.source} and {other.source}: one holds the places of its images and '
                             'the other not (scans with and without --allow_repeats?).')
        both = sorted(set(self.shards) & set(other.shards))
        if both:
            raise ValueError(f'cannot merge {self.source} and {other.source}: both hold shard {both[0]} of '
                             f'{self.run["num_shards"]} of {self.layer}.')
        kinds = self.tracker.kept_image_kinds | other.tracker.kept_image_kinds
        if len(kinds) > 1:
            raise ValueError(f'cannot merge {self.source} and {other.source}: their images of {self.layer} differ in '
                             f'size or type ({" and ".join(_kind_text(kind) for kind in sorted(kinds, key=str))}).')
        field = self.field if self.field is not None else other.field
        if field is not None:
            for state in (self, other):
                _check_image_size(state, field)
        self.tracker.merge(other.tracker)
        kept = set(self.tracker.all_kept_image_indices.tolist())
        self.image_ids = {index: name for index, name in {**self.image_ids, **other.image_ids}.items()
                          if index in kept}
        if self.places is not None:
            self.places = {index: place for index, place in {**self.places, **other.places}.items() if index in kept}
        self.shards = tuple(sorted(self.shards + other.shards))
        self.field = self.field if self.field is not None else other.field
        return self

    def save(self, path):
        """Writes the state to an `.npz` file (no pickle), atomically (`utils.base.files.save_arrays`).

        The file holds the tracker's arrays (`TopActivations.to_arrays`, so `TopActivations.load` reads it) and
        the state's own (`to_arrays`: named `state_*` and `run_*`; `state_places`, int64 `[kept images, 6]` in the
        order of `image_indices`, only where the state has places; `run_bottom_k` only where not 0).
        """
        save_arrays(path, self.to_arrays())

    def to_arrays(self):
        """The state as named arrays: the tracker's, the field's (`state_field_*`), its names (of the images of the
        tracker and of its `weakest`, by index) and its run's."""
        kept = self.tracker.all_kept_image_indices
        field = self.field.to_arrays() if self.field is not None else {
            'recfield': np.zeros((0, 0, 4), np.int64), 'image_size': np.zeros(2, np.int64)}
        arrays = {
            **self.tracker.to_arrays(),
            'state_version': STATE_VERSION,
            'state_layer': np.str_(self.layer),
            'state_image_ids': np.array([self.image_ids[int(index)] for index in kept], dtype=np.str_)
            if len(kept) else np.zeros(0, np.str_),
            'state_num_channels': self.num_channels,
            'state_shards': np.array(self.shards, np.int64),
            'state_draw_channels': self.draw_channels,
            **{f'state_field_{key}': value for key, value in field.items()},
        }
        if self.places is not None:
            top = self.tracker.kept_image_indices
            arrays['state_places'] = np.array([self.places[int(index)] for index in top], np.int64).reshape(
                len(top), len(PLACE_COLUMNS))
        for key in RUN_FIELDS:
            value = self.run[key]
            if key in RUN_DEFAULTS and value == RUN_DEFAULTS[key]:
                continue
            arrays[f'run_{key}'] = np.array(value, dtype=np.str_) if isinstance(value, (str, tuple)) else value
        return arrays

    @classmethod
    def load(cls, path):
        """Reads a state written by `save` (`utils.base.files.load_arrays`, then `from_arrays`), checked.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not a state (or of another version), or a damaged one.
        """
        return cls.from_arrays(load_arrays(path, 'a state of a sharded scan'), path)

    @classmethod
    def from_arrays(cls, arrays, source):
        """A state from the arrays of `to_arrays`, checked (`check`).

        Args:
            arrays: dict from name to array.
            source: where they come from (a file), for errors.

        Raises:
            ValueError: the arrays are not a state (or of another version), or a damaged one.
        """
        tracker = TopActivations.from_saved(arrays, source, 'a state of a sharded scan')
        try:
            version = int(arrays['state_version'])
            if version != STATE_VERSION:
                raise ValueError(f'{source} is a state of version {version}; this code reads version '
                                 f'{STATE_VERSION}. Scan again with this version.')
            boxes = arrays['state_field_recfield']
            try:
                field = ReceptiveField.from_arrays(boxes, arrays['state_field_image_size'],
                                                   arrays.get('state_field_local', False)) if boxes.size else None
            except ValueError as error:
                raise ValueError(f'{source}: its receptive field is damaged ({error})') from error
            image_ids = arrays['state_image_ids'].tolist()
            if len(image_ids) != len(tracker.all_kept_image_indices):
                raise ValueError(f'{source}: it names {len(image_ids)} images but keeps '
                                 f'{len(tracker.all_kept_image_indices)}; the file is damaged.')
            ids = dict(zip(tracker.all_kept_image_indices.tolist(), image_ids))
            saved = {**{f'run_{key}': np.array(value) for key, value in RUN_DEFAULTS.items()}, **arrays}
            run = {key: saved[f'run_{key}'] for key in RUN_FIELDS}
            run = {key: tuple(value.tolist()) if value.ndim else value.item() for key, value in run.items()}
            places = arrays.get('state_places')
            if places is not None:
                top = tracker.kept_image_indices.tolist()  # the weakest lists have no places
                if places.shape != (len(top), len(PLACE_COLUMNS)) or not np.issubdtype(places.dtype, np.integer):
                    raise ValueError(f'{source}: its places are {places.dtype} of shape {places.shape}, not whole '
                                     f'numbers [{len(top)}, {len(PLACE_COLUMNS)}]; the file is damaged.')
                places = dict(zip(top, places.tolist()))
            state = cls(str(arrays['state_layer']), tracker, ids, field, int(arrays['state_num_channels']), run,
                        arrays['state_shards'].tolist(), int(arrays['state_draw_channels']), source, places)
        except KeyError as error:
            raise ValueError(f'{source} is not a state of a sharded scan (it has no {error}); states are written by '
                             'the *_activations.py scripts with --num_shards and --shard_index.') from error
        except (ValueError, TypeError) as error:  # numpy's own words (a bad number) do not name the file
            raise ValueError(error if str(source) in str(error) else f'{source}: {error}') from error
        state.check()
        return state

    def check(self):
        """Checks that the tracker's arrays (and its `weakest` lists') fit together, its firings are finite, its
        feature coordinates lie in the receptive field's map, and every kept image is there with its name.

        Raises:
            ValueError: naming `source` and what is wrong.
        """
        tracker = self.tracker
        channels = self._check_lists(tracker)
        weakest = tracker.weakest
        if (0 if weakest is None else weakest.num_samples) != self.run['bottom_k'] or weakest is not None and (
                weakest.num_seen != tracker.num_seen or self._check_lists(weakest) != channels):
            raise ValueError(f'{self.source}: its lists of the weakest images do not fit its run (--bottom_k '
                             f'{self.run["bottom_k"]}) or its top lists; the file is damaged.')
        if tracker.num_samples != self.run['candidates']:
            raise ValueError(f'{self.source}: its tracker keeps {tracker.num_samples} images per channel, its run '
                             f'{self.run["candidates"]}; the file is damaged.')
        if self.places is not None:
            unplaced = sorted(set(np.unique(tracker.indices).tolist()) - set(self.places))
            rows = np.array(list(self.places.values()), np.int64).reshape(-1, len(PLACE_COLUMNS))
            if unplaced or (rows[:, [0, 1, 2]] < 0).any() or (rows[:, [3, 4]] < 1).any() or (
                    ~np.isin(rows[:, 5], (0, 1))).any():
                raise ValueError(f'{self.source}: some kept images have no place, or places that are not places in a '
                                 'photograph; the file is damaged.')
        statistics = tracker.statistics
        if statistics.num_images != tracker.num_seen or (tracker.num_seen and statistics.num_channels != channels):
            raise ValueError(f'{self.source}: its statistics are of {statistics.num_images} images and '
                             f'{statistics.num_channels} channels, its top lists of {tracker.num_seen} images and '
                             f'{channels} channels; the file is damaged.')
        num_shards = self.run['num_shards']
        if not isinstance(num_shards, int) or num_shards < 1 or not self.shards or not all(
                0 <= shard < num_shards for shard in self.shards):
            raise ValueError(f'{self.source}: it holds shards {_text(self.shards) or "(none)"} of {num_shards}; the '
                             'file is damaged.')
        if self.layer not in self.run['layers']:
            raise ValueError(f'{self.source}: its layer {self.layer} is not among its run\'s layers '
                             f'({_text(self.run["layers"])}); the file is damaged.')
        if self.draw_channels < 0:
            raise ValueError(f'{self.source}: it says to draw {self.draw_channels} channels; the file is damaged.')
        for shape, dtype in tracker.kept_image_kinds:
            if dtype != np.uint8 or len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 3)):
                raise ValueError(f'{self.source}: its images are {_kind_text((shape, dtype))}, not uint8 grey or '
                                 'colour images; the file is damaged.')
        if self.field is not None:
            _check_image_size(self, self.field)

    def _check_lists(self, tracker):
        """`check` of the arrays of the state's tracker or of its `weakest`; returns their channel count."""
        channels, kept = tracker.firings.shape if tracker.firings.ndim == 2 else (-1, -1)
        if (tracker.firings.ndim != 2 or tracker.indices.shape != (channels, kept)
                or tracker.coords.shape != (channels, kept, 2) or kept > tracker.num_samples
                or (tracker.num_seen and channels != self.num_channels)):
            raise ValueError(f'{self.source}: its arrays do not fit together (firings {tracker.firings.shape}, '
                             f'indices {tracker.indices.shape}, coords {tracker.coords.shape}, '
                             f'{self.num_channels} channels); the file is damaged.')
        if not np.isfinite(tracker.firings).all():
            raise ValueError(f'{self.source}: some firings are NaN or infinite; the file is damaged.')
        if self.field is not None and kept and ((tracker.coords < 0).any() or (
                tracker.coords >= np.array(self.field.feature_shape)).any()):
            raise ValueError(f'{self.source}: some feature coordinates lie outside the {self.field.feature_shape} '
                             'feature map; the file is damaged.')
        missing = sorted(set(np.unique(tracker.indices).tolist()) - set(self.image_ids))
        if tracker.keeps_images and missing:
            raise ValueError(f'{self.source}: image {missing[0]} is kept but not stored; the file is damaged.')
        if tracker.num_seen < 0 or (tracker.indices.size and tracker.indices.min() < 0):
            raise ValueError(f'{self.source}: it counts {tracker.num_seen} images seen, or keeps negative image '
                             'indices; the file is damaged.')
        return channels


def _check_image_size(state, field):
    """Raises ValueError, naming the state, if its kept images are not of the size `field` was measured on (the
    boxes of the pictures would not fit them)."""
    for shape, dtype in state.tracker.kept_image_kinds:
        if tuple(shape[:2]) != (field.height, field.width):
            raise ValueError(f'{state.source}: its images of {state.layer} are {_kind_text((shape, dtype))}, but '
                             f'its receptive field is of {field.height}x{field.width} images; the '
                             'states do not belong together, or the file is damaged.')


def _kind_text(kind):
    """`32x32x3 uint8` for a `(shape, dtype)`."""
    shape, dtype = kind
    return f'{"x".join(map(str, shape))} {np.dtype(dtype).name}'


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


def draw_states(states, out_dir, num_channels=None, tensorboard_dir=None, heatmaps=None, explain=None):
    """For every state: prints its `describe_layer` line and writes its `-full`/`-crop` pictures.

    Args:
        states: merged `ShardState`s of one run.
        out_dir: an existing folder.
        num_channels: `--num_channels` (see `utils.pictures.drawing.channels_to_draw`); None for the run's.
        tensorboard_dir, heatmaps, explain: see `utils.pictures.drawing.draw_layers` (heatmaps and explanations need
            the run's model and dataset: `--states` of an example script, `--dask_scheduler`).
    """
    def described():
        for state in states:
            if state.field is None:
                logger.warning('no receptive field of %s: shard 0 of %d, which measures the receptive fields, is '
                               'missing; it is not drawn.', state.layer, state.run['num_shards'])
                continue
            print(state.describe(), flush=True)
            yield state.layer, state.field, state.tracker

    if states:
        layers, record = described(), None
        if states[0].places is not None:
            places = {index: place for state in states for index, place in state.places.items()}
            layers, record = distinct_layers(layers, places, states[0].run['num_samples'])
        draw_layers(layers, out_dir, states[0].draw_channels if num_channels is None else num_channels,
                    tensorboard_dir, {index: name for state in states for index, name in state.image_ids.items()},
                    heatmaps, explain, record)
