"""Thread counts of TensorFlow per process, from the environment: a machine's cores shared by the shards or Dask
workers that run on it at once (`TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1` for two shards on two cores).
"""

import os

# Read by `thread_counts` for every session and eager runtime the examples start; set by Dask workers.
THREAD_VARIABLES = ('TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS')


def thread_counts():
    """`(intra_op, inter_op)` threads from THREAD_VARIABLES; 0 where unset: TensorFlow's default (every core).

    Raises:
        ValueError: a variable that is not a whole number of at least 0.
    """
    counts = []
    for variable in THREAD_VARIABLES:
        text = os.environ.get(variable, '').strip() or '0'
        if not text.isdigit():
            raise ValueError(f'{variable}={text!r} is not a thread count; set it to a whole number (0: every core) '
                             'or unset it.')
        counts.append(int(text))
    return tuple(counts)
