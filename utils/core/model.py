"""What the pipeline runs: a `Model`, the interface every kind of model plugs into (a TF1 session, a Keras file,
anything with a forward function), and the `Example` that opens one from a script's flags.

A `Model` runs a float32 batch and returns the chosen layers' feature maps; it knows the layers' names and channel
counts, the input shape of the receptive-field probes, the range of values the network takes, and whether it takes
batches of any size. What a forward function returns is checked here, once, for every kind of model
(`utils.probing.contract`).
"""

import collections
import contextlib
import hashlib
import os

import numpy as np

from utils.base.files import digest_files
from utils.probing.attribution import unit_values
from utils.probing.contract import checked_map, takes_layers_keyword, what_came_back

# Name scope of the ops the tool adds to a TensorFlow graph for the chosen layers (their channels' maxima,
# `utils.models.tf_session.session_forward_funcs`): not part of the network, so not of its fingerprint.
TOOL_SCOPE = 'strongest_conv_activations/'
# Added to the fingerprint of a model whose probes hold its global poolings (`Model.local_forward_func`): its
# fields are local ones, never to be mixed with whole ones in the receptive-field cache.
HELD = ', global poolings held'
PROBE_BATCH_SIZE = 16  # probe images per forward call, whatever batch size the scan uses: memory stays small


def probe_shape(batch_size, height, width, channels=3):
    """`Model.imshape` for a network that takes batches of any size: `[min(batch_size, PROBE_BATCH_SIZE),
    height, width, channels]` (a large scan batch would make every probe batch as large)."""
    return [min(int(batch_size), PROBE_BATCH_SIZE), int(height), int(width), int(channels)]


Layer = collections.namedtuple('Layer', 'name num_channels')
Layer.__doc__ = 'A chosen layer as the pipeline sees it: its tensor name and its number of channels.'

Example = collections.namedtuple('Example', 'name open_model open_dataset')
Example.__doc__ = """An example as shards and Dask workers open it from its script's flags: its name,
`open_model(args)` returning a `Model` of the `--layers`, and `open_dataset(args, model)` returning its `Dataset`
(module-level functions, so that a Dask task can carry them)."""


class Model:
    """A network as the pipeline runs it.

    Attributes:
        forward_func: function from a float32 batch `imshape` (or with fewer images) to a list of feature
            maps `[batch, h, w, channels]`, one per layer. If it takes a keyword `layers`, it is also called
            with a sublist of the layer objects given here, and must then return only their maps: receptive
            fields of a shallow layer then run only the part of the network that layer needs.
        layers: list of `Layer`.
        imshape: `[batch_size, height, width, channels]` of the receptive-field probe batches.
        value_range: `(low, high)` of the values the network takes (see `recfield.ReceptiveField`).
        model_id: what tells two runs of the same model apart from others (`model_id`), or ''.
        maxima_forward_func: None, or a function from a batch to a list of `(feature map, maxima)`, one per
            layer: the maps as `forward_func` gives them and their exact maxima `[batch, channels]`, computed by
            the network (`utils.models.tf_session.channel_maxima`). The scan uses it when given: numpy then reads a map
            again only where an image enters a channel's top list.
        any_batch_size: whether `forward_func` takes batches of any size up to `imshape[0]`: receptive-field
            probes then send a round's last batch short instead of filling it with reference images.
        local_forward_func: None, or `forward_func` of the network with the outputs of its global poolings held
            at fixed values (squeeze-and-excitation gates and the like). Receptive-field probes run it when
            given: the fields of `local_layers` are then local (`recfield.ReceptiveField.local`), the pixels that
            reach them other than through a global pooling (through one, the whole image does).
        local_layers: indices of the layers a global pooling reaches.
        gradient_func: None (a model that runs forward only), or a function `(batch, layer index, units)` giving
            the gradient of each image's unit with respect to that image, float32 `[len(batch), height, width,
            channels]`; `units` is int `[len(batch), 3]` of `(y, x, channel)` in the layer's map, the channel
            `utils.probing.attribution.ALL_CHANNELS` for the mean over its channels (`--attribution gradients`,
            `--erf`).
    """

    def __init__(self, forward_func, layers, imshape, value_range, model_id='', close=None, fingerprint=None,
                 maxima_forward_func=None, any_batch_size=False, local_forward_func=None, local_layers=(),
                 gradient_func=None):
        """Args:
            forward_func, imshape, value_range, model_id, maxima_forward_func, any_batch_size,
                local_forward_func, local_layers, gradient_func: see the attributes.
            layers: objects with a `name` and a 4-D `shape` whose last entry is the channel count (TensorFlow
                tensors, Keras outputs), or `Layer`s; given back to `forward_func` as its `layers` keyword.
            close: function releasing the model (a session's `close`), called by `close()`.
            fingerprint: what identifies the network's structure and weights for the receptive-field cache
                (see `fingerprint()`); by default that of the layers' TensorFlow graph, if they have one.

        Raises:
            ValueError: a layer whose channel count is unknown.
        """
        self._fingerprint = fingerprint
        self.forward_func = forward_func
        self._layer_objects = list(layers)
        self.layers = [layer if isinstance(layer, Layer) else _as_layer(layer) for layer in self._layer_objects]
        self.imshape = list(imshape)
        self.value_range = tuple(value_range)
        self.model_id = model_id
        self.maxima_forward_func = maxima_forward_func
        self.any_batch_size = any_batch_size
        self._close = close
        self.local_forward_func = local_forward_func
        self.local_layers = frozenset(int(index) for index in local_layers)
        self.gradient_func = gradient_func
        # Whether each function takes a keyword `layers`, told once from its signature (not on every batch).
        self._selects_layers = {function: takes_layers_keyword(function)
                                for function in (forward_func, local_forward_func) if function is not None}

    @property
    def layer_names(self):
        return [layer.name for layer in self.layers]

    def run(self, batch):
        """All layers' feature maps of a batch, checked: a list of arrays `[len(batch), h, w, channels]`.

        Raises:
            ValueError: `forward_func` returned something else.
        """
        maps = self._one_per_layer(self.forward_func(batch), 'forward_func', 'feature maps',
                                   ', e.g. lambda x: session.run(layers, feed_dict={images: x})')
        return [self._checked_map(layer, feature_map, len(batch), 'forward_func')
                for layer, feature_map in zip(self.layers, maps)]

    def run_with_maxima(self, batch):
        """All layers' `(feature map, maxima)` of a batch from `maxima_forward_func`, checked.

        Raises:
            ValueError: `maxima_forward_func` returned something else.
        """
        pairs = self._one_per_layer(self.maxima_forward_func(batch), 'maxima_forward_func',
                                    '(feature map, maxima) pairs', '')
        checked = []
        for layer, (feature_map, maxima) in zip(self.layers, pairs):
            maxima = np.asarray(maxima)
            if maxima.shape != (len(batch), layer.num_channels):
                raise ValueError(f'maxima_forward_func returned maxima of shape {maxima.shape} for {layer.name}; '
                                 f'expected [{len(batch)}, {layer.num_channels}].')
            checked.append((self._checked_map(layer, feature_map, len(batch), 'maxima_forward_func'), maxima))
        return checked

    def _one_per_layer(self, result, function, what, example):
        """`result` if it is a list or tuple of one value per layer, else a ValueError saying what `function`
        must return (a list of `what`, one per layer; `example`)."""
        if not isinstance(result, (list, tuple)) or len(result) != len(self.layers):
            raise ValueError(f'{function} returned {what_came_back(result)}; it must return a list of '
                             f'{len(self.layers)} {what}, one per layer{example}.')
        return result

    @staticmethod
    def _checked_map(layer, feature_map, batch_size, function):
        return checked_map(feature_map, function, batch_size, layer.name, layer.num_channels)

    def maps_of(self, batch, indices, function=None):
        """The maps of the layers `indices` only, in that order, from `function` (default `forward_func`): the
        network runs only what they need when it takes a keyword `layers`, else all layers run and these are
        picked."""
        function = self.forward_func if function is None else function
        selects = self._selects_layers.get(function)
        if selects is None:  # a function given here only
            selects = takes_layers_keyword(function)
        if selects:
            return function(batch, layers=[self._layer_objects[index] for index in indices])
        maps = function(batch)
        return [maps[index] for index in indices]

    def forward_func_for(self, indices):
        """A forward function returning the maps of the layers `indices` only, in that order (`maps_of`)."""
        indices = list(indices)
        return lambda batch: self.maps_of(batch, indices)

    def probe_forward_func(self, indices):
        """The forward function `recfield.measure_receptive_fields` takes for the layers `indices`: it returns
        their maps, or with a keyword `layers` (positions in `indices`) only those, so that probes serving
        shallow layers only do not run the deep ones. It runs `local_forward_func` where the model has one."""
        indices = list(indices)
        function = self.local_forward_func or self.forward_func

        def forward(batch, layers=range(len(indices))):
            return self.maps_of(batch, [indices[position] for position in layers], function)
        return forward

    def unit_values_func(self, index):
        """`values(batch, units)` of the layer `index` (`utils.probing.attribution`): each image's unit, from the
        maps of that layer only (`maps_of`)."""
        layer = self.layers[index]

        def values(batch, units):
            feature_map = self._checked_map(layer, self.maps_of(batch, [index])[0], len(batch), 'forward_func')
            return unit_values(feature_map, units)
        return values

    def unit_gradients_func(self, index):
        """`gradients(batch, units)` of the layer `index` (`utils.probing.attribution`) from `gradient_func`,
        checked.

        Raises:
            ValueError: the model has no `gradient_func`, or it returned something else than one gradient per image.
        """
        if self.gradient_func is None:
            raise ValueError('this model runs forward only and gives no gradients; use --attribution occlusion.')

        def gradients(batch, units):
            result = np.asarray(self.gradient_func(batch, index, units))
            if result.shape != np.shape(batch):
                raise ValueError(f'gradient_func returned {what_came_back(result)} for {self.layers[index].name}; it '
                                 f'must return one gradient per image, of the batch\'s shape {list(np.shape(batch))}.')
            return result
        return gradients

    def fingerprint(self):
        """A SHA-256 of what the receptive fields depend on, or None when it is not known (no caching).

        Unless given to the constructor: the layers' TensorFlow graph (`graph.as_graph_def()`, serialised
        deterministically): its structure, and the weights it holds as constants or, where they are fed to
        variables, their digest (`utils.models.tf_session.FedWeights`: VGG16's graph, frozen graphs), so that a changed
        graph never reuses a field measured on another. Variables restored from a checkpoint are not part of it
        (see `utils.core.recfield_cache`). A model whose probes hold its global poolings (`local_forward_func`)
        adds `HELD`: its fields are local ones, never to be mixed with whole ones in the cache.
        """
        if self._fingerprint is None:
            graph = getattr(self._layer_objects[0], 'graph', None)
            if graph is None or not hasattr(graph, 'as_graph_def'):
                return None
            graph_def = graph.as_graph_def()
            # What the tool adds for the chosen layers is left out: any choice of layers of one network hits.
            network = [node for node in graph_def.node if not node.name.startswith(TOOL_SCOPE)]
            del graph_def.node[:]
            graph_def.node.extend(network)
            self._fingerprint = 'graph sha256:' + hashlib.sha256(graph_def.SerializeToString(deterministic=True)
                                                                 ).hexdigest()
        return self._fingerprint + (HELD if self.local_forward_func is not None else '')

    def close(self):
        if self._close is not None:
            self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def model_id(example, paths):
    """`<example> <file names> sha256:<first 16 hex digits>`, over the contents of `paths` in order.

    The same model files give the same id on every machine (`Model.model_id`).
    """
    return f'{example} {"+".join(os.path.basename(path) for path in paths)} sha256:{digest_files(paths)[:16]}'


def _as_layer(tensor):
    shape = tuple(tensor.shape)
    channels = shape[-1] if len(shape) == 4 else None
    if channels is None:
        raise ValueError(f'layer {tensor.name} has shape {shape}; a layer must be a feature map [batch, height, '
                         'width, channels] with a known number of channels.')
    return Layer(str(tensor.name), int(channels))


@contextlib.contextmanager
def closed_on_error(session):
    """Closes `session` (anything with `close`) if the block raises: for functions that open a `Model`."""
    try:
        yield
    except BaseException:
        session.close()
        raise


def held_where_reached(held_func, forward_func, pools, layers):
    """A `Model.local_forward_func`: the maps of the layers from `held_func` (the network with its global poolings
    held at fixed values), but those of the poolings themselves (`pools`, names) from `forward_func` (held, they
    would not change at all).

    Args:
        held_func, forward_func: forward functions taking a keyword `layers` (objects with a `name`).
        pools: names of the global poolings' outputs; layers: the model's layers.
    """
    def local_forward_func(batch, layers=layers):
        held = [layer for layer in layers if layer.name not in pools]
        free = [layer for layer in layers if layer.name in pools]
        maps = dict(zip((layer.name for layer in held), held_func(batch, layers=held) if held else []))
        maps.update(zip((layer.name for layer in free), forward_func(batch, layers=free) if free else []))
        return [maps[layer.name] for layer in layers]
    return local_forward_func
