"""The pipeline every kind of model runs through: the `Model` interface, receptive fields, the scan, shard states,
the receptive-field cache and the memory check.
"""
