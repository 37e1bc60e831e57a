"""A reverse proxy in front of moto that counts the AWS calls passing through, by service and operation.

    python3 counting_proxy.py UPSTREAM_URL PORT_FILE

Listens on a free 127.0.0.1 port (written to PORT_FILE once it accepts connections) and forwards every
request to UPSTREAM_URL (moto). DynamoDB, EventBridge and Secrets Manager all speak the JSON protocol, whose
operation is the `X-Amz-Target` header (`DynamoDB_20120810.GetItem`, `AWSEvents.PutEvents`,
`secretsmanager.GetSecretValue`); for anything else the service comes from the SigV4 signing scope
(`Credential=KEY/DATE/REGION/SERVICE/aws4_request`) and the operation from an `Action` parameter.

Own endpoints (not forwarded):
    GET  /__bench/counts   {"calls": [{"service", "operation", "status", "ms"}...], "counts": {"Service.Op": n}}
                           (ms: the call's time upstream, as the function waited for it, less the proxy's own)
    POST /__bench/reset    forgets the calls so far
    GET  /__bench/idle     {"in_flight": n}: calls forwarded and not yet answered by moto (a process killed
                           while waiting leaves its call in flight until moto has done it)
"""

import http.client
import json
import os
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICES = {"DynamoDB": "DynamoDB", "AWSEvents": "EventBridge", "secretsmanager": "SecretsManager"}
SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}

calls = []
calls_lock = threading.Lock()
in_flight = 0
upstream = urllib.parse.urlsplit(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5000")
local = threading.local()


def classify(headers, path, body):
    target = headers.get("X-Amz-Target")
    if target and "." in target:
        prefix, operation = target.split(".", 1)
        service = SERVICES.get(prefix.split("_", 1)[0], prefix)
        return service, operation
    scope = SCOPE.search(headers.get("Authorization", ""))
    service = scope.group(1) if scope else "unknown"
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    if not params.get("Action") and body:
        try:
            params = urllib.parse.parse_qs(body.decode())
        except UnicodeDecodeError:
            params = {}
    operation = (params.get("Action") or ["?"])[0]
    return service, operation


def connection():
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
        local.conn = conn
    return conn


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: the status line and headers go out in one write and the body in another; with Nagle's
    # algorithm the body waits for the client's delayed ACK of the first (40 ms on Linux), on every answer.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def own(self):
        if self.path == "/__bench/counts" and self.command == "GET":
            with calls_lock:
                listed = list(calls)
            counts = {}
            for call in listed:
                name = f"{call['service']}.{call['operation']}"
                counts[name] = counts.get(name, 0) + 1
            body = json.dumps({"calls": listed, "counts": counts}).encode()
            self.reply(200, body, [("Content-Type", "application/json")])
            return True
        if self.path == "/__bench/idle" and self.command == "GET":
            with calls_lock:
                body = json.dumps({"in_flight": in_flight}).encode()
            self.reply(200, body, [("Content-Type", "application/json")])
            return True
        if self.path == "/__bench/reset" and self.command == "POST":
            with calls_lock:
                calls.clear()
            self.reply(200, b"{}", [("Content-Type", "application/json")])
            return True
        return False

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/__bench/") and self.own():
            return
        global in_flight
        with calls_lock:
            in_flight += 1
        try:
            self.forward_upstream(body)
        finally:
            with calls_lock:
                in_flight -= 1

    def forward_upstream(self, body):
        service, operation = classify(self.headers, self.path, body)
        started = time.perf_counter()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        for attempt in (1, 2):
            conn = connection()
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                local.conn = None
                if attempt == 2:
                    self.reply(502, b'{"message":"upstream unreachable"}')
                    return
        with calls_lock:
            calls.append({"service": service, "operation": operation, "status": response.status,
                          "ms": round((time.perf_counter() - started) * 1000, 3)})
        out = [(k, v) for k, v in response.getheaders()
               if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]
        self.reply(response.status, payload, out)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = forward


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A killed Lambda process resets its connection: expected, not worth a traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def main():
    server = Server(("127.0.0.1", 0), Proxy)
    with open(sys.argv[2] + ".tmp", "w", encoding="utf-8") as port_file:
        port_file.write(str(server.server_address[1]))
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])
    server.serve_forever()


if __name__ == "__main__":
    main()
