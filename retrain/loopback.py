"""An ASGI app (the prediction API) served by uvicorn on loopback in a background thread.

One place for what the replay, the hot-swap test and the API contract tests all need: a real HTTP server on
a free port, started and known to listen before the block runs, stopped when it ends. The caller's process
keeps its signal handlers (uvicorn would install its own on the main thread).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from retrain.stack.embedded import free_port


@contextlib.contextmanager
def serving(
    app: Any, *, host: str = "127.0.0.1", port: int | None = None, start_timeout_s: float = 30.0
) -> Iterator[str]:
    """Serve ``app`` for the block; yields its base URL (``http://host:port``)."""
    import uvicorn

    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the caller owns the signals
    thread = threading.Thread(target=server.run, name=f"loopback-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on {host}:{port} within {start_timeout_s:.0f} s")
            time.sleep(0.05)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
