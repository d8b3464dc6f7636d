"""What every channel of a layer does on the whole dataset, from each image's maximum (its *firing*): how many images
make it fire (a maximum above 0), the mean, standard deviation and quantiles of the maxima, and, where the images
have classes, each class's mean and the channel's class selectivity (Morcos et al. 2018).

Everything is held as integers, so that the statistics of parts of a dataset merge exactly, in any order, into
those of one scan of it: the sums of the maxima and of their squares as exact integers (`ExactSums`, of the
maxima as float32, the networks' precision), and the maxima's distribution as counts in buckets `SUB_BUCKETS` to a
power of two, read off the float's exponent and leading mantissa bits (DDSketch's relative-error buckets, with
integer arithmetic only, so that every machine puts a value in the same bucket): a quantile is within
`RELATIVE_ERROR` of the true one.
"""

import numpy as np

SUB_BUCKETS = 64  # buckets per power of two, each `1 / SUB_BUCKETS` of its lower end wide at most
# Of a quantile: a bucket's harmonic middle is this close to any value in it.
RELATIVE_ERROR = 1 / (2 * SUB_BUCKETS + 1)
QUANTILES = (50, 90, 99)  # percent
MANTISSA_BITS = 24  # of a float32: every value is `mantissa * 2**exponent` with `2**23 <= |mantissa| < 2**24`
DIGIT_BITS = 16  # exact sums are kept in base 2**16 digits, one int64 each (room for the carries of big batches)
# Added to the exponents of the parts summed, so that the smallest (that of the square of the smallest denormal
# float32, 2 * -172) is not negative.
EXPONENT_OFFSET = 352
HEADROOM_DIGITS = 3  # digits above the largest part added: the top digit takes every carry without overflowing
# The arrays of a saved `ChannelStatistics` (`to_arrays`), each under `PREFIX` + its name.
PREFIX = 'stats_'
ARRAYS = ('class_names', 'num_images', 'zeros', 'class_counts', 'buckets_low', 'buckets', 'sums_low', 'sums',
          'squares_low', 'squares', 'class_sums_low', 'class_sums')


class KeyedCounts:
    """Integers per row and integer key, `values[row, key - low]`, over a window of keys that grows to take every key
    added.

    Attributes:
        low: the first key of the window.
        values: int64 `[rows, keys]`.
    """

    def __init__(self, num_rows, low=0, values=None):
        self.low = int(low)
        self.values = np.zeros((int(num_rows), 0), np.int64) if values is None else np.asarray(values, np.int64)

    @property
    def high(self):
        return self.low + self.values.shape[1]

    def cover(self, low, high):
        """Widens the window to take keys `low` to `high - 1` (zeros where it grows)."""
        low, high = int(low), int(high)
        if not self.values.shape[1]:
            self.low, self.values = low, np.zeros((len(self.values), high - low), np.int64)
        elif low < self.low or high > self.high:
            new_low, new_high = min(low, self.low), max(high, self.high)
            self.values = np.pad(self.values, ((0, 0), (self.low - new_low, new_high - self.high)))
            self.low = new_low

    def add(self, rows, keys, weights=1):
        """Adds `weights` (ints, or 1 to count) at `(rows, keys)`, flat int arrays of one length."""
        if len(keys):
            self.cover(keys.min(), keys.max() + 1)
            np.add.at(self.values.reshape(-1), rows * self.values.shape[1] + (keys - self.low), weights)

    def merge(self, other):
        """Adds the values of another `KeyedCounts` of as many rows."""
        if other.values.shape[1]:
            self.cover(other.low, other.high)
            self.values[:, other.low - self.low:other.high - self.low] += other.values


class ExactSums(KeyedCounts):
    """Exact sums, one per row, of numbers `mantissa * 2**exponent`: integers in base `2**DIGIT_BITS`, one digit per
    key (digit `k` is worth `2**(DIGIT_BITS * k - EXPONENT_OFFSET)`), every digit but the top one in
    `[0, 2**DIGIT_BITS)` after each `add` or `merge`: equal sums have equal digits, however they were added up."""

    def add_parts(self, rows, mantissas, exponents):
        """Adds `mantissas * 2**exponents` (flat int arrays, `|mantissa| < 2**24`) to `rows`."""
        if not len(rows):
            return
        places = exponents + EXPONENT_OFFSET
        keys = places // DIGIT_BITS
        self.cover(keys.min(), keys.max() + HEADROOM_DIGITS)
        # Each weight is under 2**40: int64 digits take 2**23 of them between two normalisations.
        self.add(rows, keys, mantissas << (places % DIGIT_BITS))
        self._normalise()

    def add_values(self, rows, mantissas, exponents, squared=False):
        """Adds float32 values given as their `float32_parts`, or their squares (`squared`), to `rows`."""
        if not squared:
            self.add_parts(rows, mantissas, exponents)
            return
        squares = mantissas * mantissas  # under 2**48: split in two parts of 24 bits
        self.add_parts(np.concatenate([rows, rows]),
                       np.concatenate([squares >> MANTISSA_BITS, squares & ((1 << MANTISSA_BITS) - 1)]),
                       np.concatenate([2 * exponents + MANTISSA_BITS, 2 * exponents]))

    def merge(self, other):
        if other.values.shape[1]:
            self.cover(other.low, other.high)  # the windows may differ: other's top digit is not the top here
            self.values[:, other.low - self.low:other.high - self.low] += other.values
            self._normalise()

    def _normalise(self):
        digits, base = self.values, 1 << DIGIT_BITS
        for column in range(digits.shape[1] - 1):
            carry = digits[:, column] >> DIGIT_BITS  # floor: negative sums borrow from the digit above
            digits[:, column] -= carry * base
            digits[:, column + 1] += carry

    def totals(self):
        """The sums as float64 `[rows]`, added from the top digit down (the same digits give the same floats)."""
        totals = np.zeros(len(self.values))
        for column in range(self.values.shape[1] - 1, -1, -1):
            totals += np.ldexp(self.values[:, column].astype(np.float64),
                               DIGIT_BITS * (self.low + column) - EXPONENT_OFFSET)
        return totals


def float32_parts(values):
    """`(mantissas, exponents)`, int64 arrays, with `values == mantissas * 2**exponents` exactly, for float32
    `values` (`2**23 <= |mantissa| < 2**24`, or 0 for 0)."""
    fractions, exponents = np.frexp(values)
    return (fractions * (1 << MANTISSA_BITS)).astype(np.int64), exponents.astype(np.int64) - MANTISSA_BITS


def bucket_keys(mantissas, exponents):
    """The bucket of each nonzero `|value|` from its `float32_parts`: key `k` holds `[t, t + 1) * 2**(k // SUB_BUCKETS
    - 7)`, `t = SUB_BUCKETS + k % SUB_BUCKETS`: the value's power of two and its mantissa's six bits after the
    leading one."""
    return (exponents + MANTISSA_BITS - 1) * SUB_BUCKETS + (np.abs(mantissas) >> (MANTISSA_BITS - 7))


def bucket_middles(keys):
    """The harmonic middle `2 lo hi / (lo + hi)` of buckets `[lo, hi)`: within `RELATIVE_ERROR` of every value in
    them."""
    keys = np.asarray(keys, np.int64)
    lower = SUB_BUCKETS + keys % SUB_BUCKETS
    return np.ldexp(2.0 * lower * (lower + 1) / (2 * lower + 1), keys // SUB_BUCKETS - 7)


class ChannelStatistics:
    """Every channel's statistics over the images seen, exactly mergeable.

    Attributes:
        class_names: tuple of the dataset's class names (empty: no classes); `update`'s labels index it.
        num_images: images seen.
        zeros: int64 `[channels]`, images whose maximum is exactly 0.
        class_counts: int64 `[classes]`, images seen per class.
        buckets: `KeyedCounts` of rows `2 c` (positive maxima of channel `c`) and `2 c + 1` (negative ones, by size).
        sums, squares: `ExactSums` of the maxima and of their squares, a row per channel.
        class_sums: `ExactSums` of the maxima per channel and class, row `c * classes + class`.
    """

    def __init__(self, num_channels=0, class_names=()):
        self.class_names = tuple(str(name) for name in class_names)
        num_channels, num_classes = int(num_channels), len(self.class_names)
        self.num_images = 0
        self.zeros = np.zeros(num_channels, np.int64)
        self.class_counts = np.zeros(num_classes, np.int64)
        self.buckets = KeyedCounts(2 * num_channels)
        self.sums, self.squares = ExactSums(num_channels), ExactSums(num_channels)
        self.class_sums = ExactSums(num_channels * num_classes)

    @property
    def num_channels(self):
        return len(self.zeros)

    def update(self, maxima, labels=None):
        """Takes a batch's maxima into account.

        Args:
            maxima: `[batch, channels]`, finite numbers; taken as float32.
            labels: int `[batch]`, each image's class (an index into `class_names`); needed when there are classes.

        Raises:
            ValueError: labels missing or out of range, or maxima beyond float32's range.
        """
        values = np.asarray(maxima, np.float32)
        if not np.isfinite(values).all():
            raise ValueError('channel maxima beyond float32\'s range (3.4e38) cannot be summed: check the network.')
        num_images, num_channels = values.shape
        num_classes = len(self.class_names)
        if num_classes:
            labels = None if labels is None else np.asarray(labels, np.int64)
            if labels is None or labels.shape != (num_images,) or (labels < 0).any() or (labels >= num_classes).any():
                raise ValueError(f'give every image\'s class, 0 to {num_classes - 1}, as labels of shape '
                                 f'[{num_images}]; got {None if labels is None else labels.tolist()}.')
            self.class_counts += np.bincount(labels, minlength=num_classes)
        self.num_images += num_images
        self.zeros += (values == 0).sum(axis=0)
        mantissas, exponents = float32_parts(values.ravel())
        nonzero = np.flatnonzero(mantissas)
        mantissas, exponents, channels = mantissas[nonzero], exponents[nonzero], nonzero % num_channels
        self.buckets.add(2 * channels + (mantissas < 0), bucket_keys(mantissas, exponents))
        self.sums.add_values(channels, mantissas, exponents)
        self.squares.add_values(channels, mantissas, exponents, squared=True)
        if num_classes:
            rows = channels * num_classes + labels[nonzero // num_channels]
            self.class_sums.add_values(rows, mantissas, exponents)
        return self

    def merge(self, other):
        """Adds the statistics of other images (another part of the dataset); returns self.

        Raises:
            ValueError: other channel counts or classes.
        """
        if other.class_names != self.class_names:
            raise ValueError(f'cannot merge statistics of the classes {list(self.class_names)} and '
                             f'{list(other.class_names)}: the images come from other datasets.')
        if not other.num_images:
            return self
        if not self.num_images:
            self.__init__(other.num_channels, other.class_names)
        if other.num_channels != self.num_channels:
            raise ValueError(f'cannot merge statistics of {self.num_channels} and {other.num_channels} channels.')
        self.num_images += other.num_images
        self.zeros += other.zeros
        self.class_counts += other.class_counts
        for mine, theirs in ((self.buckets, other.buckets), (self.sums, other.sums), (self.squares, other.squares),
                             (self.class_sums, other.class_sums)):
            mine.merge(theirs)
        return self

    @property
    def firing_counts(self):
        """int64 `[channels]`: the images whose maximum is above 0."""
        return self.buckets.values[0::2].sum(axis=1) if self.buckets.values.shape[1] else np.zeros_like(self.zeros)

    @property
    def never_firing(self):
        """The channels that fire on no image, ascending (none before any image is seen)."""
        return np.flatnonzero(self.firing_counts == 0) if self.num_images else np.zeros(0, np.int64)

    def means(self):
        """float64 `[channels]`: the mean maximum (NaN before any image)."""
        return self.sums.totals() / self.num_images if self.num_images else np.full(self.num_channels, np.nan)

    def stds(self):
        """float64 `[channels]`: the standard deviation of the maxima over the images (population, not sample)."""
        if not self.num_images:
            return np.full(self.num_channels, np.nan)
        return np.sqrt(np.maximum(self.squares.totals() / self.num_images - self.means() ** 2, 0))

    def quantiles(self, percents=QUANTILES):
        """float64 `[channels, len(percents)]`: for `p` percent, the maximum of rank `ceil(p n / 100)` among the `n`
        images in ascending order, within `RELATIVE_ERROR` (exactly 0 where that maximum is 0)."""
        if not self.num_images:
            return np.full((self.num_channels, len(percents)), np.nan)
        keys = np.arange(self.buckets.low, self.buckets.high)
        middles = bucket_middles(keys)
        # Every channel's maxima in ascending order: negative buckets from the largest size down, 0, positive ones.
        counts = np.concatenate([self.buckets.values[1::2, ::-1], self.zeros[:, None], self.buckets.values[0::2]], 1)
        values = np.concatenate([-middles[::-1], [0.0], middles])
        cumulative = np.cumsum(counts, axis=1)
        ranks = [max(1, -(-int(percent) * self.num_images // 100)) for percent in percents]
        return np.stack([values[(cumulative >= rank).argmax(axis=1)] for rank in ranks], axis=1)

    def class_means(self):
        """float64 `[channels, classes]`: each class's mean maximum (NaN for a class without images)."""
        num_classes = len(self.class_names)
        totals = self.class_sums.totals().reshape(self.num_channels, num_classes)
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(self.class_counts > 0, totals / np.maximum(self.class_counts, 1), np.nan)

    def selectivities(self):
        """float64 `[channels]`: `(mu_max - mu_rest) / (mu_max + mu_rest)`, `mu_max` the largest class mean, `mu_rest`
        the mean of the other classes' means (Morcos et al. 2018; classes without images left out); NaN without two
        classes with images, or where `mu_max + mu_rest` is not above 0 (a channel that never fires)."""
        present = self.class_counts > 0
        if present.sum() < 2:
            return np.full(self.num_channels, np.nan)
        means = self.class_means()[:, present]
        largest = means.max(axis=1)
        rest = (means.sum(axis=1) - largest) / (means.shape[1] - 1)
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(largest + rest > 0, (largest - rest) / (largest + rest), np.nan)

    def to_arrays(self):
        """The statistics as named arrays (no objects), each under `PREFIX`: what `from_arrays` takes."""
        arrays = {'class_names': np.array(self.class_names, np.str_) if self.class_names else np.zeros(0, np.str_),
                  'num_images': np.int64(self.num_images), 'zeros': self.zeros, 'class_counts': self.class_counts}
        for name in ('buckets', 'sums', 'squares', 'class_sums'):
            counts = getattr(self, name)
            arrays[f'{name}_low'], arrays[name] = np.int64(counts.low), counts.values
        return {PREFIX + name: value for name, value in arrays.items()}

    @classmethod
    def from_arrays(cls, arrays):
        """The statistics of `to_arrays` among `arrays` (a dict that may hold others too).

        Raises:
            KeyError: an array missing; ValueError: arrays that do not fit together.
        """
        values = {name: arrays[PREFIX + name] for name in ARRAYS}
        statistics = cls(len(values['zeros']), values['class_names'].tolist())
        statistics.num_images = int(values['num_images'])
        statistics.zeros, statistics.class_counts = values['zeros'].astype(np.int64), values['class_counts']
        rows = {'buckets': 2 * statistics.num_channels, 'sums': statistics.num_channels,
                'squares': statistics.num_channels,
                'class_sums': statistics.num_channels * len(statistics.class_names)}
        for name, num_rows in rows.items():
            counts = values[name]
            if counts.ndim != 2 or len(counts) != num_rows or counts.dtype != np.int64:
                raise ValueError(f'the statistics\' {name} are {counts.dtype} of shape {counts.shape}, not int64 of '
                                 f'{num_rows} rows.')
            getattr(statistics, name).__init__(num_rows, int(values[f'{name}_low']), counts)
        if statistics.class_counts.shape != (len(statistics.class_names),):
            raise ValueError(f'the statistics count images of {len(statistics.class_counts)} classes, but name '
                             f'{len(statistics.class_names)}.')
        return statistics
