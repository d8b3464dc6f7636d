"""Why a unit fires: how much each input pixel contributes to one unit's value (a channel at a feature pixel),
and the effective receptive field of a layer (Luo et al., NIPS 2016: where its field really carries weight).

Everything here is numpy over one of two functions of a layer, each image of a batch with its own unit
`(y, x, channel)` (`ALL_CHANNELS`: the mean over the layer's channels):

    values(batch, units) -> [n]                 the units' values (forward passes only: any model)
    gradients(batch, units) -> [n, h, w, c]     each unit's gradient with respect to its own image

A method (`Occlusion`, `GradientTimesInput`, `IntegratedGradients`, `AbsoluteGradient`) turns one task (an
image, its unit and a box of the image) into input images and their outputs into an attribution;
`attribute_tasks` streams many tasks through the function in full batches.
"""

import collections
import math

import numpy as np

ALL_CHANNELS = -1  # a unit's channel that stands for the mean over every channel of the layer
METHODS = ('occlusion', 'gradients', 'integrated_gradients')  # `--attribution`
GRADIENT_METHODS = ('gradients', 'integrated_gradients')
DEFAULT_IG_STEPS = 32
SHARES = (0.5, 0.9)  # of an effective receptive field's mass, for the boxes reported (`mass_box_sides`)

Task = collections.namedtuple('Task', 'key image unit box')
Task.__doc__ = """One attribution to compute: `key` names it, `image` is the network input `[h, w, c]`, `unit` its
`(y, x, channel)`, `box` the `[y1, x1, y2, x2]` (end-exclusive) of the image it is reported on."""


def unit_values(feature_maps, units):
    """The value of each image's unit: `feature_maps[i, y, x, channel]`, or the mean over the channels where the
    unit's channel is `ALL_CHANNELS`.

    Args:
        feature_maps: `[n, h, w, channels]`.
        units: int `[n, 3]` of `(y, x, channel)`.

    Returns:
        float64 `[n]`.
    """
    units = np.asarray(units, np.int64)
    rows = np.arange(len(units))
    pixels = np.asarray(feature_maps, np.float64)[rows, units[:, 0], units[:, 1]]  # [n, channels]
    return np.where(units[:, 2] >= 0, pixels[rows, np.maximum(units[:, 2], 0)], pixels.mean(axis=1))


def reference_image(shape, value_range):
    """The reference of every method, the input the probes of the receptive fields start from: a uniform grey
    in the middle of the network's value range, float32 `shape`."""
    low, high = value_range
    return np.full(shape, (low + high) / 2, np.float32)


def window_starts(start, stop, window, stride):
    """Where windows of `window` pixels, `stride` apart, begin so that they cover `[start, stop)`: from `start`,
    the last one ending at `stop` (one window, as long as the range, where the range is shorter). A stride longer
    than the window is shortened to it: it would leave pixels that no window covers."""
    if stop - start <= window:
        return [start]
    starts = list(range(start, stop - window + 1, min(stride, window)))
    if starts[-1] != stop - window:
        starts.append(stop - window)
    return starts


def default_window(box):
    """The occlusion window of a box: a quarter of its longer side (at least 1 pixel), so that a few dozen
    windows cover it at half a window apart."""
    return max(1, round(max(box[2] - box[0], box[3] - box[1]) / 4))


class Occlusion:
    """Occlusion (Zeiler & Fergus 2014): a window of the reference value slides over the box, every colour
    channel at once, and each pixel gets the mean drop of the unit's value over the windows that cover it."""

    uses_gradients = False

    def __init__(self, reference, window=None, stride=None, absolute=False):
        """Args:
            reference: the reference image `[h, w, c]`: what a window puts in place of the pixels.
            window, stride: the window's side and the step between windows, in pixels (at most the window:
                `window_starts`); None: `default_window` of each box, and half the window.
            absolute: attribute the size of each change, not its sign (for effective receptive fields).
        """
        self.reference, self.window, self.stride, self.absolute = reference, window, stride, absolute

    def _windows(self, box):
        window = self.window or default_window(box)
        stride = self.stride or max(1, window // 2)
        y1, x1, y2, x2 = (int(value) for value in box)
        rows = [(top, min(top + window, y2)) for top in window_starts(y1, y2, window, stride)]
        columns = [(left, min(left + window, x2)) for left in window_starts(x1, x2, window, stride)]
        return [(row, column) for row in rows for column in columns]

    def count(self, task):
        """How many input images the task runs: the image and one per window."""
        return 1 + len(self._windows(task.box))

    def inputs(self, task):
        yield task.image
        for (top, bottom), (left, right) in self._windows(task.box):
            occluded = task.image.copy()
            occluded[top:bottom, left:right] = self.reference[top:bottom, left:right]
            yield occluded

    def combine(self, task, outputs):
        y1, x1, y2, x2 = (int(value) for value in task.box)
        total = np.zeros((y2 - y1, x2 - x1), np.float64)
        covered = np.zeros_like(total)
        for ((top, bottom), (left, right)), value in zip(self._windows(task.box), outputs[1:]):
            change = outputs[0] - value
            total[top - y1:bottom - y1, left - x1:right - x1] += abs(change) if self.absolute else change
            covered[top - y1:bottom - y1, left - x1:right - x1] += 1
        return (total / np.maximum(covered, 1)).astype(np.float32)


class GradientTimesInput:
    """The unit's gradient times the image's difference from the reference, summed over colour channels: the
    first-order share of each pixel in `f(image) - f(reference)` (gradient x input where the reference is 0)."""

    uses_gradients = True

    def __init__(self, reference):
        self.reference = reference

    def count(self, task):
        return 1

    def inputs(self, task):
        yield task.image

    def combine(self, task, outputs):
        return _in_box((outputs[0] * (task.image - self.reference)).sum(axis=-1), task.box)


class IntegratedGradients:
    """Integrated gradients (Sundararajan et al. 2017) from the reference to the image: the mean gradient at the
    midpoints of `steps` equal steps along the straight path, times the image's difference from the reference,
    summed over colour channels. The attributions of the whole image sum to `f(image) - f(reference)` up to the
    error of the `steps`-point rule."""

    uses_gradients = True

    def __init__(self, reference, steps=DEFAULT_IG_STEPS):
        if steps < 1:
            raise ValueError(f'integrated gradients need at least 1 step, got {steps}.')
        self.reference, self.steps = reference, int(steps)

    def count(self, task):
        return self.steps

    def inputs(self, task):
        difference = task.image - self.reference
        for step in range(self.steps):
            yield (self.reference + (step + 0.5) / self.steps * difference).astype(np.float32)

    def combine(self, task, outputs):
        mean_gradient = np.mean(outputs, axis=0)
        return _in_box((mean_gradient * (task.image - self.reference)).sum(axis=-1), task.box)


class AbsoluteGradient:
    """The size of the unit's gradient, summed over colour channels, over the whole image: what effective
    receptive fields average (`effective_receptive_field`)."""

    uses_gradients = True

    def count(self, task):
        return 1

    def inputs(self, task):
        yield task.image

    def combine(self, task, outputs):
        return np.abs(outputs[0]).sum(axis=-1).astype(np.float32)


def method_for(name, reference, ig_steps=DEFAULT_IG_STEPS, window=None, stride=None):
    """The method `name` (one of `METHODS`) with the reference image and its settings.

    Raises:
        ValueError: an unknown name, or `ig_steps` below 1.
    """
    if name == 'occlusion':
        return Occlusion(reference, window, stride)
    if name == 'gradients':
        return GradientTimesInput(reference)
    if name == 'integrated_gradients':
        return IntegratedGradients(reference, ig_steps)
    raise ValueError(f'unknown attribution method {name!r}; choose one of {", ".join(METHODS)}.')


def attribute_tasks(tasks, method, function, batch_size, fill=None, progress=None):
    """Runs tasks through a layer's function in batches of `batch_size` input images, and yields their
    attributions as each task's last input has run.

    Args:
        tasks: iterable of `Task`, read lazily (memory holds one batch of inputs and the outputs of the tasks
            under way).
        method: one of the methods above.
        function: the layer's `gradients(batch, units)` where `method.uses_gradients`, else its `values(batch,
            units)`.
        batch_size: input images per call.
        fill: None, or an image that fills the last batch up to `batch_size` (networks that take only batches of
            one size); its outputs are dropped.
        progress: None, or a function called with the number of input images after each call.

    Yields:
        `(task.key, attribution)` in the order of the tasks.
    """
    pending = collections.OrderedDict()  # task number -> [task, outputs]
    batch, owners = [], []

    def run():
        count = len(batch)
        inputs = batch + [fill] * (batch_size - count) if fill is not None else batch
        units = [pending[number][0].unit for number in owners] + [(0, 0, 0)] * (len(inputs) - count)
        outputs = function(np.stack(inputs), np.asarray(units, np.int64))
        for number, output in zip(owners, outputs[:count]):
            pending[number][1].append(np.asarray(output))
        batch.clear()
        owners.clear()
        if progress is not None:
            progress(count)

    def finished():
        while pending:
            number, (task, outputs) = next(iter(pending.items()))
            if len(outputs) < method.count(task):
                return
            del pending[number]
            yield task.key, method.combine(task, outputs)

    for number, task in enumerate(tasks):
        pending[number] = [task, []]
        for image in method.inputs(task):
            batch.append(np.asarray(image, np.float32))
            owners.append(number)
            if len(batch) == batch_size:
                run()
                yield from finished()
    if batch:
        run()
    yield from finished()


def _in_box(values, box):
    y1, x1, y2, x2 = (int(value) for value in box)
    return np.asarray(values[y1:y2, x1:x2], np.float32)


def mass_box_sides(erf, box, shares=SHARES):
    """The sides of the smallest boxes, centred in `box` (the exact field of the effective field's unit, shrunk
    by the same number of pixels on every side), that hold each share of the effective field's mass.

    Args:
        erf: `[h, w]`, non-negative, summing to 1.
        box: `[y1, x1, y2, x2]`.
        shares: fractions of the mass.

    Returns:
        list of `(height, width)`, one per share; the whole box where no smaller one holds the share.
    """
    y1, x1, y2, x2 = (int(value) for value in box)
    inside = np.pad(np.asarray(erf, np.float64)[y1:y2, x1:x2], ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    height, width = y2 - y1, x2 - x1
    sides = []
    for share in shares:
        best = (height, width)
        for shrink in range(1, math.ceil(min(height, width) / 2)):
            top, left, bottom, right = shrink, shrink, height - shrink, width - shrink
            mass = inside[bottom, right] - inside[top, right] - inside[bottom, left] + inside[top, left]
            if mass < share * (1 - 1e-9):
                break
            best = (bottom - top, right - left)
        sides.append(best)
    return sides
