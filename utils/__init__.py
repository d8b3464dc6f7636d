"""What the example scripts share. Importing the package first turns TensorFlow's C++ logging off (unless
TF_CPP_MIN_LOG_LEVEL is set already), so that a run shows the tool's own lines; see utils/base/quiet_tf.py.

It also turns TensorFlow's oneDNN kernels on (unless TF_ENABLE_ONEDNN_OPTS is set already), before TensorFlow
is imported, which is when TensorFlow reads it. TensorFlow uses them by default only on CPUs with AVX-512
VNNI, BF16 or AMX; elsewhere (AVX2 CPUs) its Eigen kernels split a convolution's sums among threads, so the
same images gave other last bits on 1 and on 2 threads, and a shard on a one-thread Dask worker other
firings than a single run. oneDNN's convolutions gave the same bits on any thread count, and ran VGG16 about
15 % faster than Eigen on AVX2.
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
