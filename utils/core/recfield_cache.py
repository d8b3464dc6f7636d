"""Receptive fields measured once: stored per model, layer and probe setting, reused by later runs.

A field depends on the network's structure and the probe images, not on the data, so every script keeps
what it measures under `--recfield_cache` (default `~/.cache/strongest_conv_activations`, or under
`$XDG_CACHE_HOME`) and later runs of the same model and settings spend no probe images. An entry is one
`.npz` file of plain arrays (no pickle), named by a SHA-256 of its key: the model's fingerprint (see
`utils.core.model.Model.fingerprint`), the layer, the probe image shape, the value range and `METHOD_VERSION`.
The fingerprint of a TensorFlow graph covers its structure and the weights it holds as constants, or their
SHA-256 where they are fed to variables (`utils.models.tf_session.FedWeights`: VGG16's graph, frozen graphs);
weights restored from a checkpoint are not in it, so retrained weights reuse the fields of the same network
(boxes follow the architecture; only units dead under one set of weights and not the other could tell them
apart).
An entry that cannot be read, or whose stored key or arrays do not match, is ignored with a warning and
measured again: its arrays' headers are checked before any data is read (`utils.base.files.load_arrays`), its
boxes must be an int array `[feat_h, feat_w, 4]` inside its image, and its image size that of the key's probe
images. Whether the boxes are right cannot be told from the file; the caller checks the feature-map size
(`utils.core.pipeline.measure_receptive_fields`).
"""

import hashlib
import json
import logging
import os

import numpy as np

from recfield import ReceptiveField
from utils.base.files import load_arrays, remove_stale_temporaries, save_arrays

logger = logging.getLogger(__name__)

# Bump when the way fields are measured changes what they hold: older entries then stop matching.
# 2: changes are told from float32 rounding (fields measured bit for bit on an AVX2 CPU could be too large).
METHOD_VERSION = 2
CACHE_NAME = 'strongest_conv_activations'


def default_dir():
    """`$XDG_CACHE_HOME/strongest_conv_activations`, or `~/.cache/strongest_conv_activations`."""
    root = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(root, CACHE_NAME)


class RecfieldCache:
    """A folder of measured receptive fields.

    Attributes:
        folder: where the entries are (created when the first one is saved).
    """

    def __init__(self, folder):
        self.folder = folder
        self._warned_unwritable = False

    @staticmethod
    def key(fingerprint, layer_name, image_shape, value_range):
        """The text that identifies one field: what it was measured on and how (JSON, sorted keys)."""
        return json.dumps({'method': METHOD_VERSION, 'model': fingerprint, 'layer': layer_name,
                           'image_shape': [int(value) for value in image_shape],
                           'value_range': [float(value) for value in value_range]}, sort_keys=True)

    def path(self, key):
        """The entry's file: `<folder>/<sha256 of key>.npz`."""
        return os.path.join(self.folder, hashlib.sha256(key.encode()).hexdigest() + '.npz')

    def load(self, key):
        """The field stored under `key`, or None when there is none or it cannot be trusted (warned).

        Returns:
            a `recfield.ReceptiveField` or None.
        """
        path = self.path(key)
        if not os.path.isfile(path):
            return None
        try:
            arrays = load_arrays(path, 'a receptive-field cache entry')
            stored_key = str(arrays['key'])
            if stored_key != key:
                raise ValueError(f'it was stored for {stored_key}')
            field = ReceptiveField.from_arrays(arrays['recfield'], arrays['image_size'], arrays.get('local', False))
            # A field of other images than the probes would fail only when drawn, after the whole scan.
            height, width = json.loads(key)['image_shape'][:2]
            if (field.height, field.width) != (height, width):
                raise ValueError(f'its field is of {field.height}x{field.width} images, the key\'s probe images are '
                                 f'{height}x{width}')
            return field
        except (KeyError, ValueError, TypeError, OSError) as error:
            logger.warning('ignoring receptive-field cache entry %s (%s); measuring again.', path, error)
            return None

    def save(self, key, field):
        """Stores `field` under `key`, atomically; a folder that cannot be written is warned about, not fatal."""
        path = self.path(key)
        try:
            os.makedirs(self.folder, exist_ok=True)
            remove_stale_temporaries(self.folder)
            save_arrays(path, {'key': np.str_(key), **field.to_arrays()})
        except OSError as error:
            if not self._warned_unwritable:  # once, not once per layer
                self._warned_unwritable = True
                logger.warning('cannot write the receptive-field cache %s (%s); the next run measures again.',
                               self.folder, error.strerror or error)
