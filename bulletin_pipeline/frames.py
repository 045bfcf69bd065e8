"""Length-prefixed pickles over a pipe: how the parent and its digest workers talk.

Both ends are our own code, so pickle is safe here; nothing else ever writes to these pipes.
Large byte strings (a page's body, its payloads) travel out of band (pickle protocol 5): the
sender wraps them in `pickle.PickleBuffer`, they go to the pipe as they are, and the reader gets
them back as read-only memoryviews over the buffer it read them into - no copy into or out of a
pickle (4 copies of every page's bytes less per round trip).
"""

from __future__ import annotations

import pickle
import struct
from typing import IO, Any, List

_HEAD = struct.Struct("!QI")  # pickle size, number of out-of-band buffers
_SIZE = struct.Struct("!Q")
PIPE_BYTES = 1 << 20
oob = pickle.PickleBuffer
"""Wrap bytes in this to send them out of band; they arrive as a read-only memoryview."""


def write_frame(stream: IO[bytes], obj: Any) -> None:
    buffers: List[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    views = [buffer.raw() for buffer in buffers]
    stream.write(_HEAD.pack(len(data), len(views)) + b"".join(_SIZE.pack(view.nbytes) for view in views))
    stream.write(data)
    for view in views:
        stream.write(view)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    size, count = _HEAD.unpack(_read_exactly(stream, _HEAD.size))
    sizes = [_SIZE.unpack_from(_read_exactly(stream, _SIZE.size))[0] for _ in range(count)]
    data = _read_exactly(stream, size)
    buffers = []
    for length in sizes:
        buffer = bytearray(length)
        view = memoryview(buffer)
        filled = 0
        while filled < length:
            got = stream.readinto(view[filled:])  # type: ignore[attr-defined]
            if not got:
                raise EOFError
            filled += got
        buffers.append(buffer)
    return pickle.loads(data, buffers=buffers)


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return data


def widen_pipe(stream: Any) -> None:
    """Room for a whole page in the pipe (Linux). With the default 64 KB, a 600 KB answer is
    passed in ~10 pieces, each a wake-up of the reading thread, which must first win the GIL."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (ImportError, OSError, ValueError):
        pass  # not Linux, or a lower pipe-max-size: slower, still correct
