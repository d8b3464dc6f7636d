"""Whether a run can fit in memory, checked before the network runs: the least each step of a run holds at once.

* a forward pass of `n` images: the float32 input batch and the largest tensor the network computes, twice (an
  op's input and output live together);
* the receptive-field probes: a forward pass of `min(--batch_size, PROBE_BATCH_SIZE)` images, plus the chosen
  layers' whole feature maps it hands back and those of 3 reference batches;
* the scan: a forward pass of `--batch_size` images, plus their uint8 display images and the `BATCHES_AHEAD`
  batches decoded while it runs (`utils.data.images.decoded_batches`);
* the pictures: a layer's `-full` picture, `--num_samples` images for each channel asked for (`--num_channels`),
  counting every one as firing.

The largest of these is compared with the memory the system has available (MemAvailable in /proc/meminfo, or
free pages elsewhere). It leaves out TensorFlow's workspace, the kept images and the crop pictures, so a run
that passes can still run out of memory; one that fails cannot fit (unless channels asked for never fire), and
is refused at once instead of crashing after the model has run for a while.
"""

import math
import os

from utils.core.model import PROBE_BATCH_SIZE
from utils.data.images import BATCHES_AHEAD
from utils.pictures.montage import BORDER


GIB = 1 << 30
NUM_REFERENCES = 3  # reference batches whose maps the probes keep (recfield's trials share the first one)


def available_bytes():
    """Memory available to a new allocation without swapping: MemAvailable of /proc/meminfo, else the free
    pages (`os.sysconf`), else None where neither is known."""
    try:
        with open('/proc/meminfo') as meminfo:
            for line in meminfo:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (ValueError, OSError, AttributeError):
        return None


def needed_bytes(batch_size, input_shape, largest_tensor_bytes, layer_shapes, num_samples=None, num_channels=None):
    """The least memory the steps of a run hold (module docstring), per step.

    Args:
        batch_size: `--batch_size`.
        input_shape: `(height, width, channels)` of one network input.
        largest_tensor_bytes: bytes of the largest tensor the network computes for one image.
        layer_shapes: `(height, width, channels)` of each chosen layer's feature map.
        num_samples: `--num_samples`, or None for a run without a scan (the `*_recfield.py` scripts).
        num_channels: `--num_channels` (0: every channel).

    Returns:
        dict from step (`'receptive-field probes'`, `'scan'`, `'pictures'`) to bytes.
    """
    input_bytes = 4 * math.prod(input_shape)
    maps_bytes = 4 * sum(math.prod(shape) for shape in layer_shapes)

    def forward(images):
        return images * (input_bytes + 2 * largest_tensor_bytes)

    probe_batch = min(batch_size, PROBE_BATCH_SIZE)
    needed = {'receptive-field probes': forward(probe_batch) + (1 + NUM_REFERENCES) * probe_batch * maps_bytes}
    if num_samples is not None:
        height, width = input_shape[:2]
        needed['scan'] = forward(batch_size) + (1 + BATCHES_AHEAD) * batch_size * height * width * 3
        columns = max((min(num_channels or channels, channels) for _, _, channels in layer_shapes), default=0)
        needed['pictures'] = columns * num_samples * (height + 2 * BORDER) * (width + 2 * BORDER) * 3
    return needed


def check_memory(needed, available=None, image_size_flag=None):
    """Refuses a run whose least memory (`needed_bytes`) is more than the memory available.

    Args:
        needed: dict from step to bytes (`needed_bytes`).
        available: bytes available; None: `available_bytes()` (where that is unknown, nothing is checked).
        image_size_flag: the flag that sets the image size (`'--image_size'`), or None where the network fixes it.

    Raises:
        ValueError: a one-line message with the step that needs the most and what to lower.
    """
    available = available_bytes() if available is None else available
    step, most = max(needed.items(), key=lambda item: item[1])
    if available is None or most <= available:
        return
    knobs = {'receptive-field probes': ['--batch_size'], 'scan': ['--batch_size'],
             'pictures': ['--num_channels', '--num_samples']}[step] + ([image_size_flag] if image_size_flag else [])
    raise ValueError(f'this run needs at least {most / GIB:.1f} GiB of memory for its {step}, more than the '
                     f'{available / GIB:.1f} GiB available; lower {", ".join(knobs[:-1])}'
                     f'{" or " if len(knobs) > 1 else ""}{knobs[-1]}.')
