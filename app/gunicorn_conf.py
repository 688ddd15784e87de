"""gunicorn settings for `entrypoint.sh api`: request limits, and their errors as problem+json.

gunicorn refuses some requests before the app sees them (a request line longer than
`limit_request_line`, too many or too large headers, a malformed request line) and answers
them with an HTML page. The limits are set as high as gunicorn allows, so that the app's own
checks (app/api/validation.py: URL length, NUL, body size) answer nearly everything as
problem+json; what still stops at gunicorn is answered as problem+json too, by replacing the
one function its workers write those answers with.
"""

from __future__ import annotations

import json
import socket

from gunicorn import util

# gunicorn's largest values (0 would mean "unlimited", which lets one request hold memory).
limit_request_line = 8190
limit_request_fields = 200
limit_request_field_size = 16380


def write_problem(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": reason,
            "status": status_int,
            "detail": f"{mesg} (refused by the HTTP server before the API read it)",
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin1")
    util.write_nonblock(sock, head + body)


# Workers call `util.write_error`; they are forked from the master that imported this file.
util.write_error = write_problem
