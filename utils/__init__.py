"""What the example scripts share. Importing the package first keeps TensorFlow's C++ start-up logging to
errors (unless TF_CPP_MIN_LOG_LEVEL is set already), so that a run shows the tool's own lines."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
