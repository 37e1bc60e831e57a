"""A stand-in for the providers' APIs while schemathesis runs against omnichat-local (the machine has no way
out, and a provider that cannot be reached is a 502, which the run must not see).

Telegram's Bot API answers as it would for a valid token: the bot is named after the token's numeric part,
webhooks are accepted (each `setWebhook` is appended to the record file as "<bot id> <secret_token>", so the
seeding step can sign a webhook the way Telegram does), messages are sent. Every other provider's API
refuses the credentials (401), which omnichat answers as a rule broken (422). A chatbot webhook
(`/chatbot...`) takes what it is sent.

    python3 provider_stub.py PORT_FILE RECORD_FILE

Listens on a free 127.0.0.1 port and writes the port to PORT_FILE once it accepts connections.
"""

import itertools
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TELEGRAM = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)$")
message_ids = itertools.count(1)
record_lock = threading.Lock()


class Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: schemathesis makes many calls
        pass

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return {}

    def answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def do_DELETE(self):
        self.route()

    def route(self):
        body = self.body()
        path = self.path.split("?", 1)[0]
        telegram = TELEGRAM.match(path)
        if telegram:
            return self.telegram(telegram["token"], telegram["method"], body)
        if path.startswith("/chatbot"):
            return self.answer(200, {"ok": True})
        return self.answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})

    def telegram(self, token, method, body):
        digits = token.split(":", 1)[0]
        bot_id = int(digits) % 1_000_000_000 + 1 if digits.isdigit() else 1
        if method == "getMe":
            result = {"id": bot_id, "is_bot": True, "first_name": "Stub", "username": f"stub{bot_id}_bot"}
        elif method == "setWebhook":
            with record_lock, open(sys.argv[2], "a", encoding="utf-8") as record:
                record.write(f"{bot_id} {body.get('secret_token', '')}\n")
            result = True
        elif method in ("deleteWebhook", "answerCallbackQuery"):
            result = True
        elif method == "sendMessage":
            chat = {"id": body.get("chat_id"), "type": "private"}
            result = {"message_id": next(message_ids), "date": int(time.time()), "chat": chat}
        else:
            return self.answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        self.answer(200, {"ok": True, "result": result})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    # Written whole, then renamed: the waiting script never reads half a port number.
    with open(sys.argv[1] + ".tmp", "w", encoding="utf-8") as port_file:
        port_file.write(str(server.server_address[1]))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
