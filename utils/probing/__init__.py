"""Measuring receptive fields by probing, the machinery behind `recfield`: the forward-function contract
(`contract`), the prober that runs probe images and says which feature pixels change (`prober`), the plan of
probes per axis (`planning`), the edge search for fields as large as the image (`edges`), decoding multiplexed
probes into boxes (`decoding`), and size, stride and padding from boxes (`geometry`). The modules import one
another in that order, from `prober` down, and never `recfield`, which imports them.
"""
