#!/usr/bin/env python3
"""A real SMTP server for the mail tests (aiosmtpd).

Listens on 127.0.0.1:PORT, accepts AUTH PLAIN/LOGIN for one user and
password over plain text (the tests run on loopback), and writes every
message it accepts to DIR as <n>.eml (written aside, then renamed, so a
reader never sees half a file). Prints "ready <port>" once it listens; with
PORT 0 it binds a port of the kernel's choosing, so no other process can
take the port between choosing and binding it.

    smtp_sink.py PORT DIR USER       # the password comes from SMTP_SINK_PASSWORD
"""

import os
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        final = os.path.join(self.directory, f"{self.count:04}.eml")
        with open(final + ".tmp", "wb") as f:
            f.write(b"X-Rcpt-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(final + ".tmp", final)
        return "250 OK"


class SinkController(Controller):
    """A controller that learns the port it was given when it binds port 0."""

    async def _bind(self):
        server = await self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=self.port
        )
        self.port = server.sockets[0].getsockname()[1]
        return server

    def _create_server(self):
        return self._bind()


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        # handled=False: the server answers 535 itself.
        return AuthResult(success=ok, handled=False)

    return check


def main():
    port, directory, user = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    password = os.environ["SMTP_SINK_PASSWORD"]
    controller = SinkController(
        Sink(directory),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator(user, password),
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    print(f"ready {controller.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
