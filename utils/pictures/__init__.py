"""What a run draws: the montages of top patches, the printed line per layer, the gallery and TensorBoard images.
"""
