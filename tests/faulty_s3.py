"""moto's S3 server on loopback that refuses write requests on demand: one, or all from the Nth on.

The refusal is a 403 (botocore does not retry it), so a command fails at
exactly that write of its commit; an outage (every write from the Nth on,
until healed) also stops the command's own cleanup, as a network failure or
a killed client would.
"""

from __future__ import annotations

import threading

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

WRITES = ("PUT", "POST", "DELETE")
REFUSAL = b"<Error><Code>AccessDenied</Code><Message>refused by the test</Message></Error>"


class FaultyS3:
    """A real S3 server (moto) whose write requests can be refused: :meth:`fail_at`, :meth:`outage_from`."""

    def __init__(self):
        self.writes = 0
        self.copies: list[str] = []  # the keys server-side copies wrote
        self._first = self._last = None
        moto = DomainDispatcherApplication(create_backend_app)

        def application(environ, start_response):
            if environ["REQUEST_METHOD"] in WRITES:
                self.writes += 1
                if "HTTP_X_AMZ_COPY_SOURCE" in environ:
                    self.copies.append(environ["PATH_INFO"])
                if self._refuses(self.writes):
                    start_response("403 Forbidden", [("Content-Length", str(len(REFUSAL)))])
                    return [REFUSAL]
            return moto(environ, start_response)

        self._server = make_server("127.0.0.1", 0, application, threaded=True)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _refuses(self, write: int) -> bool:
        return (
            self._first is not None and write >= self._first and (self._last is None or write <= self._last)
        )

    def fail_at(self, write: int) -> None:
        """Refuse only the ``write``-th write request from now (counting from 1)."""
        self.writes, self._first, self._last = 0, write, write

    def outage_from(self, write: int) -> None:
        """Refuse every write request from the ``write``-th from now on, until :meth:`heal`."""
        self.writes, self._first, self._last = 0, write, None

    def heal(self) -> None:
        """Accept every request again; start counting writes (and copies) afresh."""
        self.writes, self._first, self._last = 0, None, None
        self.copies.clear()

    def close(self) -> None:
        """Stop the server."""
        self._server.shutdown()
