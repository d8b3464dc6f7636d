"""The edge search: box edges of fields as large as the image, from prefix and suffix probes."""

import numpy as np

START, STOP = 0, 1  # the two edges of a box along one axis


class EdgeSearch:
    """Finds the box edges of one layer along one axis from "prefix" and "suffix" probes.

    A prefix probe lights lines `[0, t)`: a feature pixel changes exactly when its box starts before `t`. A
    suffix probe lights `[length - t, length)`: it changes exactly when the box stops after `length - t`. Both
    edges are searched as `edge < t` questions: the start itself, and `length - stop` for the stop. A change is
    proof (a lit line the pixel depends on), an unchanged probe only evidence (a masked probe looks the same),
    as everywhere in probing.

    Each feature pixel keeps the interval its edge lies in. Every round asks, for each distinct interval,
    either about a predicted edge (`t = e` and `t = e + 1`: two probes that pin the edge if the prediction is
    right) or, without a prediction in the interval, about its middle (bisection). Predictions follow the
    boxes' translation rule: the edges already found that no border clips (above 0) give the stride between
    feature lines (or image size over feature-map size, from one found edge); the stop of line `i` is
    predicted as the start of line `n - 1 - i` mirrored, which holds where the network is symmetric. Before
    any edge is found only the last feature line's start is bisected, whose box is the least clipped. So a
    layer costs about `log2(length)` probes plus two per distinct edge, however large its boxes.

    Unless `full`, "unchanged" may come from some references only (`observe(confirmed=False)`); the edges that
    rest on it are `unconfirmed` until `confirm`ed on the others. An interval that empties (observations that
    contradict each other) is searched again from scratch on all references where it rested on some only,
    and fails the search where it rested on all of them.
    """

    def __init__(self, axis, length, feature_shape, layer):
        self.axis, self.length, self.layer = axis, length, layer
        self.failed = False
        self.full = True  # every probe's "unchanged" stands on all references (see `observe`)
        lines = np.indices(feature_shape)[axis]  # each feature pixel's line along the axis
        num_lines = feature_shape[axis]
        # Per edge kind: index of the pixel's line (mirrored for stops, so that both edges grow with it), the
        # interval [low, high] of `start`, or of `length - stop`, and whether `low` stands on all references.
        self._index = (lines, num_lines - 1 - lines)
        self._num_lines = num_lines
        self._low = [np.zeros(feature_shape, np.int64) for _ in (START, STOP)]
        self._high = [np.full(feature_shape, length - 1, np.int64) for _ in (START, STOP)]
        self._confirmed = [np.ones(feature_shape, bool) for _ in (START, STOP)]
        self._responds = np.zeros(feature_shape, bool)  # changed by some probe: depends on the image
        self._silent = None  # after the whole-image probe: depends on no line at all

    def needs_whole_image_probe(self):
        return not self._responds.all()

    def observe(self, lines, changed, confirmed=True):
        """Takes in what a probe lighting `lines` (sorted) changed, a bool array `[feat_h, feat_w]`.

        Args:
            confirmed: whether the probe ran on every reference. If not, its "unchanged" counts only until the
                search is `full`, and the edges that rest on it are `unconfirmed` until `confirm`ed.
        """
        first, last = int(lines[0]), int(lines[-1])
        contiguous = last - first + 1 == len(lines)
        self._take_change(first, last, changed)
        if contiguous and first == 0 and last == self.length - 1:
            self._silent = ~changed
        elif confirmed or not self.full:
            # The box starts at or after the end of an unchanged prefix, stops at or before the start of an
            # unchanged suffix.
            kind, bound = (START, last + 1) if first == 0 else (STOP, self.length - first)
            if contiguous and (first == 0 or last == self.length - 1):
                raised = ~changed & (bound > self._low[kind])
                self._low[kind][raised] = bound
                self._confirmed[kind][raised] = confirmed
        self._check()

    def unconfirmed(self):
        """`{(kind, t)}`: the probes, unchanged on the references asked, that found edges rest on."""
        asked = set()
        for kind in (START, STOP):
            waiting = self._responds & ~self._confirmed[kind] & (self._low[kind] == self._high[kind])
            asked |= {(kind, int(t)) for t in np.unique(self._low[kind][waiting])}
        return asked

    def confirm(self, kind, t, changed):
        """Takes in what the edge-search probe `(kind, t)` changed on the references it had not run on."""
        lines = edge_lines(kind, t, self.length)
        self._take_change(int(lines[0]), int(lines[-1]), changed)
        resting = self._responds & ~self._confirmed[kind] & (self._low[kind] == t) & ~changed
        self._confirmed[kind][resting] = True
        self._check()

    def _take_change(self, first, last, changed):
        """A change is proof: the box reaches a lit line, which bounds both edges."""
        self._responds |= changed
        np.minimum(self._high[START], np.where(changed, last, self.length), out=self._high[START])
        np.minimum(self._high[STOP], np.where(changed, self.length - 1 - first, self.length), out=self._high[STOP])

    def _check(self):
        """An emptied interval resting on some references only is searched again on all of them (`full`);
        one resting on all references, or a pixel that changed although lighting everything did not, fails
        the search."""
        if self._silent is not None and (self._silent & self._responds).any():
            self.failed = True
        for kind in (START, STOP):
            emptied = (self._low[kind] > self._high[kind]) & self._responds
            if (emptied & self._confirmed[kind]).any():
                self.failed = True
            elif emptied.any():
                self._low[kind][emptied] = 0
                self._confirmed[kind][emptied] = True
                self.full = True

    def thresholds(self):
        """The probes this search asks for next: a set of `(kind, t)`, `kind` START (lines `[0, t)`) or STOP
        (lines `[length - t, length)`); empty when every edge is known."""
        if self.failed or self._silent is None and not self._responds.all():
            return set()
        found = [self._found_edges(kind) for kind in (START, STOP)]
        wanted = set()
        for kind in (START, STOP):
            open_pixels = self._responds & (self._low[kind] < self._high[kind])
            if not open_pixels.any():
                continue
            rule = _edge_rule(found[kind] if len(found[kind]) >= 2 else found[kind] | found[1 - kind],
                              self.length, self._num_lines)
            if rule is None and (kind == STOP and self._open_anywhere(START)):
                continue  # wait for the starts: a found start predicts the stops
            index, low, high = (array[open_pixels] for array in (self._index[kind], self._low[kind],
                                                                  self._high[kind]))
            if rule is None:  # bisect the interval of the highest line only
                anchor = index == index.max()
                index, low, high = index[anchor], low[anchor], high[anchor]
            for interval_low, interval_high in set(zip(low.tolist(), high.tolist())):
                in_interval = (low == interval_low) & (high == interval_high)
                predicted = set() if rule is None else {
                    edge for edge in np.unique(rule(index[in_interval])).tolist()
                    if interval_low <= edge <= interval_high}
                if predicted:
                    wanted |= {(kind, t) for edge in predicted for t in (edge, edge + 1)
                               if interval_low < t <= interval_high}
                else:
                    wanted.add((kind, (interval_low + interval_high + 1) // 2))
        return wanted

    def _open_anywhere(self, kind):
        return bool((self._responds & (self._low[kind] < self._high[kind])).any())

    def _found_edges(self, kind):
        """`{(line index, edge)}` of the pixels whose edge is known and clipped by no border (above 0)."""
        known = self._responds & (self._low[kind] == self._high[kind]) & (self._low[kind] > 0)
        return set(zip(self._index[kind][known].tolist(), self._low[kind][known].tolist()))

    def extents(self):
        """`(start, stop)` int arrays `[feat_h, feat_w]`, `(0, 0)` for pixels that depend on no line."""
        silent = ~self._responds
        start = np.where(silent, 0, self._low[START])
        stop = np.where(silent, 0, self.length - self._low[STOP])
        return start, stop


def _edge_rule(found, length, num_lines):
    """Predicted edge per line index from found `{(index, edge)}`: the stride between the two farthest apart
    found lines, or `length / num_lines` from one; None when nothing is found."""
    if not found:
        return None
    points = sorted(found)
    (first_index, first_edge), (last_index, last_edge) = points[0], points[-1]
    stride = (length / num_lines if last_index == first_index
              else (last_edge - first_edge) / (last_index - first_index))
    return lambda index: np.clip(np.round(last_edge + (index - last_index) * stride), 0, length - 1).astype(np.int64)


def edge_lines(kind, threshold, length):
    """The lines an edge-search probe lights: `[0, t)` for a start, `[length - t, length)` for a stop.

    Args:
        kind: `START` or `STOP`.
        threshold: `t`, how many lines to light.
        length: the image's size along the axis.

    Returns:
        int array of the lit lines, sorted.
    """
    return np.arange(threshold) if kind == START else np.arange(length - threshold, length)
