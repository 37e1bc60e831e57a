"""A local fake of the Telegram Bot API, the VK API and the Viber REST Bot API for the crash harness.

It answers what omnichat calls when a channel connects (getMe / setWebhook; groups.getById,
groups.getCallbackConfirmationCode, groups.*CallbackServer*, groups.setCallbackSettings; get_account_info /
set_webhook), keeps what omnichat registered (Telegram's secret_token, VK's secret_key, Viber's URL), and
records every message omnichat sends. VK drops a second messages.send with the same random_id to the same
peer, as the real VK does: such a drop is counted apart and not recorded as a send.

Sends can fail on purpose (`flake_rate`: a 5xx or a 429 with a short Retry-After, before anything is
recorded) and take a little time (`send_delay`), so that a SIGKILL lands inside a send now and then.

Telegram's getFile and file downloads serve customers' documents (`file_bytes`: the same bytes for the same
file id); downloads flake like sends, and the ones answered with the bytes are counted per file.

`CRASH_BREAK=send-500` (environment) breaks the fake on purpose, to show that the harness fails closed:
every send of every provider answers HTTP 500 and nothing is recorded as received (counted as `broken`).
Unset (the default), nothing changes; any other value is refused.

Standard library only. Listens on 127.0.0.1 only.
"""

import collections
import hashlib
import itertools
import json
import os
import random
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TELEGRAM = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)$")
VK = re.compile(r"^/method/(?P<method>[A-Za-z.]+)$")
VIBER = re.compile(r"^/pa/(?P<endpoint>[a-z_]+)$")
# A customer's file as the Bot API serves it: /file/bot<token>/<file_path>.
TELEGRAM_FILE = re.compile(r"^/file/bot(?P<token>[^/]+)/documents/(?P<file_id>[A-Za-z0-9_]+)\.pdf$")
BREAKS = ("send-500",)  # the values CRASH_BREAK may take


def breakage_from_env():
    """CRASH_BREAK, checked: a misspelt value must not run the harness unbroken while meaning to break it."""
    value = os.environ.get("CRASH_BREAK", "").strip()
    if value and value not in BREAKS:
        raise ValueError(f"CRASH_BREAK must be one of {', '.join(BREAKS)} (or unset), not {value!r}")
    return value or None


class FakeState:
    """Everything the fake saw. All access under `lock`."""

    def __init__(self, flake_rate=0.0, send_delay=(0.0, 0.0), seed=None, breakage=None):
        self.lock = threading.Lock()
        self.breakage = breakage  # None, or one of BREAKS
        self.rng = random.Random(seed)
        self.flake_rate = flake_rate
        self.send_delay = send_delay
        self.telegram_secrets = {}  # bot id -> secret_token of the last setWebhook
        self.telegram_webhooks = {}  # bot id -> url
        self.vk_servers = {}  # group id -> {"url", "secret_key", "server_id"}
        self.vk_codes = {}  # group id -> confirmation code
        self.viber_webhooks = {}  # token -> url
        self.sends = []  # every send accepted: {"provider", "account", "to", "text", "random_id", "at"}
        self.vk_seen = {}  # (group id, peer id, random_id) -> message id
        self.vk_dropped = []  # sends VK dropped as repeats of a random_id
        self.flaked = 0  # sends refused on purpose
        self.broken = 0  # sends refused because of CRASH_BREAK
        self.cut_off = 0  # calls whose answer omnichat was not there to read (killed mid-call)
        self.unknown_calls = []
        self.files_served = collections.Counter()  # file id -> downloads answered with the bytes
        self.ids = itertools.count(1000)

    def flake(self):
        """None: go on with the send; "500": CRASH_BREAK; "5xx" / "429": a flake (nothing recorded)."""
        with self.lock:
            if self.breakage == "send-500":
                self.broken += 1
                return "500"
            if self.flake_rate and self.rng.random() < self.flake_rate:
                self.flaked += 1
                return self.rng.choice(["5xx", "429"])
            low, high = self.send_delay
            delay = self.rng.uniform(low, high)
        if delay:
            time.sleep(delay)
        return None

    def snapshot(self):
        with self.lock:
            return {
                "sends": list(self.sends),
                "vk_dropped": list(self.vk_dropped),
                "flaked": self.flaked,
                "broken": self.broken,
                "cut_off": self.cut_off,
                "unknown_calls": list(self.unknown_calls),
                "files_served": dict(self.files_served),
            }


def file_bytes(file_id):
    """The bytes of a customer's document: a PDF of some kilobytes, the same for the same file id."""
    block = hashlib.sha256(file_id.encode()).digest()
    return b"%PDF-1.7\n" + block * (64 + len(file_id) * 8) + b"\n%%EOF\n"


def telegram_bot_id(token):
    digits = token.split(":", 1)[0]
    return int(digits) if digits.isdigit() else 0


def vk_group_of_token(token):
    """The fake's community tokens are `vkfake<group id>_<anything>`."""
    match = re.match(r"^vkfake(\d+)_", token or "")
    return int(match.group(1)) if match else None


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def raw_body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def answer(self, status, payload, headers=()):
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.route()

        def do_POST(self):
            self.route()

        def route(self):
            raw = self.raw_body()
            path = self.path.split("?", 1)[0]
            try:
                if match := TELEGRAM_FILE.match(path):
                    return self.telegram_file(match["file_id"])
                if match := TELEGRAM.match(path):
                    return self.telegram(match["token"], match["method"], raw)
                if match := VK.match(path):
                    return self.vk(match["method"], raw)
                if match := VIBER.match(path):
                    return self.viber(match["endpoint"], raw)
            except (BrokenPipeError, ConnectionResetError):
                # omnichat went away mid-call (a SIGKILL): whatever was recorded stays recorded.
                with state.lock:
                    state.cut_off += 1
                return None
            except Exception as error:  # a bug of the fake must show, not hang omnichat
                with state.lock:
                    state.unknown_calls.append(f"{path}: fake error {error!r}")
                return self.answer(500, {"error": repr(error)})
            with state.lock:
                state.unknown_calls.append(path)
            return self.answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})

        # ---- Telegram Bot API ----

        def telegram(self, token, method, raw):
            body = json.loads(raw or b"{}")
            bot_id = telegram_bot_id(token)
            if method == "getMe":
                result = {"id": bot_id, "is_bot": True, "first_name": "Crash", "username": f"crash{bot_id}_bot"}
            elif method == "setWebhook":
                with state.lock:
                    state.telegram_secrets[bot_id] = body.get("secret_token", "")
                    state.telegram_webhooks[bot_id] = body.get("url", "")
                result = True
            elif method in ("deleteWebhook", "answerCallbackQuery"):
                result = True
            elif method == "getFile":
                file_id = str(body.get("file_id", ""))
                result = {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(file_bytes(file_id)),
                          "file_path": f"documents/{file_id}.pdf"}
            elif method == "sendMessage":
                failure = state.flake()
                if failure == "500":
                    return self.answer(500, {"error": "broken on purpose (CRASH_BREAK=send-500)"})
                if failure == "5xx":
                    return self.answer(502, b"<html>Bad Gateway</html>")
                if failure == "429":
                    payload = {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
                               "parameters": {"retry_after": 1}}
                    return self.answer(429, payload)
                message_id = next(state.ids)
                with state.lock:
                    state.sends.append({"provider": "telegram", "account": str(bot_id), "to": str(body.get("chat_id")),
                                        "text": body.get("text", ""), "random_id": None, "at": time.time()})
                chat = {"id": body.get("chat_id"), "type": "private"}
                result = {"message_id": message_id, "date": int(time.time()), "chat": chat,
                          "text": body.get("text", "")}
            else:
                return self.answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            self.answer(200, {"ok": True, "result": result})

        def telegram_file(self, file_id):
            """A document's bytes, flaking like sends do (omnichat's fetch retries)."""
            failure = state.flake()
            if failure in ("500", "5xx"):
                return self.answer(502, b"<html>Bad Gateway</html>")
            if failure == "429":
                return self.answer(429, {"ok": False, "error_code": 429, "description": "Too Many Requests"})
            data = file_bytes(file_id)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            with state.lock:
                state.files_served[file_id] += 1
            return None

        # ---- VK API (form-encoded, errors as HTTP 200 with an `error` object) ----

        def vk(self, method, raw):
            form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode(), keep_blank_values=True).items()}
            token_group = vk_group_of_token(form.get("access_token"))
            if token_group is None:
                return self.answer(200, {"error": {"error_code": 5, "error_msg": "User authorization failed"}})
            group_id = int(form.get("group_id") or token_group)
            if method == "groups.getById":
                return self.answer(200, {"response": {"groups": [
                    {"id": group_id, "name": f"Crash community {group_id}", "screen_name": f"club{group_id}",
                     "can_message": 1}], "profiles": []}})
            if method == "groups.getCallbackConfirmationCode":
                with state.lock:
                    code = state.vk_codes.setdefault(group_id, f"c{group_id:x}ab")
                return self.answer(200, {"response": {"code": code}})
            if method == "groups.getCallbackServers":
                with state.lock:
                    server = state.vk_servers.get(group_id)
                items = [] if server is None else [
                    {"id": server["server_id"], "title": "omnichat", "url": server["url"],
                     "secret_key": server["secret_key"], "status": "ok"}]
                return self.answer(200, {"response": {"count": len(items), "items": items}})
            if method == "groups.addCallbackServer":
                server_id = next(state.ids)
                with state.lock:
                    state.vk_servers[group_id] = {"url": form.get("url", ""), "secret_key": form.get("secret_key", ""),
                                                  "server_id": server_id}
                return self.answer(200, {"response": {"server_id": server_id}})
            if method in ("groups.setCallbackSettings", "groups.deleteCallbackServer"):
                return self.answer(200, {"response": 1})
            if method == "messages.send":
                failure = state.flake()
                if failure == "500":
                    return self.answer(500, {"error": "broken on purpose (CRASH_BREAK=send-500)"})
                if failure == "5xx":
                    return self.answer(503, b"<html>Service Unavailable</html>")
                if failure == "429":
                    return self.answer(200, {"error": {"error_code": 6, "error_msg": "Too many requests per second"}})
                peer_id = form.get("peer_id")
                random_id = form.get("random_id")
                text = form.get("message", "")
                key = (token_group, peer_id, random_id)
                with state.lock:
                    if random_id not in (None, "", "0") and key in state.vk_seen:
                        # The real VK answers with the message it sent the first time and sends nothing.
                        state.vk_dropped.append({"provider": "vk", "account": str(token_group), "to": peer_id,
                                                 "text": text, "random_id": random_id, "at": time.time()})
                        return self.answer(200, {"response": state.vk_seen[key]})
                    message_id = next(state.ids)
                    state.vk_seen[key] = message_id
                    state.sends.append({"provider": "vk", "account": str(token_group), "to": peer_id, "text": text,
                                        "random_id": random_id, "at": time.time()})
                return self.answer(200, {"response": message_id})
            return self.answer(200, {"error": {"error_code": 3, "error_msg": f"Unknown method {method}"}})

        # ---- Viber REST Bot API (HTTP 200 with a `status`) ----

        def viber(self, endpoint, raw):
            body = json.loads(raw or b"{}")
            token = self.headers.get("X-Viber-Auth-Token", "")
            if not token.startswith("viberfake"):
                return self.answer(200, {"status": 2, "status_message": "invalidAuthToken"})
            if endpoint == "get_account_info":
                return self.answer(200, {"status": 0, "status_message": "ok", "id": f"pa:{token[-8:]}",
                                         "name": "Crash Viber bot", "uri": "crashbot", "subscribers_count": 1})
            if endpoint == "set_webhook":
                with state.lock:
                    state.viber_webhooks[token] = body.get("url", "")
                return self.answer(200, {"status": 0, "status_message": "ok", "event_types": []})
            if endpoint == "send_message":
                failure = state.flake()
                if failure == "500":
                    return self.answer(500, {"error": "broken on purpose (CRASH_BREAK=send-500)"})
                if failure == "5xx":
                    return self.answer(500, b"oops")
                if failure == "429":
                    return self.answer(429, b"", headers=[("Retry-After", "1")])
                message_token = next(state.ids)
                with state.lock:
                    state.sends.append({"provider": "viber", "account": token[-8:], "to": body.get("receiver"),
                                        "text": body.get("text", ""), "random_id": None, "at": time.time()})
                return self.answer(200, {"status": 0, "status_message": "ok", "message_token": message_token,
                                         "chat_hostname": "SN-CHAT-01_"})
            return self.answer(200, {"status": 3, "status_message": "badData"})

    return Handler


class QuietServer(ThreadingHTTPServer):
    """A connection omnichat drops before its request (a SIGKILL on a kept-alive connection) is counted as cut
    off, not printed as a traceback; any other error of the server still is."""

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            with self.state.lock:
                self.state.cut_off += 1
            return
        super().handle_error(request, client_address)


class FakeProviders:
    """The fake on a free 127.0.0.1 port, served from a daemon thread."""

    def __init__(self, flake_rate=0.0, send_delay=(0.0, 0.0), seed=None, breakage=None):
        self.state = FakeState(flake_rate=flake_rate, send_delay=send_delay, seed=seed, breakage=breakage)
        self.server = QuietServer(("127.0.0.1", 0), make_handler(self.state))
        self.server.state = self.state
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-providers", daemon=True)

    @property
    def base(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
