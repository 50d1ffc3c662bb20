"""Files in and out: images (:mod:`.images`) and safe files (:mod:`.files`: atomic writes, input protection).

Neither imports torch at import time: :func:`load_image` returns a torch tensor (imported when called);
:func:`save_image` and :class:`PngStreamWriter` take a torch tensor or a numpy array.
"""

from .files import atomic_write, atomic_write_bytes, check_not_input, check_readable_file, read_spec_file
from .images import DEFAULT_MAX_PIXELS, PngStreamWriter, load_image, sample_image_path, save_image

__all__ = ["DEFAULT_MAX_PIXELS", "PngStreamWriter", "atomic_write", "atomic_write_bytes", "check_not_input",
           "check_readable_file", "load_image", "read_spec_file", "sample_image_path", "save_image"]
