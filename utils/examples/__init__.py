"""The examples: each module gives one model and dataset (its flags, `open_model`, `open_dataset`) that its
activations script, its recfield script, shards and Dask all open the same way.
"""
