"""`.tflite` in and out of an :class:`~hardware.graph.Int8Graph` (see ``tflite_read`` and
``tflite_write`` for the details of each direction)."""

from hardware.tflite_read import ModelFormatError, TfliteError, UnsupportedModelError, read_tflite
from hardware.tflite_write import write_tflite

__all__ = ["ModelFormatError", "TfliteError", "UnsupportedModelError", "read_tflite", "write_tflite"]
