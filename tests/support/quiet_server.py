"""A threaded test HTTP server that treats a client hanging up as normal.

A download test that cancels, a timeout that closes the socket, or a client that read
enough (a header peek) leaves the server writing into a closed connection. The standard
library prints a traceback for that, which filled test logs with noise that looked like
failures; anything else is still reported.
"""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any

__all__ = ["QuietServer"]

_HANG_UPS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], _HANG_UPS):
            return
        super().handle_error(request, client_address)
