"""A stand-in for the providers' APIs while schemathesis runs against omnichat-local (the machine has no way
out, and a provider that cannot be reached is a 502, which the run must not see).

Telegram's Bot API answers as it would for a valid token: the bot is named after the token's numeric part,
webhooks are accepted (each `setWebhook` is appended to the record file as "<bot id> <secret_token>", so the
seeding step can sign a webhook the way Telegram does), messages are sent. A chatbot webhook (`/chatbot...`)
takes what it is sent.

VK, Viber, edna (WhatsApp) and Avito answer their connect steps (the community or bot or profile looked up,
the webhook registered) only for the benchmark's credentials, whose key contains `bench` (see
infra/bench/src/bin/seed.rs): the benchmarks connect one channel of each and measure the whole webhook path.
For any other credentials, and for every other provider, the API refuses them (401), which omnichat answers
as a rule broken (422).

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
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TELEGRAM = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)$")
VK_METHOD = re.compile(r"^/method/(?P<method>[A-Za-z.]+)$")
# What the benchmark's credentials contain; the fakes below accept nothing else.
BENCH = "bench"
# The community, bot, profile and account the fakes know: the ones of the fixtures the benchmark sends
# (tests/fixtures/vk_message_new_text_callback.json's group_id, edna_text.json's subject, avito_text.json's
# user_id).
VK_GROUP = 214167102
EDNA_SUBJECT, EDNA_SUBJECT_ID = "test_subject_WA", 345
AVITO_USER = 375811020
message_ids = itertools.count(1)
record_lock = threading.Lock()


class Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: schemathesis makes many calls
        pass

    def body(self):
        """The request's JSON object, or its form fields (VK's methods and OAuth token requests)."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if "x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
            return dict(urllib.parse.parse_qsl(raw.decode(errors="replace")))
        try:
            parsed = json.loads(raw or b"{}")
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {"items": parsed}

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
        vk = VK_METHOD.match(path)
        if vk and BENCH in str(body.get("access_token", "")):
            return self.vk(vk["method"])
        if BENCH in (self.headers.get("X-Viber-Auth-Token") or "") and path in VIBER:
            return self.answer(200, VIBER[path])
        if BENCH in (self.headers.get("X-API-KEY") or "") and path in EDNA:
            return self.answer(200, EDNA[path])
        if path == "/token" and BENCH in str(body.get("client_secret", "")):
            return self.answer(200, {"access_token": f"{BENCH}-avito-token", "expires_in": 86400,
                                     "token_type": "Bearer"})
        if BENCH in (self.headers.get("Authorization") or "") and path in AVITO:
            return self.answer(200, AVITO[path])
        return self.answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})

    def vk(self, method):
        answers = {
            "groups.getById": {"groups": [{"id": VK_GROUP, "name": "Bench community", "screen_name": "bench",
                                           "can_message": 1}], "profiles": []},
            "groups.getCallbackConfirmationCode": {"code": "bench0code"},
            "groups.getCallbackServers": {"count": 0, "items": []},
            "groups.addCallbackServer": {"server_id": 1},
            "groups.setCallbackSettings": 1,
            "groups.deleteCallbackServer": 1,
            "messages.send": next(message_ids),
        }
        if method not in answers:
            return self.answer(200, {"error": {"error_code": 3, "error_msg": "Unknown method passed"}})
        self.answer(200, {"response": answers[method]})

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


VIBER = {
    "/get_account_info": {"status": 0, "status_message": "ok", "id": "pa:5234567890123456789",
                          "name": "Bench bot", "uri": "benchbot", "subscribers_count": 1},
    "/set_webhook": {"status": 0, "status_message": "ok"},
}
EDNA = {
    "/api/channel-profile": [{"id": 2, "name": "Bench", "subjectId": EDNA_SUBJECT_ID,
                              "channelAttribute": "35799000000", "subject": EDNA_SUBJECT, "active": True,
                              "registrationStatus": "DONE_BUSINESS_VERIFICATION", "type": "WHATSAPP"}],
    "/api/cascade/get-all": [{"id": 11, "name": "wa", "status": "ACTIVE", "stagesCount": 1, "stages": [
        {"order": 0, "uuid": "b", "stages": [],
         "subject": {"id": EDNA_SUBJECT_ID, "subject": EDNA_SUBJECT, "type": "WHATSAPP"}}]}],
    "/api/callback/set": {},
}
AVITO = {
    "/core/v1/accounts/self": {"id": AVITO_USER, "name": "Bench shop", "profile_url": "https://www.avito.ru/user/b"},
    "/messenger/v3/webhook": {"ok": True},
}


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    # Written whole, then renamed: the waiting script never reads half a port number.
    with open(sys.argv[1] + ".tmp", "w", encoding="utf-8") as port_file:
        port_file.write(str(server.server_address[1]))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
