"""The dev stack's fakes on one free 127.0.0.1 port, until SIGTERM or SIGINT:

- the Telegram Bot API, the VK API and the Viber REST Bot API of the crash harness
  (infra/crash/fake_providers.py: getMe, setWebhook keeping the secret_token, sendMessage recording each
  send, deleteWebhook, ...), under `/bot<token>/<method>`, `/method/<name>` and `/pa/<endpoint>`;
- a CloudFormation ResponseURL: `PUT /cloudformation-response/<anything>` records the custom resource's
  answer (CloudFormation's own is a presigned S3 URL taking the same PUT);
- API Gateway's management API of the WebSocket stage (the live function's LIVE_CALLBACK_URL is
  `<fakes>/live`): `POST /live/@connections/<id>` records the push and answers 200, or 410 (API Gateway's
  GoneException for a closed connection) when the id starts with `gone`;
- `GET /_fake/state`: what it saw, as JSON (Telegram webhook secrets and URLs by bot id, VK callback servers
  (URL, secret key) and confirmation codes by community id, Viber webhook URLs by token, sends, custom
  resource answers, live pushes, calls it did not know).

    python infra/lambda/fakes.py PORT_FILE     # writes the port to PORT_FILE once it listens

Standard library only.
"""

import json
import os
import signal
import sys
import threading
from http.server import ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crash"))
from fake_providers import FakeState, make_handler  # noqa: E402  (the path above first)


def main():
    port_file = sys.argv[1]
    state = FakeState()
    cfn_answers = []
    live_pushes = []
    providers = make_handler(state)

    class Handler(providers):
        def do_POST(self):
            path = self.path.split("?", 1)[0]
            if not path.startswith("/live/@connections/"):
                return self.route()
            connection = path.removeprefix("/live/@connections/")
            raw = self.raw_body()
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"unparsed": raw.decode("utf-8", "replace")}
            gone = connection.startswith("gone")
            with state.lock:
                live_pushes.append({"connection_id": connection, "body": body, "gone": gone,
                                    "signed": "execute-api" in (self.headers.get("Authorization") or "")})
            if gone:
                return self.answer(410, {"message": None}, [("x-amzn-ErrorType", "GoneException")])
            return self.answer(200, b"")

        def do_PUT(self):
            path = self.path.split("?", 1)[0]
            if not path.startswith("/cloudformation-response/"):
                return self.route()
            raw = self.raw_body()
            try:
                answer = json.loads(raw)
            except ValueError:
                answer = {"unparsed": raw.decode("utf-8", "replace")}
            with state.lock:
                cfn_answers.append({"path": path, "content_type": self.headers.get("Content-Type"),
                                    "answer": answer})
            return self.answer(200, b"")

        def do_GET(self):
            if self.path.split("?", 1)[0] != "/_fake/state":
                return self.route()
            with state.lock:
                snapshot = {
                    "telegram_secrets": {str(k): v for k, v in state.telegram_secrets.items()},
                    "telegram_webhooks": {str(k): v for k, v in state.telegram_webhooks.items()},
                    "vk_servers": {str(k): v for k, v in state.vk_servers.items()},
                    "vk_codes": {str(k): v for k, v in state.vk_codes.items()},
                    "viber_webhooks": dict(state.viber_webhooks),
                    "sends": list(state.sends),
                    "cloudformation_answers": list(cfn_answers),
                    "live_pushes": list(live_pushes),
                    "unknown_calls": list(state.unknown_calls),
                }
            return self.answer(200, snapshot)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    temp = f"{port_file}.tmp"
    with open(temp, "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.replace(temp, port_file)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
