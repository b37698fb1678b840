"""A port on 127.0.0.1 where nothing listens, and that nothing else can take.

Binding a port and closing the socket leaves a window in which another test (another
pytest-xdist worker) may bind it and answer. A socket kept bound but never listening
holds the port for the whole session, and the kernel refuses every connection to it.
"""

from __future__ import annotations

import atexit
import socket

_HELD = socket.socket()
_HELD.bind(("127.0.0.1", 0))
# Closed at exit, not left to the garbage collector: each test process would otherwise end
# with an "unclosed socket" ResourceWarning in the suite's output.
atexit.register(_HELD.close)
DEAD_PORT: int = _HELD.getsockname()[1]
DEAD_URL = f"http://127.0.0.1:{DEAD_PORT}"
