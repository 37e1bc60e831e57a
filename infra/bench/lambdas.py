"""The Lambda-process parts of the benchmark (run by infra/bench/run.sh, inside infra/moto/with-moto.sh with
the counting proxy in front of moto): every function binary runs as a process against runtime_api.py.

    python3 lambdas.py cold-start  --bins DIR --seed SEED.json --runs 11 --out cold-start.json
    python3 lambdas.py memory      --bins DIR --seed SEED.json --out memory.json
    python3 lambdas.py roundtrips  --bins DIR --seed SEED.json --proxy URL --out roundtrips.json

The environment is the functions' (TABLE_NAME, EVENT_BUS_NAME, PUBLIC_BASE_URL, TELEGRAM_API_BASE,
AWS_ENDPOINT_URL, credentials): run.sh exports it. SEED.json: {tenant_id, channel_id, secret, admin_key,
channels: {vk, viber, whatsapp, avito}} (infra/bench/src/bin/seed.rs's output, with the Telegram secret and
the admin key added).

cold-start: per function, RUNS fresh processes (in rounds: one of each function a round), each fed one
realistic event; per start the time from the spawn to the first `next` (init), to the response POST (first
answer), and a second, warm invocation of a similar event. memory: per function, the largest event (the
biggest fixture of its provider), peak RSS (VmHWM) read from /proc just before the process is killed.
roundtrips: webhook-telegram in one warm process, the AWS calls per delivered message (by service and
operation), from the proxy's counters.
"""

import argparse
import hashlib
import hmac
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

from runtime_api import RuntimeApi

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
ANSWER_TIMEOUT = 30
# The functions of template.yaml, in the order the cold-start table lists them. hello-lambda is the
# baseline (an HTTP hello world, fed the Telegram webhook event). The cold start also times it on the
# current-thread runtime the functions use (the same binary with HELLO_LAMBDA_RUNTIME=current_thread).
FUNCTIONS = ["webhook-telegram", "webhook-vk", "webhook-viber", "webhook-whatsapp", "webhook-avito", "api",
             "router", "auto-reply", "inactivity-close", "email-poller", "live"]
BASELINE = "hello-lambda"
BASELINE_CURRENT_THREAD = "hello-lambda-current-thread"


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


def event_file(function, name):
    with open(os.path.join(REPO, "functions", function, "events", name), encoding="utf-8") as handle:
        return handle.read()


def fill(template, replacements):
    for old, new in replacements.items():
        template = template.replace(old, new)
    return json.loads(template)


class Events:
    """Realistic events per function. Every webhook: its provider's connected channel (seed.rs), signed or
    addressed the way the provider does it, with fresh message ids and a fresh customer per event (unless
    `customer` is given), so that every delivery runs the whole path (channel, verification, ingest, a
    new dialog stored), never a duplicate."""

    def __init__(self, seed):
        self.seed = seed
        self.counter = int(time.time() * 1000) % 1_000_000_000
        self.dialog_id = None

    def next_id(self):
        self.counter += 1
        return self.counter

    def telegram(self, fixture_name="telegram_text.json", customer=None, update_id=None):
        update = json.loads(fixture(fixture_name))
        update["update_id"] = update_id if update_id is not None else self.next_id()
        customer = customer if customer is not None else 500_000_000 + self.next_id()
        for key in ("message", "edited_message", "callback_query"):
            if key in update:
                part = update[key]
                message = part.get("message", part)
                if "chat" in message:
                    message["chat"]["id"] = customer
                if "from" in part:
                    part["from"]["id"] = customer
                if "message_id" in message:
                    message["message_id"] = self.next_id()
        event = fill(event_file("webhook-telegram", "telegram-text.json"),
                     {"CHANNEL_ID": self.seed["channel_id"], "WEBHOOK_SECRET": self.seed["secret"]})
        event["body"] = json.dumps(update)
        return event

    def webhook(self, function, name, provider, change):
        """The event file NAME of FUNCTION at PROVIDER's seeded channel; CHANGE(body, n) makes the body's ids
        and customer fresh (n: a number unused so far)."""
        channel = self.seed["channels"][provider]
        event = fill(event_file(function, name),
                     {"CHANNEL_ID": channel["channel_id"], "WEBHOOK_SECRET": channel.get("secret", ""),
                      "SIGNATURE": "unsigned"})
        body = json.loads(event["body"])
        change(body, self.next_id())
        event["body"] = json.dumps(body, ensure_ascii=False)
        if "token" in channel:  # Viber: the body's HMAC-SHA256 under the bot's token
            event["headers"]["x-viber-content-signature"] = hmac.new(
                channel["token"].encode(), event["body"].encode(), hashlib.sha256).hexdigest()
        return event

    def vk(self):
        def change(body, n):
            message = body["object"]["message"]
            body["group_id"] = self.seed["channels"]["vk"]["group_id"]
            body["event_id"] = f"{n:040x}"
            message["from_id"] = message["peer_id"] = 600_000_000 + n
            message["conversation_message_id"] = message["id"] = n
        return self.webhook("webhook-vk", "vk-message-new.json", "vk", change)

    def viber(self):
        def change(body, n):
            body["message_token"] = 4_900_000_000_000_000_000 + n
            body["sender"]["id"] = f"bench{n}=="
        return self.webhook("webhook-viber", "viber-text.json", "viber", change)

    def whatsapp(self):
        def change(body, n):
            body["id"] = n
            body["subscriber"] = {"id": n, "identifier": str(79_000_000_000 + n)}
        return self.webhook("webhook-whatsapp", "edna-text.json", "whatsapp", change)

    def avito(self):
        def change(body, n):
            value = body["payload"]["value"]
            value["id"] = f"{n:032x}"
            value["chat_id"] = f"u2i-bench-{n}"
            value["author_id"] = 2_000_000 + n
        return self.webhook("webhook-avito", "avito-text.json", "avito", change)

    def api(self, path="/v1/dialogs", query="limit=50"):
        event = fill(event_file("webhook-telegram", "telegram-text.json"),
                     {"CHANNEL_ID": "x", "WEBHOOK_SECRET": "x"})
        event["routeKey"] = event["requestContext"]["routeKey"] = "ANY /v1/{proxy+}"
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["rawQueryString"] = query
        event["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        event["pathParameters"] = {"proxy": path.removeprefix("/v1/")}
        event["requestContext"]["http"]["method"] = "GET"
        event["headers"] = {"host": event["headers"]["host"], "x-forwarded-proto": "https",
                            "authorization": f"Bearer {self.seed['admin_key']}"}
        event.pop("body", None)
        return event

    def router(self):
        event = json.loads(event_file("router", "dialog-opened.json"))
        detail = event["detail"]
        detail["tenant_id"] = self.seed["tenant_id"]
        detail["channel_id"] = self.seed["channel_id"]
        if self.dialog_id:
            detail["dialog_id"] = self.dialog_id
        return event

    def live(self):
        """An event of the seeded tenant for the live function's fan-out: its open pages read from the
        table (none are open here, so nothing is pushed)."""
        event = json.loads(event_file("live", "eventbridge.json"))
        event["detail"]["tenant_id"] = self.seed["tenant_id"]
        event["detail"]["channel_id"] = self.seed["channel_id"]
        return event

    def scheduled(self):
        return json.loads(event_file("email-poller", "scheduled.json"))

    def for_function(self, function, largest=False):
        """(description, event) for one invocation of FUNCTION."""
        if function in ("webhook-telegram", BASELINE, BASELINE_CURRENT_THREAD):
            name = "telegram_document.json" if largest else "telegram_text.json"
            return f"POST telegram webhook, {name}, new customer", self.telegram(name)
        if function == "webhook-vk":
            return "POST vk message_new (signed), new customer", self.vk()
        if function == "webhook-viber":
            return "POST viber message (signed), new customer", self.viber()
        if function == "webhook-whatsapp":
            return "POST edna message (secret path), new customer", self.whatsapp()
        if function == "webhook-avito":
            return "POST avito message (secret path), new customer", self.avito()
        if function == "api":
            limit = 500 if largest else 50
            return f"GET /v1/dialogs?limit={limit}", self.api(query=f"limit={limit}")
        if function == "router":
            return "DialogOpened of a stored dialog", self.router()
        if function == "live":
            return "DialogAssigned, no page open", self.live()
        return "Scheduled Event", self.scheduled()


def function_env(name, runtime_address):
    env = dict(os.environ)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": runtime_address,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]bench",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "LAMBDA_TASK_ROOT": os.path.dirname(os.path.abspath(name)),
    })
    env.setdefault("RUST_LOG", "info")
    if name == BASELINE_CURRENT_THREAD:
        env["HELLO_LAMBDA_RUNTIME"] = "current_thread"
    return env


def binary_of(bins, function):
    return os.path.join(bins, BASELINE if function == BASELINE_CURRENT_THREAD else function)


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Process:
    """One Lambda container: a process of BINARY against API, its output in LOG."""

    def __init__(self, api, binary, name, log):
        self.api = api
        api.new_process()
        self.log = log
        self.spawned_ns = time.perf_counter_ns()
        self.proc = subprocess.Popen([binary], env=function_env(name, api.address), stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT)

    def stop(self):
        """Peak RSS in KiB (read just before the kill), then SIGKILL and reap."""
        hwm = vm_hwm_kib(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        return hwm


def answer_summary(invocation):
    if invocation.outcome is None:
        return "no answer"
    if invocation.outcome == "error":
        return "error: " + (invocation.body or b"")[:200].decode(errors="replace")
    try:
        body = json.loads(invocation.body or b"null")
    except ValueError:
        return "response"
    if isinstance(body, dict) and "statusCode" in body:
        return f"HTTP {body['statusCode']}"
    return "ok"


def require_full_path(function, invocation):
    """A webhook that did not answer 200 did not run the path its row claims (a bad signature, an unknown
    channel): the run stops rather than time the wrong thing."""
    answer = answer_summary(invocation)
    if function.startswith("webhook-") and invocation.outcome is not None and answer != "HTTP 200":
        raise SystemExit(f"{function} answered {answer}, not HTTP 200: its event does not reach the full path")


def ms(ns):
    return round(ns / 1e6, 2)


def cold_start(args, api, events, logs):
    """RUNS starts of every function, taken in rounds: each round starts every function once, the baselines
    first. A change in the machine's load during the run (two cores shared with moto, the runtime fake and
    this script) so falls on every function alike instead of on whichever was being started at the time."""
    proxy = args.proxy.rstrip("/") if args.proxy else None
    functions = [BASELINE, BASELINE_CURRENT_THREAD] + FUNCTIONS
    runs = {function: [] for function in functions}
    failed = {function: [] for function in functions}
    descriptions = {}
    # A start that never answered is recorded and retried, at most 3 in all per function: the rounds go on
    # until every function has its RUNS starts.
    for _ in range(args.runs + 3):
        for function in [f for f in functions if len(runs[f]) < args.runs]:
            descriptions[function], run = start_once(args, api, events, logs, proxy, function, failed[function])
            if run is not None:
                runs[function].append(run)
    results = {}
    for function in functions:
        results[function] = summary(descriptions[function], runs[function], failed[function])
        print(f"cold-start {function}: init {results[function]['median_init_ms']} ms, first answer "
              f"{results[function]['median_first_answer_ms']} ms ({', '.join(results[function]['answers'])})",
              file=sys.stderr, flush=True)
    return results


def start_once(args, api, events, logs, proxy, function, failed):
    """One cold start of FUNCTION and a warm invocation after it: (the event's description, the run's
    figures), the figures None (the start recorded in FAILED) when the start got no answer."""
    binary = binary_of(args.bins, function)
    description, event = events.for_function(function)
    _, warm_event = events.for_function(function)
    with open(os.path.join(logs, f"{function}.log"), "ab") as log:
        if proxy:
            settle(proxy)
            proxy_call(proxy, "/__bench/reset", "POST")
        process = Process(api, binary, function, log)
        first = api.invoke(event, function, timeout=ANSWER_TIMEOUT)
        init_ns = (api.first_next_ns or 0) - process.spawned_ns
        # The AWS calls of the cold invocation and the time the function waited on them (moto's).
        aws = proxy_call(proxy, "/__bench/counts")["calls"] if proxy else []
        warm = api.invoke(warm_event, function, timeout=ANSWER_TIMEOUT) if first.outcome else None
        alive = process.proc.poll() is None
        hwm = process.stop()
    if first.outcome is None:
        failed.append({"asked_for_event": api.first_next_ns is not None, "process_alive": alive})
        print(f"{function}: a start got no answer within {ANSWER_TIMEOUT}s: {failed[-1]}", file=sys.stderr)
        if len(failed) > 3:
            raise SystemExit(f"{function}: {len(failed)} starts without an answer (see {logs}/{function}.log)")
        return description, None
    require_full_path(function, first)
    if function == "api" and events.dialog_id is None and first.outcome == "response":
        try:
            page = json.loads(json.loads(first.body)["body"])
            events.dialog_id = page["items"][0]["id"] if page["items"] else None
        except (ValueError, KeyError, TypeError):
            pass
    return description, {
        "init_ms": ms(init_ns),
        "first_answer_ms": ms(first.answered_ns - process.spawned_ns),
        "handler_ms": ms(first.answered_ns - first.delivered_ns),
        "aws_calls": len(aws),
        "aws_wait_ms": round(sum(call.get("ms", 0) for call in aws), 2),
        "warm_handler_ms": ms(warm.answered_ns - warm.delivered_ns) if warm and warm.answered_ns else None,
        "answer": answer_summary(first),
        "vm_hwm_kib": hwm,
    }


def summary(description, runs, failed):
    """The medians of one function's starts."""
    warm_values = [r["warm_handler_ms"] for r in runs if r["warm_handler_ms"] is not None]
    return {
        "event": description,
        "runs": runs,
        "median_init_ms": statistics.median(r["init_ms"] for r in runs),
        "median_first_answer_ms": statistics.median(r["first_answer_ms"] for r in runs),
        "median_handler_ms": statistics.median(r["handler_ms"] for r in runs),
        "median_aws_calls": statistics.median(r["aws_calls"] for r in runs),
        "median_aws_wait_ms": statistics.median(r["aws_wait_ms"] for r in runs),
        "median_own_first_answer_ms": statistics.median(r["first_answer_ms"] - r["aws_wait_ms"] for r in runs),
        "median_warm_handler_ms": statistics.median(warm_values) if warm_values else None,
        "answers": sorted({r["answer"] for r in runs}),
        "failed_starts": failed,
    }


def memory(args, api, events, logs):
    results = {}
    for function in [BASELINE] + FUNCTIONS:
        binary = os.path.join(args.bins, function)
        peaks, answers = [], set()
        for _ in range(args.runs):
            description, event = events.for_function(function, largest=True)
            with open(os.path.join(logs, f"{function}.memory.log"), "ab") as log:
                process = Process(api, binary, function, log)
                invocation = api.invoke(event, function, timeout=ANSWER_TIMEOUT)
                hwm = process.stop()
            require_full_path(function, invocation)
            answers.add(answer_summary(invocation))
            peaks.append(hwm)
        results[function] = {"event": description, "peak_rss_kib": max(p for p in peaks if p is not None),
                             "runs_kib": peaks, "answers": sorted(answers)}
        print(f"memory {function}: {results[function]['peak_rss_kib']} KiB", file=sys.stderr, flush=True)
    return results


def settle(proxy, limit_s=10.0):
    """Waits until moto has answered every call in flight (the counting proxy's count), so that a start is
    not timed while moto, on the same two cores, still works through the previous process's calls (the
    baseline makes none). Bounded: after LIMIT_S the start goes ahead, and says so."""
    deadline = time.monotonic() + limit_s
    while proxy_call(proxy, "/__bench/idle")["in_flight"] > 0:
        if time.monotonic() > deadline:
            print(f"moto still busy after {limit_s} s; starting anyway", file=sys.stderr)
            return
        time.sleep(0.01)


def proxy_call(proxy, path, method="GET"):
    request = urllib.request.Request(proxy + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def roundtrips(args, api, events, logs):
    proxy = args.proxy.rstrip("/")
    function = "webhook-telegram"
    steady_runs = args.runs
    cases = []

    def deliver(case, event):
        proxy_call(proxy, "/__bench/reset", "POST")
        invocation = api.invoke(event, function, timeout=ANSWER_TIMEOUT)
        counted = proxy_call(proxy, "/__bench/counts")
        cases.append({"case": case, "answer": answer_summary(invocation), "counts": counted["counts"],
                      "calls": [f"{c['service']}.{c['operation']} {c['status']}" for c in counted["calls"]],
                      "total": len(counted["calls"])})
        print(f"roundtrips {case}: {counted['counts']} ({answer_summary(invocation)})", file=sys.stderr,
              flush=True)

    with open(os.path.join(logs, f"{function}.roundtrips.log"), "ab") as log:
        proxy_call(proxy, "/__bench/reset", "POST")
        process = Process(api, os.path.join(args.bins, function), function, log)
        try:
            first_customer = 700_000_000 + events.next_id()
            deliver("cold container: a new customer's first message",
                    events.telegram(customer=first_customer))
            customer = 700_000_000 + events.next_id()
            deliver("warm container: a new customer's first message", events.telegram(customer=customer))
            last = None
            for run in range(steady_runs):
                last = events.telegram(customer=customer)
                deliver(f"steady state: same customer, next message ({run + 1}/{steady_runs})", last)
            deliver("duplicate delivery of the last message", last)
        finally:
            process.stop()
    return {"function": function, "cases": cases}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=["cold-start", "memory", "roundtrips"])
    parser.add_argument("--bins", required=True)
    parser.add_argument("--seed", required=True)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--proxy")
    parser.add_argument("--logs", default=os.environ.get("TMPDIR", "/tmp"))
    parser.add_argument("--dialog-id")
    parser.add_argument("--functions", help="comma-separated subset of the functions (default: all)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    if args.functions:
        chosen = args.functions.split(",")
        FUNCTIONS[:] = [f for f in FUNCTIONS if f in chosen]
    events = Events(read_json(args.seed))
    events.dialog_id = args.dialog_id
    api = RuntimeApi().start()
    try:
        part = {"cold-start": cold_start, "memory": memory, "roundtrips": roundtrips}[args.part]
        result = part(args, api, events, args.logs)
    finally:
        api.stop()
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
