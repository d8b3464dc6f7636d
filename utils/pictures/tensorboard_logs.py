"""TensorBoard event files: a model's graph (Graphs tab) and the layer pictures as image summaries (Images tab).

    with EventLog(logdir) as log:
        log.add_graph(graph)                                     # a tf.Graph or GraphDef
        log.add_image_file('conv1/conv1:0/crop', 'conv1-conv10-crop.jpg', 'receptive field 5x5 ...')

`tensorboard --logdir <logdir>` then shows them; a subfolder of `logdir` with its own event files is a
separate run. The events are written with TensorBoard's own event-file writer and protocol buffers, in the
format of TF2's `tf.summary.image` (a tensor summary of the `images` plugin). `tf.summary` itself is not
used: its ops run only eagerly, and the example scripts draw their pictures inside a `tf.compat.v1` graph.
"""

import time

import cv2
import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util


class EventLog:
    """A new event file in a log folder (created if missing); close it, or use it in a `with` block.

    Every record is written at step 0: a log holds one model, or the pictures of one run of a script.
    """

    def __init__(self, logdir):
        self.logdir = logdir
        self._writer = EventFileWriter(logdir)

    def add_graph(self, graph):
        """Writes a graph for TensorBoard's Graphs tab.

        Args:
            graph: a `tf.Graph` or a `GraphDef`.
        """
        graph_def = graph.as_graph_def() if hasattr(graph, 'as_graph_def') else graph
        self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=0,
                                               graph_def=graph_def.SerializeToString()))

    def add_image(self, tag, encoded, width, height, description=''):
        """Writes an encoded image (PNG or JPEG bytes) for TensorBoard's Images tab, stored as it is.

        Args:
            tag: the image's name in TensorBoard; `/` groups tags (the part before the first `/`).
            encoded: the image file's bytes.
            width, height: its size in pixels.
            description: Markdown shown with the image.
        """
        # The images plugin's format: a string tensor [width, height, image, ...].
        tensor = tensor_util.make_tensor_proto(np.array([str(width).encode(), str(height).encode(), encoded],
                                                        dtype=object))
        value = summary_pb2.Summary.Value(tag=tag, tensor=tensor,
                                          metadata=image_metadata.create_summary_metadata(tag, description))
        self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=0,
                                               summary=summary_pb2.Summary(value=[value])))

    def add_image_file(self, tag, path, description=''):
        """`add_image` of an image file (PNG or JPEG): TensorBoard shows exactly the picture on disk.

        Raises:
            ValueError: the file is not an image OpenCV can read.
        """
        with open(path, 'rb') as stream:
            encoded = stream.read()
        image = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f'{path} is not a PNG or JPEG image.')
        self.add_image(tag, encoded, image.shape[1], image.shape[0], description)

    def flush(self):
        """Writes what was added so far to disk."""
        self._writer.flush()

    def close(self):
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
