"""A minimal AWS Lambda Runtime API on 127.0.0.1, for starting Lambda binaries outside Lambda.

It implements what a custom runtime (lambda_runtime) calls:

    GET  /2018-06-01/runtime/invocation/next            -> the next event, with Lambda-Runtime-Aws-Request-Id,
                                                           -Deadline-Ms, -Invoked-Function-Arn, -Trace-Id
    POST /2018-06-01/runtime/invocation/{id}/response   -> 202, the answer is recorded and timestamped
    POST /2018-06-01/runtime/invocation/{id}/error      -> 202, recorded as an error
    POST /2018-06-01/runtime/init/error                 -> 202, recorded as an init error

and timestamps (time.perf_counter_ns) the first `next` of a process (its init is done) and every answer.
Used as a library by lambdas.py (`RuntimeApi`); standalone it serves events from files in turn:

    python3 runtime_api.py PORT EVENT.json [EVENT.json ...]
"""

import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"
# How long a `next` waits for an event before answering 503 (the runtime then asks again). Bounded, so that
# no handler thread outlives the benchmark by much.
NEXT_WAIT_SECONDS = 30
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:{name}"


class Invocation:
    def __init__(self, event, function_name, deadline_seconds):
        self.request_id = str(uuid.uuid4())
        self.event = event if isinstance(event, (bytes, bytearray)) else json.dumps(event).encode()
        self.function_name = function_name
        self.deadline_seconds = deadline_seconds
        self.delivered_ns = None
        self.answered_ns = None
        self.outcome = None  # "response", "error"
        self.body = None
        self.done = threading.Event()


class RuntimeApi(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port=0):
        super().__init__(("127.0.0.1", port), Handler)
        self.lock = threading.Condition()
        self.pending = []
        self.invocations = {}
        self.first_next_ns = None
        self.init_error = None
        self.closing = False
        # Bumped for every new process: a `next` still waiting for a killed process gives up instead of
        # taking the next process's event.
        self.generation = 0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def handle_error(self, request, client_address):
        # A killed Lambda process resets its connection: expected, not worth a traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    @property
    def address(self):
        return f"127.0.0.1:{self.server_address[1]}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        with self.lock:
            self.closing = True
            self.lock.notify_all()
        self.shutdown()
        self.server_close()

    def new_process(self):
        """Forget the previous process's timestamps (call before starting the next one)."""
        with self.lock:
            self.first_next_ns = None
            self.init_error = None
            self.pending.clear()
            self.generation += 1
            self.lock.notify_all()

    def submit(self, event, function_name="bench", deadline_seconds=10):
        invocation = Invocation(event, function_name, deadline_seconds)
        with self.lock:
            self.invocations[invocation.request_id] = invocation
            self.pending.append(invocation)
            self.lock.notify_all()
        return invocation

    def invoke(self, event, function_name="bench", timeout=30):
        """Submits an event and waits for its answer; returns the Invocation (outcome None on time-out)."""
        invocation = self.submit(event, function_name)
        invocation.done.wait(timeout)
        return invocation

    def take(self, timeout):
        deadline = time.monotonic() + timeout
        with self.lock:
            generation = self.generation
            if self.first_next_ns is None:
                self.first_next_ns = time.perf_counter_ns()
            while not self.pending and not self.closing and generation == self.generation:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.lock.wait(left)
            if self.closing or generation != self.generation:
                return None
            invocation = self.pending.pop(0)
            invocation.delivered_ns = time.perf_counter_ns()
            return invocation

    def answer(self, request_id, outcome, body):
        now = time.perf_counter_ns()
        with self.lock:
            invocation = self.invocations.get(request_id)
        if invocation is None:
            return False
        invocation.answered_ns = now
        invocation.outcome = outcome
        invocation.body = body
        invocation.done.set()
        return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: the status line and headers go out in one write and the body in another; with Nagle's
    # algorithm the body waits for the client's delayed ACK of the first (40 ms on Linux), on every answer.
    disable_nagle_algorithm = True
    server: RuntimeApi

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path != f"{PREFIX}/invocation/next":
            return self.reply(404, b'{"errorMessage":"not found"}')
        invocation = self.server.take(NEXT_WAIT_SECONDS)
        if invocation is None:
            return self.reply(503, b'{"errorMessage":"no event"}')
        deadline_ms = int(time.time() * 1000) + invocation.deadline_seconds * 1000
        headers = [
            ("Lambda-Runtime-Aws-Request-Id", invocation.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", FUNCTION_ARN.format(name=invocation.function_name)),
            ("Lambda-Runtime-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"),
        ]
        self.reply(200, invocation.event, headers)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = self.path.split("/")
        # ['', '2018-06-01', 'runtime', 'invocation', ID, 'response'|'error'] or [..., 'init', 'error']
        if self.path == f"{PREFIX}/init/error":
            self.server.init_error = body
            return self.reply(202, b'{"status":"OK"}')
        if len(parts) == 6 and parts[3] == "invocation" and parts[5] in ("response", "error"):
            if self.server.answer(parts[4], parts[5], body):
                return self.reply(202, b'{"status":"OK"}')
            return self.reply(400, b'{"errorMessage":"unknown request id"}')
        self.reply(404, b'{"errorMessage":"not found"}')


def main():
    port = int(sys.argv[1])
    api = RuntimeApi(port).start()
    print(f"runtime API on {api.address}", flush=True)
    try:
        for path in sys.argv[2:]:
            with open(path, "rb") as event:
                invocation = api.invoke(event.read(), timeout=300)
            print(json.dumps({"event": path, "outcome": invocation.outcome,
                              "body": (invocation.body or b"").decode(errors="replace")}), flush=True)
    finally:
        api.stop()


if __name__ == "__main__":
    main()
