"""Length-prefixed pickles over a pipe: how the parent and its digest workers talk.

Both ends are our own code, so pickle is safe here; nothing else ever writes to these pipes.
"""

from __future__ import annotations

import pickle
import struct
from typing import IO, Any

_FRAME = struct.Struct("!Q")
PIPE_BYTES = 1 << 20


def write_frame(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME.pack(len(data)))
    stream.write(data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        raise EOFError
    size = _FRAME.unpack(head)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def widen_pipe(stream: Any) -> None:
    """Room for a whole page in the pipe (Linux). With the default 64 KB, a 600 KB answer is
    passed in ~10 pieces, each a wake-up of the reading thread, which must first win the GIL."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (ImportError, OSError, ValueError):
        pass  # not Linux, or a lower pipe-max-size: slower, still correct
