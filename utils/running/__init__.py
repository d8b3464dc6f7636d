"""Running the pipeline from the command line: flags and exit codes, shards, Dask.
"""
