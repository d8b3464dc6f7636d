"""Planning the probes of one axis: which layers to multiplex at which period, which to search by edges, and
the block probes that say where in the image a multiplexed box lies. Costs are counted in probe images.
"""

import math

import numpy as np


def plan_axis(length, periods, num_lines, runs=4):
    """Which layers to multiplex, at which period, and which to search by edges, in the fewest probe images.

    Args:
        length: the image's size along the axis.
        periods: per layer, the period its boxes need (`prober.Prober._estimate_periods`).
        num_lines: per layer, the feature map's size along the axis.
        runs: how many references every multiplexed or line-by-line probe runs on.

    Returns:
        `(period or None, layers to search by edges)`; layers in neither are probed line by line, which is
        chosen (period None, no layers to search) when it is cheapest.
    """
    best_cost, best = runs * length, (None, [])  # line by line: one probe per line serves every layer
    for period in sorted(set(periods)) + [None]:
        if period is not None and period >= length:
            continue
        multiplexed = [layer for layer, needed in enumerate(periods) if period is not None and needed <= period]
        searched = [layer for layer in range(len(periods)) if layer not in multiplexed]
        cost = 0 if period is None else runs * (period + len(block_probes(length, period)[1]))
        cost += sum(search_cost(length, periods[layer], num_lines[layer], runs) for layer in searched)
        if cost < best_cost:
            best_cost, best = cost, (period, searched)
    return best


def block_probes(length, period):
    """The probes that say which block of `period` lines each box lies in, whichever way needs fewer.

    Halves: prefix probes (lines `[0, j * period)`) and suffix probes (`[j * period, length)`), two per block
    border. Bands: levels that each multiply the known span of the start by a factor `m` of 3 or more with `m`
    probes (`decoding._decode_bands`); a factor of 2 would leave a box crossing a band border ambiguous.

    Returns:
        `(blocks, probes)`: `('halves', num_blocks)` or `('bands', factors)`, and the lit lines of each probe.
    """
    lines = np.arange(length)
    num_blocks = math.ceil(length / period)
    halves = [lines[:block * period] for block in range(1, num_blocks)]
    halves += [lines[block * period:] for block in range(1, num_blocks)]
    factors = band_factors(length / period)
    if len(halves) <= sum(factors):
        return ('halves', num_blocks), halves
    bands, width = [], period
    for factor in factors:
        bands += [lines[(lines % (factor * width)) // width == band] for band in range(factor)]
        width *= factor
    return ('bands', factors), bands


def band_factors(ratio):
    """The fewest band probes that span `ratio` times the period.

    Args:
        ratio: the image's size along the axis over the period.

    Returns:
        list of factors of 3 or more whose product reaches `ratio`, with the least sum (e.g. 3, 3, 4 for 32);
        empty for a ratio of 1 or less.
    """
    best = []
    for levels in range(1, max(1, math.ceil(math.log(ratio, 3))) + 1):
        base = math.floor(ratio ** (1 / levels))
        for larger in range(levels + 1):  # `larger` factors of base + 1, the rest of base
            factors = [max(3, base)] * (levels - larger) + [max(3, base + 1)] * larger
            if math.prod(factors) >= ratio and (not best or sum(factors) < sum(best)):
                best = factors
    return best if ratio > 1 else []


def search_cost(length, period, num_lines, runs):
    """About how many probe images `edges.EdgeSearch` needs for one layer: a bisection and two probes per
    distinct edge (lines whose boxes reach past the image's border share the clipped edge), asked on one
    reference, and one probe per distinct edge confirmed on the other `runs - 1` (`prober.Prober._search_edges`).

    Args:
        length: the image's size along the axis.
        period: the period the layer's boxes need (`prober.Prober._estimate_periods`).
        num_lines: the feature map's size along the axis.
        runs: how many references a probe runs on.

    Returns:
        the estimated number of probe images, an int.
    """
    stride = math.ceil(length / num_lines)
    box = max(period - stride, stride)  # the estimate's box length (see `prober.Prober._estimate_periods`)
    clipped = min(num_lines, (box - stride) // (2 * stride) + 1)  # lines clipped at each border
    distinct_edges = 2 * (num_lines - clipped)
    return math.ceil(math.log2(length)) + 2 + distinct_edges * (2 + runs - 1)
