#!/usr/bin/env python3
"""Crash-and-retry harness for omnichat-local (issue 10, part 2).

Runs the release `omnichat-local` on a fixed free port of 127.0.0.1 with a fresh data dir, against a local
fake of the Telegram, VK and Viber APIs (fake_providers.py). Connects one channel per provider through the
admin API, then:

  * delivers N unique customer messages over the three webhooks the way providers do: concurrently, each
    retried until a 2xx with backoff and jitter (a refused connection while omnichat is down is a retry),
    some sent again after their 2xx, some sent twice at once, and a sample replayed at the end;
  * meanwhile SIGKILLs omnichat at K random moments and restarts it at once on the same data dir, waiting
    for it to answer before the next kill;
  * meanwhile employees reply through `POST /v1/dialogs/{id}/messages`; the fake records every send (VK drops
    a repeated random_id, as VK does, and counts the drop apart);
  * waits (bounded) until no reply is pending, then reads every dialog and message through the API and
    checks: every delivery stored exactly once, one open dialog per customer, no reply sent twice, none
    lost. The reply half fails closed (check_replies; bounds at the top): a reply whose send a kill
    interrupted is marked failed by omnichat ("the outcome of an interrupted send is unknown") unless its
    provider drops repeats (VK, where there must be none); those are bounded by the kills. Any other failed
    reply is a violation, 90 % of the accepted replies must reach the fake, a reply without an answer must
    have met a kill, and only a bounded 409 may refuse one.

`CRASH_BREAK=send-500` breaks the fake on purpose (every send answers 500): such a run must fail.

Prints a summary table and exits 1 on any violation (2 on a harness error). Standard library only.

    python3 infra/crash/harness.py --binary target/release/omnichat-local            # full size
    python3 infra/crash/harness.py --binary target/release/omnichat-local --quick    # CI size
"""

import argparse
import base64
import collections
import concurrent.futures
import hashlib
import hmac
import http.client
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_providers import FakeProviders, breakage_from_env, file_bytes  # noqa: E402

PROVIDERS = ("telegram", "vk", "viber")
TOKEN_RE = re.compile(r"\[((?:DLV|RPL)\d+)\]")
# The failure reason omnichat's outbox gives a reply whose send a kill interrupted, for a provider that does not
# drop repeated sends (shared/src/usecases/outbox.rs): the only failure the harness accepts, within bounds.
UNKNOWN_OUTCOME = "the outcome of an interrupted send is unknown; not repeated"
ADMIN_KEY = "ock_crash_harness_" + secrets.token_hex(16)

SIZES = {
    # deliveries: unique customer messages, paced evenly over `seconds` (omnichat-local takes several
    # hundred a second: unpaced, the load would be over before employees and kills could meet it); kills:
    # SIGKILLs at random moments of the kill window (a share of the load's duration).
    "full": dict(deliveries=5400, customers=450, seconds=90, kills=6, replies=900, workers=24, employees=3,
                 kill_window=(0.03, 0.97)),
    # CI: under 2 minutes in all. Kills happen in the first half of the load so that the 60 s lease of a
    # send interrupted by the last kill runs out soon after the load ends.
    "quick": dict(deliveries=1200, customers=120, seconds=30, kills=5, replies=250, workers=16, employees=2,
                  kill_window=(0.05, 0.5)),
}

REQUEST_TIMEOUT = 10.0  # every request of a "provider" or an "employee"
DELIVERY_MAX_ATTEMPTS = 80  # a provider's retries of one delivery
DELIVERY_DEADLINE = 240.0  # seconds a provider keeps retrying one delivery
READY_TIMEOUT = 60.0  # a (re)start must answer within this
BACKOFF_BASE, BACKOFF_CAP = 0.05, 2.0

# The reply half's bounds (check_replies). Every employee reply ends in one explained category, or it is a
# violation: sent and received by the fake once; failed with UNKNOWN_OUTCOME (see there); refused with 409;
# no answer during a kill.
# - At least this share of the replies the employees write is accepted (201): else the outbox went untested.
#   What takes it lower is only the kills' few hundred milliseconds of downtime each.
ACKED_MIN_SHARE = 0.75
# - At least this share of the accepted replies reaches the fake. Only unknown outcomes (bounded by the kills,
#   a few out of hundreds) may keep an accepted reply from it, so a healthy run is near 100 %.
RECEIVED_MIN_SHARE = 0.90
# - A reply with no answer at all must have been under way while omnichat was down (this slack in seconds
#   either side of a kill's window, for the scheduling of the harness's threads).
KILL_SLACK = 0.5
# - 409 ("the dialog changed meanwhile; read it again", documented for the reply) comes from a race with
#   another write to the dialog; at most this share of the replies, or CONFLICT_MIN. Any other refusal is a
#   violation: the harness only writes valid replies to open dialogs.
CONFLICT_SHARE, CONFLICT_MIN = 0.02, 2


def say(message):
    print(f"crash-harness: {message}", file=sys.stderr, flush=True)


class HarnessError(Exception):
    """The harness itself could not do its job (not a finding about omnichat)."""


class OmnichatFault(Exception):
    """omnichat-local did not survive: it exited by itself, or did not come back after a SIGKILL."""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_request(port, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT):
    """(status, body bytes); raises OSError / http.client.HTTPException when there is no answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


NO_ANSWER = (OSError, http.client.HTTPException)


# ---------------------------------------------------------------------------------------------------------
# omnichat-local, started, SIGKILLed and restarted on the same data dir


class Omnichat:
    def __init__(self, binary, port, env, log_path):
        self.binary, self.port, self.env, self.log_path = binary, port, env, log_path
        self.process = None
        self.starts = 0
        # Set while the harness itself takes the process down (a kill, the final stop).
        self.expected_down = threading.Event()
        self.lock = threading.Lock()

    def _mark(self, text):
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== crash-harness {time.strftime('%H:%M:%S')}: {text} =====\n".encode())

    def start(self):
        """Starts the process and waits until it answers; raises HarnessError with the log tail if it dies."""
        for bind_try in range(1, 6):
            self.starts += 1
            self._mark(f"start #{self.starts}")
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen([self.binary], env=self.env, stdin=subprocess.DEVNULL,
                                                stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + READY_TIMEOUT
            while time.monotonic() < deadline:
                code = self.process.poll()
                if code is not None:
                    if "cannot listen" in self.log_tail(5) and bind_try < 5:
                        time.sleep(0.5)  # the port is still held by the killed process' socket
                        break
                    raise OmnichatFault(f"omnichat-local exited with {code} on start #{self.starts}:\n"
                                       f"{self.log_tail(40)}")
                try:
                    status, _ = http_request(self.port, "GET", "/openapi.json", timeout=2)
                    if status == 200:
                        self.expected_down.clear()
                        return
                except NO_ANSWER:
                    pass
                time.sleep(0.05)
            else:
                raise OmnichatFault(f"omnichat-local not ready {READY_TIMEOUT:.0f}s after start #{self.starts}:\n"
                                   f"{self.log_tail(40)}")
        raise HarnessError(f"omnichat-local could not bind port {self.port}:\n{self.log_tail(20)}")

    def kill(self):
        """SIGKILL (no chance to finish anything) and reap; `start` must follow."""
        self.expected_down.set()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._mark("SIGKILL")

    def stop(self):
        self.expected_down.set()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._mark("stopped (SIGTERM)")

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines):
        try:
            with open(self.log_path, "rb") as log:
                return b"".join(log.readlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""


# ---------------------------------------------------------------------------------------------------------
# The admin API


class Api:
    def __init__(self, port):
        self.port = port

    def call(self, method, path, payload=None, timeout=REQUEST_TIMEOUT):
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        status, data = http_request(self.port, method, path, body, headers, timeout)
        try:
            return status, json.loads(data or b"null")
        except ValueError:
            return status, data.decode(errors="replace")

    def must(self, method, path, payload=None, expect=(200, 201)):
        status, body = self.call(method, path, payload)
        if status not in expect:
            raise HarnessError(f"{method} {path} answered {status}: {body}")
        return body

    def all_pages(self, path, limit=500, attempts=20):
        """Every item of a list, page by page; retried a few times when omnichat does not answer."""
        items, page, pages = [], None, 0
        while True:
            query = {"limit": str(limit)}
            if page:
                query["page"] = page
            sep = "&" if "?" in path else "?"
            for attempt in range(attempts):
                try:
                    body = self.must("GET", f"{path}{sep}{urllib.parse.urlencode(query)}", expect=(200,))
                    break
                except NO_ANSWER:
                    if attempt == attempts - 1:
                        raise
                    time.sleep(0.5)
            items.extend(body["items"])
            page = body.get("next")
            if not page:
                return items
            pages += 1
            if pages > 10_000:
                raise HarnessError(f"{path}: more than 10,000 pages")


# ---------------------------------------------------------------------------------------------------------
# Channels and deliveries


def random_text(n, alphabet=string.ascii_letters + string.digits):
    return "".join(secrets.choice(alphabet) for _ in range(n))


class Channel:
    def __init__(self, provider, channel_id, webhook_path, secret, extra=None):
        self.provider, self.id, self.path, self.secret = provider, channel_id, webhook_path, secret
        self.extra = extra or {}


SETTINGS = {"auto_replies": [], "auto_close": {"after": 30, "unit": "days"}}


def connect_channels(api, fake, port):
    """One channel per provider, connected the way an admin does, against the fake."""
    channels = {}
    state = fake.state

    bot_id = random.randint(10**9, 2 * 10**9)
    token = f"{bot_id}:{random_text(35)}"
    body = api.must("POST", "/v1/channels", {"provider": "telegram", "name": "Crash Telegram",
                                              "credentials": {"token": token}, "settings": SETTINGS})
    with state.lock:
        secret = state.telegram_secrets.get(bot_id)
        registered = state.telegram_webhooks.get(bot_id)
    if not secret or registered != body["webhook_url"]:
        raise HarnessError(f"Telegram setWebhook not seen as expected: {registered!r} vs {body['webhook_url']!r}")
    channels["telegram"] = Channel("telegram", body["id"], urllib.parse.urlsplit(body["webhook_url"]).path, secret)

    group_id = random.randint(10**8, 2 * 10**8)
    vk_token = f"vkfake{group_id}_{random_text(40)}"
    body = api.must("POST", "/v1/channels", {"provider": "vk", "name": "Crash VK",
                                              "credentials": {"access_token": vk_token, "group_id": group_id},
                                              "settings": SETTINGS})
    with state.lock:
        server = dict(state.vk_servers.get(group_id) or {})
        code = state.vk_codes.get(group_id)
    if not server or server["url"] != body["webhook_url"]:
        raise HarnessError(f"VK addCallbackServer not seen as expected: {server} vs {body['webhook_url']!r}")
    vk = Channel("vk", body["id"], urllib.parse.urlsplit(body["webhook_url"]).path, server["secret_key"],
                 {"group_id": group_id})
    # VK confirms the server before it sends events: the answer must be the bare confirmation code.
    status, answer = http_request(port, "POST", vk.path, json.dumps(
        {"type": "confirmation", "group_id": group_id, "secret": vk.secret}).encode(),
        {"Content-Type": "application/json"})
    if status != 200 or answer.decode() != code:
        raise HarnessError(f"VK confirmation answered {status} {answer!r}, expected the code {code!r}")
    channels["vk"] = vk

    viber_token = f"viberfake{secrets.token_hex(16)}"
    body = api.must("POST", "/v1/channels", {"provider": "viber", "name": "Crash Viber",
                                              "credentials": {"token": viber_token}, "settings": SETTINGS})
    with state.lock:
        registered = state.viber_webhooks.get(viber_token)
    if registered != body["webhook_url"]:
        raise HarnessError(f"Viber set_webhook not seen as expected: {registered!r} vs {body['webhook_url']!r}")
    viber = Channel("viber", body["id"], urllib.parse.urlsplit(body["webhook_url"]).path, viber_token)
    # Viber checks the URL with a signed `webhook` callback.
    check = json.dumps({"event": "webhook", "timestamp": int(time.time() * 1000),
                        "chat_hostname": "SN-CHAT-01_", "message_token": 5000000000000000001}).encode()
    status, answer = http_request(port, "POST", viber.path, check, viber_headers(viber, check))
    if status != 200:
        raise HarnessError(f"Viber's webhook check answered {status} {answer!r}")
    channels["viber"] = viber
    return channels


def viber_headers(channel, body):
    signature = hmac.new(channel.secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Viber-Content-Signature": signature}


class Customer:
    def __init__(self, number, provider):
        self.number, self.provider = number, provider
        self.seq = 0
        if provider == "telegram":
            self.id = str(700_000_000 + number)
        elif provider == "vk":
            self.id = str(300_000 + number)
        else:
            self.id = base64.b64encode(hashlib.sha256(f"crash-customer-{number}".encode()).digest()[:16]).decode()
        self.name = f"Customer {number}"


class Delivery:
    """One unique update as a provider would send it (the same bytes on every retry)."""

    def __init__(self, index, customer, channel, run_id):
        customer.seq += 1
        self.index, self.customer, self.channel = index, customer, channel
        self.provider = channel.provider
        self.token = f"DLV{index:06d}"
        text = f"customer {customer.number} says {customer.seq} [{self.token}]"
        now = int(time.time())
        # Every fifth Telegram update carries a document (its text as the caption): omnichat fetches it after
        # the acknowledgement, through kills, and must keep it exactly once.
        self.file_id = f"FILE{run_id}{index:06d}" if self.provider == "telegram" and index % 5 == 0 else None
        if self.provider == "telegram":
            message = {"message_id": customer.seq, "date": now,
                       "chat": {"id": int(customer.id), "type": "private", "first_name": customer.name},
                       "from": {"id": int(customer.id), "is_bot": False, "first_name": customer.name}}
            if self.file_id:
                message["caption"] = text
                message["document"] = {"file_id": self.file_id, "file_unique_id": f"u{self.file_id}",
                                       "file_name": f"receipt-{index}.pdf", "mime_type": "application/pdf"}
            else:
                message["text"] = text
            update = {"update_id": 100_000_000 + index, "message": message}
            self.body = json.dumps(update, separators=(",", ":")).encode()
            self.headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": channel.secret}
        elif self.provider == "vk":
            event_id = hashlib.sha1(f"{run_id}-{index}".encode()).hexdigest()
            event = {"type": "message_new", "event_id": event_id, "v": "5.199", "group_id": channel.extra["group_id"],
                     "secret": channel.secret, "object": {
                         "message": {"id": 900_000 + index, "date": now, "peer_id": int(customer.id),
                                     "from_id": int(customer.id), "out": 0, "text": text,
                                     "conversation_message_id": customer.seq, "attachments": []},
                         "client_info": {"button_actions": ["text"], "keyboard": True, "inline_keyboard": True,
                                         "carousel": True, "lang_id": 0}}}
            self.body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
            self.headers = {"Content-Type": "application/json"}
        else:
            callback = {"event": "message", "timestamp": now * 1000, "chat_hostname": "SN-CHAT-01_",
                        # Above 2^53, as Viber's are: read as an integer, never through a float.
                        "message_token": 5_000_000_000_000_000_000 + index,
                        "sender": {"id": customer.id, "name": customer.name, "language": "en", "country": "DE",
                                   "api_version": 10},
                        "message": {"type": "text", "text": text}, "silent": False}
            self.body = json.dumps(callback, separators=(",", ":")).encode()
            self.headers = viber_headers(channel, self.body)


# ---------------------------------------------------------------------------------------------------------
# The run


class Run:
    def __init__(self, args, size):
        self.args, self.size = args, size
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.stop_load = threading.Event()
        self.abort = threading.Event()
        self.abort_reason = None
        # Provider-side figures.
        self.acked = 0
        self.unacked = []  # deliveries whose provider gave up
        self.duplicates_sent = collections.Counter()  # kind -> acknowledged repeat deliveries
        self.attempts = 0
        self.outcomes = collections.Counter()  # "200", "refused", "reset", "timeout", "503", ...
        self.vk_bad_acks = []
        # Kills.
        self.kills = []  # {"at", "acked", "down_seconds"}
        # Employees.
        self.replies = []  # dicts
        self.reply_numbers = iter(range(10**9))
        self.dialog_cache = []

    # ---- providers ----

    def send_until_acked(self, delivery):
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                status, data = http_request(self.port, "POST", delivery.channel.path, delivery.body,
                                            delivery.headers, REQUEST_TIMEOUT)
                outcome = str(status)
            except ConnectionRefusedError:
                status, data, outcome = None, b"", "refused"
            except (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError):
                status, data, outcome = None, b"", "reset"
            except socket.timeout:
                status, data, outcome = None, b"", "timeout"
            except NO_ANSWER as error:
                status, data, outcome = None, b"", type(error).__name__
            with self.lock:
                self.attempts += 1
                self.outcomes[outcome] += 1
            if status is not None and 200 <= status < 300:
                if delivery.provider == "vk" and data != b"ok":
                    with self.lock:
                        self.vk_bad_acks.append((delivery.token, data[:100]))
                return True
            out_of_time = time.monotonic() - started > DELIVERY_DEADLINE
            if attempt >= DELIVERY_MAX_ATTEMPTS or out_of_time or self.abort.is_set():
                return False
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(attempt - 1, 8))
            time.sleep(delay * self.rng.uniform(0.5, 1.5))

    def deliver(self, delivery, kind, start_at=None):
        if start_at is not None:
            wait = start_at - time.monotonic()
            if wait > 0 and self.abort.wait(wait):
                return
        if self.abort.is_set():
            return
        acked = self.send_until_acked(delivery)
        with self.lock:
            if kind == "original":
                if acked:
                    self.acked += 1
                else:
                    self.unacked.append(delivery.token)
            elif acked:
                self.duplicates_sent[kind] += 1
        # Providers re-send now and then although they got their 2xx (a lost ack, a timeout on their side).
        if kind == "original" and acked and delivery.index in self.repeat_after_ack:
            time.sleep(self.rng.uniform(0.0, 0.3))
            if self.send_until_acked(delivery):
                with self.lock:
                    self.duplicates_sent["after_ack"] += 1

    # ---- kills ----

    def killer(self):
        low, high = self.size["kill_window"]
        seconds = self.size["seconds"]
        moments = sorted(self.rng.uniform(low, high) * seconds for _ in range(self.size["kills"]))
        for moment in moments:
            # At least a second of load between two kills (a restart takes a fraction of one).
            at = max(self.load_started + moment, time.monotonic() + 1.0)
            if self.stop_load.wait(max(0.0, at - time.monotonic())) or self.abort.is_set():
                return
            with self.lock:
                acked = self.acked
            killed_at = time.monotonic()
            self.server.kill()
            try:
                self.server.start()
            except (HarnessError, OmnichatFault) as error:
                self.abort_reason = f"omnichat-local did not come back after SIGKILL #{len(self.kills) + 1}: {error}"
                self.abort.set()
                return
            down = time.monotonic() - killed_at
            # "from" / "to": the window omnichat was away, in seconds since t0 (the clock of the replies).
            self.kills.append({"at": round(killed_at - self.load_started, 2), "acked": acked,
                               "down_seconds": round(down, 2), "from": killed_at - self.t0,
                               "to": killed_at + down - self.t0})
            say(f"SIGKILL #{len(self.kills)} {killed_at - self.load_started:.1f}s into the load "
                f"({acked} acknowledged), "
                f"back in {down:.2f}s")

    def watchdog(self):
        """A process that exits without a kill of ours is a finding: stop the load and say so."""
        while not self.stop_load.is_set() and not self.abort.is_set():
            # Dead first, then "not expected": a kill of ours sets the flag before its SIGKILL.
            dead = not self.server.alive()
            if dead and not self.server.expected_down.is_set():
                code = self.server.process.poll()
                self.abort_reason = (f"omnichat-local exited by itself (code {code}) during the load:\n"
                                     f"{self.server.log_tail(40)}")
                self.abort.set()
                return
            time.sleep(0.2)

    # ---- employees ----

    def dialog_refresher(self):
        while not self.stop_load.is_set() and not self.abort.is_set():
            try:
                items = self.api.all_pages("/v1/dialogs", attempts=1)
                self.dialog_cache = [d for d in items if d.get("status") != "closed"]
            except NO_ANSWER + (HarnessError, KeyError, TypeError):
                pass
            self.stop_load.wait(1.0)

    def employee(self):
        target = self.size["replies"]
        while not self.stop_load.is_set() and not self.abort.is_set():
            with self.lock:
                number = next(self.reply_numbers)
            if number >= target:
                return
            # Replies spread evenly over the load (after its first 2 %, when there are dialogs to answer).
            at = self.load_started + (0.02 + 0.95 * number / target) * self.size["seconds"]
            if self.stop_load.wait(max(0.0, at - time.monotonic())):
                return
            while not self.dialog_cache and not self.stop_load.is_set():
                time.sleep(0.1)
            if not self.dialog_cache:
                return
            dialog = self.rng.choice(self.dialog_cache)
            token = f"RPL{number:05d}"
            text = f"employee answers {dialog['customer']['id']} [{token}]"
            record = {"token": token, "dialog_id": dialog["id"], "channel_id": dialog["channel_id"],
                      "customer_id": dialog["customer"]["external_id"], "at": round(time.monotonic() - self.t0, 2)}
            try:
                status, body = self.api.call("POST", f"/v1/dialogs/{dialog['id']}/messages", {"text": text},
                                             timeout=REQUEST_TIMEOUT)
            except NO_ANSWER as error:
                record.update(outcome="unacked", error=type(error).__name__)
            else:
                if status == 201:
                    record.update(outcome="acked", message_id=body.get("id"), status_at_ack=body.get("status"))
                else:
                    record.update(outcome="rejected", http_status=status, body=str(body)[:300])
            record["ended"] = round(time.monotonic() - self.t0, 2)
            with self.lock:
                self.replies.append(record)

    # ---- main ----

    def run(self):
        args, size = self.args, self.size
        self.t0 = time.monotonic()
        self.work = tempfile.mkdtemp(prefix="omnichat-crash.")
        self.fake = FakeProviders(flake_rate=args.flake_rate, send_delay=(0.005, 0.08), seed=args.seed,
                                  breakage=self.breakage).start()
        if self.breakage:
            say(f"CRASH_BREAK={self.breakage}: the fake providers are broken on purpose; this run must fail")
        self.port = free_port()
        env = {k: v for k, v in os.environ.items()
               if k.upper() not in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")}
        env.update({
            "PORT": str(self.port), "OMNICHAT_DATA_DIR": os.path.join(self.work, "data"),
            "OMNICHAT_ADMIN_KEY": ADMIN_KEY, "OMNICHAT_TICK_SECONDS": "1",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{self.port}",
            "TELEGRAM_API_BASE": self.fake.base, "VK_API_BASE": self.fake.base, "VK_OAUTH_BASE": self.fake.base,
            "VIBER_API_BASE": f"{self.fake.base}/pa", "EDNA_API_BASE": self.fake.base,
            "MESSAGEBIRD_API_BASE": self.fake.base, "AVITO_API_BASE": self.fake.base,
            "NO_PROXY": "127.0.0.1,localhost", "RUST_LOG": os.environ.get("RUST_LOG", "info"), "NO_COLOR": "1",
        })
        self.server = Omnichat(args.binary, self.port, env, os.path.join(self.work, "server.log"))
        self.api = Api(self.port)
        say(f"work dir {self.work}; omnichat-local on 127.0.0.1:{self.port}, fake providers at {self.fake.base}")
        self.server.start()
        say(f"omnichat-local ready in {time.monotonic() - self.t0:.1f}s")

        self.channels = connect_channels(self.api, self.fake, self.port)
        run_id = secrets.token_hex(4)
        customers = [Customer(n, PROVIDERS[n % len(PROVIDERS)]) for n in range(size["customers"])]
        self.customers = customers
        # Every customer writes at least once; the rest of the messages go to random customers.
        picks = list(range(len(customers))) + [self.rng.randrange(len(customers))
                                               for _ in range(size["deliveries"] - len(customers))]
        self.rng.shuffle(picks)
        deliveries = [Delivery(i, customers[c], self.channels[customers[c].provider], run_id)
                      for i, c in enumerate(picks)]
        self.deliveries = deliveries
        total = len(deliveries)
        count = lambda rate: int(total * rate)  # noqa: E731
        self.repeat_after_ack = set(self.rng.sample(range(total), count(args.dup_rate)))
        racing = set(self.rng.sample(range(total), count(args.race_rate)))
        say(f"connected {', '.join(f'{p} {c.id}' for p, c in self.channels.items())}; delivering {total} "
            f"unique messages from {len(customers)} customers, {size['kills']} SIGKILLs, "
            f"{size['replies']} employee replies")

        self.load_started = load_started = time.monotonic()
        helpers = [threading.Thread(target=self.killer, name="killer", daemon=True),
                   threading.Thread(target=self.watchdog, name="watchdog", daemon=True),
                   threading.Thread(target=self.dialog_refresher, name="dialogs", daemon=True)]
        helpers += [threading.Thread(target=self.employee, name=f"employee-{i}", daemon=True)
                    for i in range(size["employees"])]
        for thread in helpers:
            thread.start()
        with concurrent.futures.ThreadPoolExecutor(max_workers=size["workers"]) as pool:
            futures = []
            for delivery in deliveries:
                start_at = load_started + delivery.index / total * size["seconds"]
                futures.append(pool.submit(self.deliver, delivery, "original", start_at))
                if delivery.index in racing:
                    # The provider's retry of a delivery whose answer it did not wait for: two at once.
                    futures.append(pool.submit(self.deliver, delivery, "racing", start_at))
            last_report = time.monotonic()
            for _ in concurrent.futures.as_completed(futures):
                if time.monotonic() - last_report > 5:
                    last_report = time.monotonic()
                    with self.lock:
                        say(f"  {self.acked}/{total} acknowledged, {len(self.kills)} kills, "
                            f"{len(self.replies)} replies, {time.monotonic() - load_started:.0f}s")
            for future in futures:
                future.result()
        self.load_seconds = time.monotonic() - load_started
        self.stop_load.set()
        for thread in helpers:
            thread.join(timeout=READY_TIMEOUT + 30)
        if self.abort.is_set():
            raise OmnichatFault(self.abort_reason or "aborted")
        if len(self.kills) < size["kills"]:
            say(f"warning: only {len(self.kills)} of {size['kills']} kills happened during the load")
        say(f"load done in {self.load_seconds:.1f}s: {self.acked}/{total} acknowledged, {len(self.kills)} kills")

        # Providers keep retrying for hours: a sample is delivered once more, after the last restart.
        late = self.rng.sample(deliveries, count(args.late_rate))
        with concurrent.futures.ThreadPoolExecutor(max_workers=size["workers"]) as pool:
            list(pool.map(lambda d: self.deliver(d, "late_replay"), late))

        self.drain()
        self.drain_media()
        # One more SIGKILL at rest: what the checks read must have survived it.
        self.server.kill()
        self.server.start()
        self.final_kill = True
        self.collect()
        self.server.stop()
        return self.check()

    def drain(self):
        """Waits (bounded) until no reply is pending. A send interrupted by a kill holds its 60 s lease."""
        started = time.monotonic()
        deadline = started + self.args.drain_timeout
        dialogs = sorted({r["dialog_id"] for r in self.replies})
        while True:
            pending = 0
            for dialog in dialogs:
                for message in self.api.all_pages(f"/v1/dialogs/{dialog}/messages"):
                    if message.get("direction") == "out" and message.get("status") == "pending":
                        pending += 1
            if pending == 0:
                self.drain_seconds = time.monotonic() - started
                self.undrained = 0
                say(f"outbox drained in {self.drain_seconds:.1f}s")
                return
            if time.monotonic() > deadline:
                self.drain_seconds = time.monotonic() - started
                self.undrained = pending
                say(f"outbox NOT drained after {self.drain_seconds:.0f}s: {pending} replies still pending")
                return
            time.sleep(2)

    def drain_media(self):
        """Waits (bounded) until no customer's file is pending: fetches cut off by a kill are handed out again
        when omnichat-local starts (media::resume)."""
        started = time.monotonic()
        deadline = started + self.args.drain_timeout
        while True:
            pending = sum(1 for dialog in self.api.all_pages("/v1/dialogs")
                          for message in self.api.all_pages(f"/v1/dialogs/{dialog['id']}/messages")
                          for attachment in message.get("attachments") or []
                          if attachment.get("status") == "pending")
            self.media_drain_seconds = time.monotonic() - started
            if pending == 0 or time.monotonic() > deadline:
                say(f"media {'fetched' if pending == 0 else 'NOT fetched'} in {self.media_drain_seconds:.1f}s"
                    + (f": {pending} files still pending" if pending else ""))
                return
            time.sleep(1)

    def collect(self):
        self.dialogs = self.api.all_pages("/v1/dialogs")
        self.messages = {}
        for dialog in self.dialogs:
            self.messages[dialog["id"]] = self.api.all_pages(f"/v1/dialogs/{dialog['id']}/messages")
        self.fake_seen = self.fake.state.snapshot()
        # Every stored file through its link (no API key), while the server runs.
        self.served_files = {}
        for messages in self.messages.values():
            for message in messages:
                for attachment in message.get("attachments") or []:
                    if attachment.get("url"):
                        link = urllib.parse.urlsplit(attachment["url"])
                        status, body = http_request(self.port, "GET", f"{link.path}?{link.query}")
                        self.served_files[message["id"]] = (status, body)

    def check_media(self):
        """Every document of a stored delivery ends stored exactly once: one object per file under the data
        dir, the bytes the fake served, served back by its link."""
        violations = []
        by_token = {}
        for messages in self.messages.values():
            for message in messages:
                if message.get("direction") == "in":
                    for token in TOKEN_RE.findall(message.get("text") or ""):
                        by_token[token] = message
        documents = [d for d in self.deliveries if d.file_id]
        not_stored, wrong_bytes = [], []
        for delivery in documents:
            message = by_token.get(delivery.token)
            if message is None:
                continue  # a lost delivery: reported with the deliveries
            attachments = message.get("attachments") or []
            if len(attachments) != 1 or attachments[0].get("status") != "stored":
                not_stored.append((delivery.token, [a.get("status") for a in attachments]))
                continue
            status, body = self.served_files.get(message["id"], (None, b""))
            if status != 200 or body != file_bytes(delivery.file_id):
                wrong_bytes.append((delivery.token, status, len(body)))
        root = os.path.join(self.work, "data", "media", "media")
        objects = [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if not f.startswith(".")]
        leftovers = [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.startswith(".")]
        if not_stored:
            violations.append(f"{len(not_stored)} customers' files not stored: {not_stored[:5]}")
        if wrong_bytes:
            violations.append(f"{len(wrong_bytes)} files served with other bytes than the provider's: {wrong_bytes[:5]}")
        if len(objects) != len(documents):
            violations.append(f"{len(objects)} objects under the data dir for {len(documents)} files (one each)")
        served = self.fake_seen.get("files_served", {})
        rows = [("customers' files (documents)", len(documents)),
                ("  stored / served back intact", f"{len(documents) - len(not_stored)} / "
                                                  f"{len(documents) - len(not_stored) - len(wrong_bytes)}"),
                ("  objects / downloads answered", f"{len(objects)} / {sum(served.values())}"),
                ("  temporary files left by kills", len(leftovers)),
                ("  media drain seconds", f"{getattr(self, 'media_drain_seconds', 0):.1f}")]
        return violations, rows

    def scan_log(self):
        """Panics, and the distinct WARN / ERROR messages of the server's log (all starts)."""
        panics, levels, distinct = [], collections.Counter(), collections.Counter()
        ansi = re.compile(r"\x1b\[[0-9;]*m")
        with open(self.server.log_path, "rb") as log:
            for raw in log:
                line = ansi.sub("", raw.decode(errors="replace")).rstrip()
                if "panicked" in line:
                    panics.append(line[:300])
                # `LEVEL [span{fields}:...] target: message`: the spans (a job's run, an HTTP request) skipped.
                match = re.search(r"\s(WARN|ERROR)\s+(?:\w+\{.*?\}:)*\s*(\S+):\s(.*)$", line)
                if match:
                    levels[match.group(1)] += 1
                    # Grouped by message: ids and numbers masked.
                    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>",
                                  match.group(3))
                    text = re.sub(r"\b\d+\b", "<n>", text).strip()
                    distinct[f"{match.group(1)} {match.group(2)}: {text}"[:160]] += 1
        return panics, levels, distinct

    # ---- checks ----

    def check(self):
        violations = []
        channel_provider = {c.id: p for p, c in self.channels.items()}
        dialogs_by_id = {d["id"]: d for d in self.dialogs}

        # Deliveries: each token stored exactly once, in its customer's dialog.
        stored_in = collections.defaultdict(list)
        outbound = collections.defaultdict(list)
        stray_inbound = 0
        for dialog_id, messages in self.messages.items():
            for message in messages:
                tokens = TOKEN_RE.findall(message.get("text") or "")
                if message.get("direction") == "in":
                    if not tokens:
                        stray_inbound += 1
                    for token in tokens:
                        stored_in[token].append(dialog_id)
                else:
                    for token in tokens:
                        outbound[token].append(message)
        lost_deliveries, doubled_deliveries, misplaced = [], [], []
        per_provider = collections.defaultdict(lambda: collections.Counter())
        for delivery in self.deliveries:
            places = stored_in.get(delivery.token, [])
            per_provider[delivery.provider]["deliveries"] += 1
            if len(places) == 1:
                per_provider[delivery.provider]["stored"] += 1
            elif not places:
                lost_deliveries.append(delivery.token)
            else:
                doubled_deliveries.append((delivery.token, places))
            for dialog_id in places:
                dialog = dialogs_by_id.get(dialog_id, {})
                owner = (dialog.get("channel_id"), dialog.get("customer", {}).get("external_id"))
                if owner != (delivery.channel.id, delivery.customer.id):
                    misplaced.append((delivery.token, dialog_id))
        if self.unacked:
            violations.append(f"{len(self.unacked)} deliveries never got a 2xx (provider gave up): {self.unacked[:10]}")
        if lost_deliveries:
            violations.append(f"{len(lost_deliveries)} acknowledged deliveries not stored: {lost_deliveries[:10]}")
        if doubled_deliveries:
            violations.append(f"{len(doubled_deliveries)} deliveries stored more than once: {doubled_deliveries[:5]}")
        if misplaced:
            violations.append(f"{len(misplaced)} deliveries stored in another customer's dialog: {misplaced[:5]}")
        if self.vk_bad_acks:
            violations.append(f"{len(self.vk_bad_acks)} VK deliveries not answered with a bare ok: "
                              f"{self.vk_bad_acks[:3]}")

        # Dialogs: one open dialog per customer (nothing closes dialogs during the run).
        dialogs_of = collections.defaultdict(list)
        for dialog in self.dialogs:
            dialogs_of[(dialog["channel_id"], dialog["customer"]["external_id"])].append(dialog)
        second_open, no_open, extra_dialogs = [], [], []
        for customer in self.customers:
            key = (self.channels[customer.provider].id, customer.id)
            found = dialogs_of.get(key, [])
            open_ones = [d["id"] for d in found if d["status"] != "closed"]
            if len(open_ones) > 1:
                second_open.append((customer.provider, customer.id, open_ones))
            elif not open_ones:
                no_open.append((customer.provider, customer.id, [(d["id"], d["status"]) for d in found]))
            if len(found) > 1:
                extra_dialogs.append((customer.provider, customer.id, [(d["id"], d["status"]) for d in found]))
        known = {(self.channels[c.provider].id, c.id) for c in self.customers}
        foreign = [k for k in dialogs_of if k not in known]
        if second_open:
            violations.append(f"{len(second_open)} customers with more than one open dialog: {second_open[:5]}")
        if no_open:
            violations.append(f"{len(no_open)} customers without an open dialog: {no_open[:5]}")
        if extra_dialogs and not second_open:
            violations.append(f"{len(extra_dialogs)} customers with more than one dialog (nothing closes dialogs "
                              f"in this run): {extra_dialogs[:5]}")
        if foreign:
            violations.append(f"{len(foreign)} dialogs of customers the harness never was: {foreign[:5]}")

        reply_violations, reply_rows, reply_details, reply_data = self.check_replies(outbound, channel_provider)
        violations.extend(reply_violations)
        media_violations, media_rows = self.check_media()
        violations.extend(media_violations)
        stray_sends = [s for s in self.fake_seen["sends"] if not TOKEN_RE.search(s["text"] or "")]
        if self.fake_seen["unknown_calls"]:
            violations.append(f"omnichat called what the fake does not know: {self.fake_seen['unknown_calls'][:5]}")
        if len(self.kills) < self.size["kills"]:
            violations.append(f"only {len(self.kills)} of {self.size['kills']} kills happened during the load")

        panics, levels, distinct = self.scan_log()
        if panics:
            violations.append(f"omnichat-local panicked {len(panics)} times: {panics[:3]}")

        summary = [
            ("deliveries (unique)", len(self.deliveries)),
            ("  per provider", ", ".join(f"{p} {per_provider[p]['deliveries']}" for p in PROVIDERS)),
            ("duplicates sent (2xx'd)", sum(self.duplicates_sent.values())),
            ("  after a 2xx / racing / late replay", " / ".join(str(self.duplicates_sent[k])
                                                               for k in ("after_ack", "racing", "late_replay"))),
            ("webhook requests (incl. retries)", self.attempts),
            ("  answers", ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))),
            ("kills (SIGKILL) during the load", len(self.kills)),
            ("  + 1 at rest before the checks", "yes" if getattr(self, "final_kill", False) else "no"),
            ("restarts", self.server.starts - 1),
            ("stored exactly once", sum(c["stored"] for c in per_provider.values())),
            ("lost (acked, not stored)", len(lost_deliveries)),
            ("duplicated (stored > once)", len(doubled_deliveries)),
            ("never acknowledged", len(self.unacked)),
            ("customers / dialogs", f"{len(self.customers)} / {len(self.dialogs)}"),
            ("customers with != 1 open dialog", len(second_open) + len(no_open)),
            *reply_rows,
            *media_rows,
            ("stray sends / stray inbound", f"{len(stray_sends)} / {stray_inbound}"),
            ("server log: ERROR / WARN lines", f"{levels['ERROR']} / {levels['WARN']}"),
            ("load / drain seconds", f"{self.load_seconds:.1f} / {self.drain_seconds:.1f}"),
            ("wall seconds", f"{time.monotonic() - self.t0:.1f}"),
        ]
        width = max(len(k) for k, _ in summary)
        print("\n" + "-" * (width + 24))
        print(f"{'crash harness (' + self.size_name + ')':<{width}}  result")
        print("-" * (width + 24))
        for key, value in summary:
            print(f"{key:<{width}}  {value}")
        print("-" * (width + 24))
        for kill in self.kills:
            print(f"  kill {kill['at']:>6.1f}s into the load, after {kill['acked']:>5} acks, "
                  f"back in {kill['down_seconds']:.2f}s")
        for text, n in distinct.most_common(8):
            print(f"  log {n:>4} x {text}")
        for line in reply_details:
            print(line)
        report = {"size": self.size_name, "summary": dict((k, v) for k, v in summary), "kills": self.kills,
                  "violations": violations, "replies": self.replies, **reply_data, "log": dict(distinct),
                  "panics": panics}
        with open(os.path.join(self.work, "report.json"), "w", encoding="utf-8") as out:
            json.dump(report, out, indent=1, default=str)
        if violations:
            print("\nVIOLATIONS:")
            for violation in violations:
                print(f"  - {violation}")
            print(f"\nevidence kept in {self.work} (server.log, report.json)")
        else:
            print("\nall checks passed")
        return violations

    def check_replies(self, outbound, channel_provider):
        """The reply half, failing closed: every employee reply (API call) ends in one explained category.

        Returns (violations, summary rows, detail lines, report data). The bounds are module constants.
        """
        violations, details = [], []
        # What the fake received (VK's repeats of a random_id are dropped before this, as VK does).
        received = collections.defaultdict(list)
        for send in self.fake_seen["sends"]:
            for token in TOKEN_RE.findall(send["text"] or ""):
                received[token].append(send)
        dropped = collections.defaultdict(list)
        for send in self.fake_seen["vk_dropped"]:
            for token in TOKEN_RE.findall(send["text"] or ""):
                dropped[token].append(send)
        replies_by_token = {r["token"]: r for r in self.replies}
        figures = collections.Counter()
        unknown_outcome, failed_other, unexplained_failures = [], [], []
        lost_replies, twice, wrong_recipient, stuck, stored_twice, rejected_but_written = [], [], [], [], [], []
        unacked_outside_kills, conflicts, bad_refusals, odd_status, vk_random_ids = [], [], [], [], []
        kill_windows = [(k["from"] - KILL_SLACK, k["to"] + KILL_SLACK) for k in self.kills]
        last_kill = max((k["from"] for k in self.kills), default=None)
        for reply in self.replies:
            token = reply["token"]
            stored = outbound.get(token, [])
            got = received.get(token, [])
            provider = channel_provider.get(reply["channel_id"], "?")
            figures[f"replies_{reply['outcome']}"] += 1
            if len(got) > 1:
                twice.append((token, provider, [(s["provider"], s["to"], s["random_id"]) for s in got]))
            for send in got:
                if send["to"] != reply["customer_id"]:
                    wrong_recipient.append((token, send["to"], reply["customer_id"]))
            if provider == "vk":
                # VK's exactly-once rests on one random_id per reply, the same on every repeat.
                ids = {s["random_id"] for s in got + dropped.get(token, [])}
                if any(i in (None, "", "0") for i in ids) or len(ids) > 1:
                    vk_random_ids.append((token, sorted(map(str, ids))))
            if len(stored) > 1:
                stored_twice.append((token, [m["id"] for m in stored]))

            # The API call itself.
            if reply["outcome"] == "rejected":
                # 409 is the documented "the dialog changed meanwhile; read it again" (a race with another
                # write to the dialog); nothing else may refuse a valid reply to an open dialog.
                if reply.get("http_status") == 409:
                    conflicts.append((token, reply.get("body", "")[:120]))
                else:
                    bad_refusals.append((token, reply.get("http_status"), reply.get("body", "")[:160]))
                if stored or got:
                    rejected_but_written.append((token, reply.get("http_status"), len(stored), len(got)))
                continue
            if reply["outcome"] == "unacked":
                # No answer at all: only a kill explains that (the connection reset in the middle of the
                # request, or refused while omnichat was down and restarting).
                start, end = reply["at"], reply.get("ended", reply["at"])
                if not any(start <= high and end >= low for low, high in kill_windows):
                    unacked_outside_kills.append((token, reply.get("error"), start, end))
            if not stored:
                if reply["outcome"] == "acked":
                    lost_replies.append((token, "acknowledged but not in the dialog", len(got)))
                elif got:
                    lost_replies.append((token, "sent although not stored", len(got)))
                else:
                    figures["unacked_not_stored"] += 1
                continue

            # The stored message's outcome.
            message = stored[0]
            status, failure = message.get("status"), message.get("failure") or ""
            acked = reply["outcome"] == "acked"
            if not acked:
                figures["unacked_stored"] += 1
            if got:
                figures["received_by_fake"] += 1
                if acked:
                    figures["acked_received"] += 1
            if status in ("sent", "delivered"):
                figures["status_sent"] += 1
                if not got:
                    lost_replies.append((token, f"{status} but the fake never received it", provider))
            elif status == "failed" and failure == UNKNOWN_OUTCOME:
                entry = {"token": token, "provider": provider, "fake_received": bool(got),
                         "message_id": message["id"], "acked": acked, "at": reply["at"]}
                unknown_outcome.append(entry)
                # Only a kill interrupts a send: a reply written after the last kill cannot have one.
                if provider == "vk" or last_kill is None or reply["at"] > last_kill:
                    unexplained_failures.append(entry)
            elif status == "failed":
                failed_other.append({"token": token, "provider": provider, "message_id": message["id"],
                                     "failure": failure, "fake_received": bool(got)})
            elif status == "pending":
                stuck.append((token, provider, message["id"]))
            else:
                odd_status.append((token, provider, message["id"], status))

        acked = figures["replies_acked"]
        acked_received = figures["acked_received"]
        non_idempotent_unknown = [u for u in unknown_outcome if u["provider"] != "vk"]
        vk_unknown = [u for u in unknown_outcome if u["provider"] == "vk"]
        # At a SIGKILL at most employees + 1 sends hold a claim (each employee's API call sends its reply
        # itself, one at a time; the local runner's tick sends due retries one after the other, never two
        # ticks at once); each such claim can end as one unknown outcome, and nothing else makes one.
        unknown_bound = len(self.kills) * (self.size["employees"] + 1)
        conflict_bound = max(CONFLICT_MIN, int(len(self.replies) * CONFLICT_SHARE))
        acked_floor = int(self.size["replies"] * ACKED_MIN_SHARE)
        received_floor = int(acked * RECEIVED_MIN_SHARE + 0.999999)

        if failed_other:
            reasons = collections.Counter(f["failure"][:100] for f in failed_other)
            violations.append(f"{len(failed_other)} replies failed for another reason than an interrupted send "
                              f"({'; '.join(f'{n} x {r!r}' for r, n in reasons.most_common(3))}): "
                              + ", ".join(f"{f['token']} (message {f['message_id']})" for f in failed_other[:8]))
        if vk_unknown:
            violations.append(f"{len(vk_unknown)} VK replies marked unknown outcome (VK's sends repeat safely by "
                              f"random_id, the outbox must re-send them): "
                              + ", ".join(f"{u['token']} (message {u['message_id']})" for u in vk_unknown[:8]))
        if len(non_idempotent_unknown) > unknown_bound:
            violations.append(f"{len(non_idempotent_unknown)} replies with an unknown outcome, more than "
                              f"{unknown_bound} (= {len(self.kills)} kills x {self.size['employees'] + 1} sends "
                              f"in flight at most)")
        late_unknown = [u for u in unexplained_failures if u["provider"] != "vk"]
        if late_unknown:
            violations.append(f"{len(late_unknown)} replies with an unknown outcome written after the last kill: "
                              + ", ".join(f"{u['token']} (message {u['message_id']})" for u in late_unknown[:8]))
        if acked < acked_floor:
            violations.append(f"only {acked} of {self.size['replies']} employee replies were accepted (201), "
                              f"fewer than {acked_floor}: the run did not test the outbox")
        if acked_received < received_floor:
            violations.append(f"only {acked_received} of {acked} accepted replies reached the fake provider, "
                              f"fewer than {received_floor} ({RECEIVED_MIN_SHARE:.0%})")
        if unacked_outside_kills:
            violations.append(f"{len(unacked_outside_kills)} replies got no answer outside every kill's window: "
                              f"{unacked_outside_kills[:5]}")
        if bad_refusals:
            violations.append(f"{len(bad_refusals)} replies refused with another status than the documented 409: "
                              f"{bad_refusals[:5]}")
        if len(conflicts) > conflict_bound:
            violations.append(f"{len(conflicts)} replies refused with 409, more than {conflict_bound}: "
                              f"{conflicts[:5]}")
        if odd_status:
            violations.append(f"{len(odd_status)} replies in a status the harness does not know: {odd_status[:5]}")
        if vk_random_ids:
            violations.append(f"{len(vk_random_ids)} VK replies without one stable random_id: {vk_random_ids[:5]}")
        if lost_replies:
            violations.append(f"{len(lost_replies)} replies lost: {lost_replies[:10]}")
        if twice:
            violations.append(f"{len(twice)} replies sent twice to the fake: {twice[:10]}")
        if stored_twice:
            violations.append(f"{len(stored_twice)} replies stored twice: {stored_twice[:5]}")
        if wrong_recipient:
            violations.append(f"{len(wrong_recipient)} replies sent to another customer: {wrong_recipient[:5]}")
        if stuck:
            violations.append(f"{len(stuck)} replies still pending after {self.drain_seconds:.0f}s: {stuck[:10]}")
        if rejected_but_written:
            violations.append(f"{len(rejected_but_written)} refused replies written or sent anyway: "
                              f"{rejected_but_written[:5]}")
        orphans = [t for t in received if t.startswith("RPL") and t not in replies_by_token]
        if orphans:
            violations.append(f"the fake received {len(orphans)} replies no employee wrote: {orphans[:5]}")

        unknown_yes = sum(1 for u in unknown_outcome if u["fake_received"])
        share = f"{acked_received / acked:.1%}" if acked else "-"
        rows = [
            ("replies sent (API calls)", len(self.replies)),
            ("  201 / no answer / refused", f"{acked} / {figures['replies_unacked']} / {figures['replies_rejected']}"),
            ("  201s needed (bound)", f"{acked_floor} ({ACKED_MIN_SHARE:.0%} of {self.size['replies']})"),
            ("  no answer: stored / not stored", f"{figures['unacked_stored']} / {figures['unacked_not_stored']}"),
            ("  no answer outside a kill (must be 0)", len(unacked_outside_kills)),
            ("  refused: 409 (bound) / other (must be 0)", f"{len(conflicts)} ({conflict_bound}) / {len(bad_refusals)}"),
            ("replies received by fake", figures["received_by_fake"]),
            ("  of the 201s (bound: at least)", f"{acked_received} of {acked} = {share} ({received_floor})"),
            ("  VK repeats dropped (random_id)", sum(len(v) for v in dropped.values())),
            ("  sends the fake refused (5xx/429)", self.fake_seen["flaked"]),
            ("  sends refused by CRASH_BREAK", self.fake_seen["broken"]),
            ("  provider calls cut off by a kill", self.fake_seen["cut_off"]),
            ("replies lost", len(lost_replies)),
            ("replies sent twice", len(twice)),
            ("unknown outcome, marked failed", len(unknown_outcome)),
            ("  not VK (bound) / VK (must be 0)", f"{len(non_idempotent_unknown)} ({unknown_bound}) / {len(vk_unknown)}"),
            ("  fake received: yes / no", f"{unknown_yes} / {len(unknown_outcome) - unknown_yes}"),
            ("replies failed otherwise (must be 0)", len(failed_other)),
            ("replies still pending", len(stuck)),
        ]
        for failed in failed_other[:20]:
            details.append(f"  failed: {failed['token']} ({failed['provider']}, message {failed['message_id']}): "
                           f"{failed['failure'][:120]}")
        if len(failed_other) > 20:
            details.append(f"  ... and {len(failed_other) - 20} more failed replies (report.json)")
        for u in unknown_outcome:
            details.append(f"  unknown outcome: {u['token']} ({u['provider']}, message {u['message_id']}, "
                           f"{'201' if u['acked'] else 'no answer'}), fake received: "
                           f"{'yes' if u['fake_received'] else 'no'}")
        for token, body in conflicts:
            details.append(f"  refused 409: {token}: {body}")
        data = {"unknown_outcome": unknown_outcome, "failed_other": failed_other, "figures": dict(figures),
                "bounds": {"unknown_outcome_not_vk": unknown_bound, "conflicts_409": conflict_bound,
                           "acked_min": acked_floor, "acked_received_min": received_floor}}
        return violations, rows, details, data


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True, help="the omnichat-local binary (release)")
    parser.add_argument("--quick", action="store_true", default=os.environ.get("CRASH_QUICK") == "1",
                        help="the reduced CI size (also CRASH_QUICK=1)")
    parser.add_argument("--deliveries", type=int, help="unique deliveries (default: by size)")
    parser.add_argument("--customers", type=int)
    parser.add_argument("--kills", type=int)
    parser.add_argument("--replies", type=int)
    parser.add_argument("--workers", type=int, help="concurrent provider deliveries")
    parser.add_argument("--seconds", type=float, help="duration the deliveries are paced over")
    parser.add_argument("--dup-rate", type=float, default=0.10, help="share re-sent after their 2xx")
    parser.add_argument("--race-rate", type=float, default=0.02, help="share sent twice at once")
    parser.add_argument("--late-rate", type=float, default=0.05, help="share replayed after the load")
    parser.add_argument("--flake-rate", type=float, default=0.02, help="share of sends the fake refuses (5xx/429)")
    parser.add_argument("--drain-timeout", type=float, default=150.0, help="seconds to wait for pending replies")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir also when all checks pass")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.randrange(10**6)
    size_name = "quick" if args.quick else "full"
    size = dict(SIZES[size_name])
    for key in ("deliveries", "customers", "kills", "replies", "workers", "seconds"):
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    size["customers"] = min(size["customers"], size["deliveries"])
    say(f"size {size_name} {size}, seed {args.seed}")

    try:
        breakage = breakage_from_env()
    except ValueError as error:
        say(f"ERROR (of the harness): {error}")
        return 2
    run = Run(args, size)
    run.size_name = size_name
    run.breakage = breakage
    status = 2
    try:
        violations = run.run()
        status = 1 if violations else 0
    except HarnessError as error:
        say(f"ERROR (of the harness): {error}")
    except OmnichatFault as error:
        print(f"\nVIOLATIONS:\n  - {error}")
        status = 1
    except KeyboardInterrupt:
        say("interrupted")
        status = 130
    finally:
        run.stop_load.set()
        run.abort.set()
        if getattr(run, "server", None) is not None:
            run.server.stop()
        if getattr(run, "fake", None) is not None:
            run.fake.stop()
        work = getattr(run, "work", None)
        if work:
            if status == 0 and not args.keep:
                shutil.rmtree(work, ignore_errors=True)
            else:
                say(f"work dir kept: {work}")
    return status


if __name__ == "__main__":
    sys.exit(main())
