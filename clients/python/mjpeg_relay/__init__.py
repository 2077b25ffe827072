"""Push frames with their metadata and stage times to mjpeg-relay, and read streams back.

- :class:`Publisher` sends frames to ``POST /streams/NAME/ingest`` as one long multipart request,
  from a background thread, newest frame first (``docs/metadata.md``).
- :class:`Reader` iterates a stream's ``.frames`` parts as :class:`Frame` objects, with their
  metadata when read with ``meta=1`` (the default).
"""

from .publisher import Publisher
from .reader import Frame, Reader

__all__ = ["Frame", "Publisher", "Reader"]
