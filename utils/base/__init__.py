"""Leaf helpers every layer may use, importing nothing else of the project: atomic files and folder locks,
progress bars, work on threads ahead, Ctrl-C at start-up, TensorFlow imported quietly, thread counts, layer names.
"""
