"""The forward-function contract: what a function that runs the network must take and return.

A forward function takes a float32 batch `[batch, height, width, channels]` and returns feature maps
`[batch, feat_h, feat_w, feat_channels]`; one that takes a keyword `layers` can be asked for some layers only.
"""

import inspect

import numpy as np


def takes_layers_keyword(forward_func):
    """Whether `forward_func` takes a keyword `layers`, so that it can be asked for some layers' maps only (see
    `recfield.measure_receptive_fields`).

    Args:
        forward_func: any callable.

    Returns:
        bool; False for a callable without a signature (some builtins).
    """
    try:
        return 'layers' in inspect.signature(forward_func).parameters
    except (TypeError, ValueError):  # a callable without a signature (some builtins)
        return False


def what_came_back(result):
    """What a forward function returned, for errors.

    Args:
        result: the returned value.

    Returns:
        `'<n> values'` for a list or tuple, else the type's name.
    """
    return f'{len(result)} values' if isinstance(result, (list, tuple)) else type(result).__name__


def checked_map(result, function, batch_size, layer_name=None, num_channels=None):
    """One feature map a forward function returned, as an array, checked.

    Args:
        result: what the function returned for one layer (an array or anything numpy turns into one).
        function: the name of the function that returned it, for errors (e.g. `'forward_func'`).
        batch_size: how many images the batch had: the map must have one per image.
        layer_name: the layer's name, for errors; None leaves it out of them.
        num_channels: the channel count the map must have, or None for any.

    Returns:
        the feature map, a numeric array `[batch_size, feat_h, feat_w, channels]`.

    Raises:
        ValueError: not a numeric array, not 4-D, another batch size or another channel count.
    """
    for_layer = '' if layer_name is None else f' for {layer_name}'
    try:
        feature_map = np.asarray(result)
    except Exception as error:  # an object numpy cannot turn into an array
        raise ValueError(f'{function} returned {type(result).__name__}{for_layer}, not a feature map '
                         f'array: {error}') from error
    if feature_map.dtype == object or not np.issubdtype(feature_map.dtype, np.number):
        raise ValueError(f'{function} returned {type(result).__name__} of dtype {feature_map.dtype}{for_layer}; it '
                         'must return a numeric feature map [batch, height, width, channels].')
    if feature_map.ndim != 4:
        raise ValueError(f'{function} returned an array of shape {feature_map.shape}{for_layer}; it must return a '
                         '4-D feature map [batch, height, width, channels]. Pick a convolutional layer '
                         '(not a fully connected one) or reshape its output.')
    if feature_map.shape[0] != batch_size:
        of_layer = '' if layer_name is None else f' of {layer_name}'
        raise ValueError(f'{function} returned {feature_map.shape[0]} feature maps{of_layer} for a batch of '
                         f'{batch_size} images; it must return one per image, in order.')
    if num_channels is not None and feature_map.shape[3] != num_channels:
        raise ValueError(f'{function} returned a map of shape {feature_map.shape}{for_layer}; expected '
                         f'[{batch_size}, height, width, {num_channels}].')
    return feature_map
