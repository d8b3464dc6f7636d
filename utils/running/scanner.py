"""An example's model and dataset opened once, scanning any shard of the dataset: what a shard process and each
Dask worker run (`utils.running.shards`, `utils.running.dask_shards`).
"""

import hashlib
import threading

from utils.core import pipeline
from utils.core.model import closed_on_error
from utils.core.states import ShardState
from utils.running.cli import recfield_cache


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
        with closed_on_error(self.model):
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
                'num_samples': self.args.num_samples, 'bottom_k': self.args.bottom_k,
                'candidates': pipeline.candidates(self.dataset, self.args.num_samples, self.args.candidates_per_sample),
                'layers': tuple(self.model.layer_names),
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
                                 print_line=print_lines, candidates_per_sample=self.args.candidates_per_sample,
                                 bottom_k=self.args.bottom_k)
        fields = self.fields(print_lines) if fields and shard_index == 0 else {}
        run = self.run_values(num_shards)
        states = []
        for number, (layer, tracker) in enumerate(zip(self.model.layers, trackers)):
            kept = tracker.kept_image_indices.tolist()
            image_ids = {index: self.dataset.ids[index] for index in tracker.all_kept_image_indices.tolist()}
            places = None if self.dataset.places is None else {index: self.dataset.places[index] for index in kept}
            states.append(ShardState(layer.name, tracker, image_ids, fields.get(number), layer.num_channels, run,
                                     [shard_index], self.args.num_channels, f'shard {shard_index} of {num_shards}',
                                     places))
        return states
