"""The SMTP server of the e-mail tests (aiosmtpd, a real SMTP implementation) and the token introspection
endpoint dovecot asks about OAuth access tokens.

    smtp_server.py --smtp-port P --smtps-port S --introspection-port Q --outbox DIR --password PW \
        --token-prefix PREFIX --cert CERT --key KEY

SMTP on 127.0.0.1:P (STARTTLS offered, not required) and with implicit TLS on 127.0.0.1:S requires AUTH
(also without TLS: it is a loopback test server): PLAIN or LOGIN with any user and the password PW, or
XOAUTH2 with the access token PREFIX + user. Every accepted message is saved as DIR/<n>.eml (the bytes as
received) with DIR/<n>.json (envelope sender, recipients, the login, whether the session was encrypted).

HTTP on 127.0.0.1:Q answers dovecot's `oauth2` passdb (introspection_mode = post): a token PREFIX + user
is active for that user; anything else is not. It stands in for the provider's authorization server,
which the tests cannot reach; the SASL XOAUTH2 exchange itself is dovecot's own.
"""

import argparse
import base64
import http.server
import itertools
import json
import os
import signal
import ssl
import threading
import urllib.parse
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--smtps-port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--introspection-port", type=int, required=True)
    parser.add_argument("--outbox", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--token-prefix", required=True)
    return parser.parse_args()


def xoauth2_user(blob, token_prefix):
    """The user an XOAUTH2 initial response authenticates, or None."""
    try:
        text = blob.decode()
    except UnicodeDecodeError:
        return None
    fields = dict(part.split("=", 1) for part in text.split("\x01") if "=" in part)
    user, auth = fields.get("user"), fields.get("auth", "")
    if user and auth == f"Bearer {token_prefix}{user}":
        return user
    return None


class Handler:
    def __init__(self, outbox, password, token_prefix):
        self.outbox = outbox
        self.password = password.encode()
        self.token_prefix = token_prefix
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == self.password
        return AuthResult(success=ok, auth_data=auth_data if ok else None)

    async def auth_XOAUTH2(self, server, args):
        if len(args) == 2:
            blob = base64.b64decode(args[1])
        else:
            blob = await server.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False)
        user = xoauth2_user(blob, self.token_prefix)
        if user is None:
            # What Gmail does: a JSON challenge, the client answers with an empty line, then 535.
            await server.challenge_auth(json.dumps({"status": "401", "schemes": "bearer"}))
            return AuthResult(success=False)
        return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            number = next(self.counter)
        login = getattr(session.auth_data, "login", None)
        login = login.decode() if isinstance(login, bytes) else login
        stem = os.path.join(self.outbox, f"{number:06d}")
        # Written under a temporary name, then renamed: a reader never sees half a message.
        with open(stem + ".json.tmp", "w") as meta:
            transport = server.transport
            encrypted = transport is not None and transport.get_extra_info("ssl_object") is not None
            json.dump(
                {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos, "login": login, "tls": encrypted},
                meta,
            )
        os.rename(stem + ".json.tmp", stem + ".json")
        with open(stem + ".eml.tmp", "wb") as message:
            message.write(envelope.original_content or envelope.content)
        os.rename(stem + ".eml.tmp", stem + ".eml")
        return "250 2.0.0 OK: queued as " + str(number)


def introspection_server(port, token_prefix):
    class Introspection(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            token = (form.get("token") or [""])[0]
            if not token:
                bearer = self.headers.get("Authorization", "")
                token = bearer[len("Bearer "):] if bearer.startswith("Bearer ") else ""
            user = token[len(token_prefix):] if token.startswith(token_prefix) else ""
            body = {"active": True, "email": user} if user else {"active": False}
            payload = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Introspection)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    # A loopback test server: AUTH without TLS is the point, not a mistake.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    args = parse_args()
    os.makedirs(args.outbox, exist_ok=True)
    handler = Handler(args.outbox, args.password, args.token_prefix)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(args.cert, args.key)
    common = dict(hostname="127.0.0.1", authenticator=handler.authenticate, auth_required=True, auth_require_tls=False)
    controllers = [
        Controller(handler, port=args.smtp_port, tls_context=tls, require_starttls=False, **common),
        Controller(handler, port=args.smtps_port, ssl_context=tls, **common),
    ]
    introspection = introspection_server(args.introspection_port, args.token_prefix)
    for controller in controllers:
        controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(
        f"smtp on 127.0.0.1:{args.smtp_port} (STARTTLS), smtps on :{args.smtps_port}, "
        f"introspection on :{args.introspection_port}",
        flush=True,
    )
    stop.wait()
    for controller in controllers:
        controller.stop()
    introspection.shutdown()


if __name__ == "__main__":
    main()
