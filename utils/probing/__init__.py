"""Measuring receptive fields by probing, the machinery behind `recfield`: the forward-function contract
(`contract`), the prober that runs probe images and says which feature pixels change (`prober`), the plan of
probes per axis (`planning`), the edge search for fields as large as the image (`edges`), decoding multiplexed
probes into boxes (`decoding`), and size, stride and padding from boxes (`geometry`). `prober` imports the
others, which import none of them; none imports `recfield`, which imports them.
"""
