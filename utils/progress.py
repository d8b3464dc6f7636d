"""Progress bars that suit where they are shown: redrawn live on a terminal, a line now and then in a log.

progressbar2 writes a new line for every update when stderr is not a terminal (a file, a pipe, a batch
job's log): a scan of 360 tiles wrote 151 lines. There a bar updates at most every `LOG_INTERVAL_S` seconds,
and once at the end.
"""

import sys

import progressbar

LOG_INTERVAL_S = 30
enabled = True  # False with a script's --quiet (utils.cli.parse_args): no bars at all


def progress_bar(prefix, max_value=None, **options):
    """A `progressbar.ProgressBar` on stderr with `prefix`, counting to `max_value` (None: unknown).

    Args:
        prefix: what is counted, e.g. `'top activations (batches) '`.
        max_value: the count at the end, or None.
        **options: more `progressbar.ProgressBar` arguments (`min_value`, `initial_value`, `widgets`, ...).
    """
    if not enabled:
        return progressbar.NullBar(max_value=progressbar.UnknownLength if max_value is None else max_value,
                                   **options)
    if not sys.stderr.isatty():
        options.setdefault('min_poll_interval', LOG_INTERVAL_S)
    return progressbar.ProgressBar(prefix=prefix, max_value=progressbar.UnknownLength if max_value is None
                                   else max_value, **options)
