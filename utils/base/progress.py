"""Progress bars that suit where they are shown: redrawn live on a terminal, a line now and then in a log.

progressbar2 writes a new line for every update when stderr is not a terminal (a file, a pipe, a batch
job's log): a scan of 360 tiles wrote 151 lines. There a bar updates at most every `LOG_INTERVAL_S` seconds,
and once at the end. On a terminal, log records and other writes to `sys.stderr` while a bar is live are held
and printed above it at its next redraw (progressbar2's `streams.wrap_stderr` and `wrap_logging`), instead of
landing in the middle of the bar's line.
"""

import sys

import progressbar

LOG_INTERVAL_S = 30
enabled = True  # False with a script's --quiet (utils.running.cli.parse_args): no bars at all


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
    max_value = progressbar.UnknownLength if max_value is None else max_value
    if not sys.stderr.isatty():
        options.setdefault('min_poll_interval', LOG_INTERVAL_S)
        return progressbar.ProgressBar(prefix=prefix, max_value=max_value, **options)
    return TerminalBar(prefix=prefix, max_value=max_value, **options)


class TerminalBar(progressbar.ProgressBar):
    """A bar redrawn in place that prints log records and other stderr writes above itself while it is live."""

    def __init__(self, **options):
        super().__init__(redirect_stderr=True, **options)
        self._wraps_logging = False

    def start(self, *args, **kwargs):
        super().start(*args, **kwargs)  # wraps sys.stderr (redirect_stderr)
        if not self._wraps_logging:  # logging's handlers hold the stream they were made with: point them at it
            progressbar.streams.wrap_logging()
            self._wraps_logging = True

    def finish(self, *args, **kwargs):
        try:
            super().finish(*args, **kwargs)
        finally:
            if self._wraps_logging:
                progressbar.streams.unwrap_logging()
                self._wraps_logging = False
