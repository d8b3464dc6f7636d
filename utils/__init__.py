"""What the example scripts share. Importing the package first turns TensorFlow's C++ logging off (unless
TF_CPP_MIN_LOG_LEVEL is set already), so that a run shows the tool's own lines; see utils/quiet_tf.py."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
