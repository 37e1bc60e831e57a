"""Writes BENCHMARKS.md (to stdout) from the results infra/bench/run.sh leaves in RESULTS_DIR.

    python3 report.py RESULTS_DIR REPO_ROOT > BENCHMARKS.md

A part without results in RESULTS_DIR keeps its section of the BENCHMARKS.md being replaced, marked with
the commit that report was written at (so a run of some parts, or a run from a fresh clone, loses none of the
others); a part never measured gets a marked slot. Each part's results say when they were measured; every
figure's baseline comes from the same run as the figure.
"""

import datetime
import json
import os
import platform
import subprocess
import sys

MB = 1024 * 1024


def load(results, name):
    path = os.path.join(results, name)
    if not os.path.exists(path):
        return None, None
    measured = datetime.datetime.fromtimestamp(os.path.getmtime(path), datetime.timezone.utc)
    with open(path, encoding="utf-8") as handle:
        data = handle.read() if name.endswith(".md") else json.loads(handle.read())
    return data, measured.strftime("%Y-%m-%d %H:%M UTC")


def command(args, cwd=None):
    try:
        return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine(repo):
    cpu = "?"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "?"
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    commit = command(["git", "rev-parse", "--short=12", "HEAD"], repo)
    # The report itself is rewritten by every run: only other changes make the build differ from the commit.
    dirty = command(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!BENCHMARKS.md"], repo)
    return [
        f"- Machine: {os.cpu_count()} CPUs ({cpu}), {ram} RAM, Linux {platform.release()}",
        f"- Toolchain: {command(['rustc', '--version'])}",
        f"- Report written: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- Git commit: {commit}" + (" (with uncommitted changes in the working tree)" if dirty else ""),
    ]


def met(ok):
    return "yes" if ok else "**no**"


def ratio(value, baseline):
    return f"{value / baseline:.2f}×" if baseline else "n/a"


def webhook_note(data):
    """What the webhook rows measured: results from before the full path was seeded say so."""
    if any("not the full path" in result.get("event", "") for result in data.values()):
        return ("The webhook-vk, webhook-viber, webhook-whatsapp and webhook-avito rows measure the unknown-channel "
                "path only: the function starts, reads the channel, finds none and answers 404; not the full "
                "webhook path that webhook-telegram's row measures.")
    return ("Every webhook row is the full path: a channel of that provider connected by the seed (the use case "
            "against infra/api/provider_stub.py's fakes of the provider's connect), the event a real fixture sent "
            "the way the provider sends it (VK's secret in the body, Viber's HMAC signature, edna's and Avito's "
            "secret URL segment, Telegram's secret header) with fresh ids and a new customer each time: the "
            "channel read, the verification, a new dialog and its first message stored, HTTP 200 (lambdas.py "
            "stops the run on any other answer).")


CURRENT_THREAD_BASELINE = "hello-lambda-current-thread"


def moto_growth_note(data):
    """The moto-bound columns grow through the run: said with the first webhook's figures, first and last start."""
    runs = data.get("webhook-telegram", {}).get("runs", [])
    if len(runs) < 2:
        return ""
    return (f"Moto answers more slowly as the run fills its table (each webhook start adds a customer and a "
            f"dialog, each job start works through what the earlier starts left due): webhook-telegram's AWS wait "
            f"was {runs[0]['aws_wait_ms']} ms at its first start and {runs[-1]['aws_wait_ms']} ms at its last. So "
            "the columns that wait on moto (first answer, AWS wait, the handlers) depend on how long the run is, "
            "and init, which calls nothing, does not.")


def cold_start(results):
    data, when = load(results, "cold-start.json")
    out = ["## 1. Cold start", ""]
    if not data:
        return out + ["_Not measured yet: `infra/bench/run.sh cold-start`._", ""]
    base = data["hello-lambda"]
    runs = len(base["runs"])
    out += [
        f"Measured {when}. Host x86_64 release build of each function as a process against a local Lambda Runtime "
        f"API (infra/bench/runtime_api.py), moto behind the counting proxy; median of {runs} fresh processes "
        "each. *First answer*: process spawn → the response POST received (the goal's figure). *Init*: spawn → "
        "the runtime's first `GET /next` (start-up done). *Handler*: event delivered → answer, in the cold "
        "process and in a second (warm) invocation of the same process. Baseline: `hello-lambda` (hello-world "
        "`lambda_http`, same profile and features) fed the Telegram event. Goals: first answer ≤ 1.3× the baseline "
        "(issue 9), init ≤ 1.5× the baseline's (issue 16).",
        "Each start waits until moto has answered every call still in flight (the counting proxy's count): on "
        "this two-core machine moto finishing the previous process's calls otherwise lands in the next start's "
        "init (the baseline calls nothing). The starts are taken in rounds, one of each function a round, so that "
        "a change in the machine's load during the run falls on every function alike. The functions run tokio's "
        "current-thread runtime (a container runs one invocation at a time), while `hello-lambda` keeps the "
        "multi-threaded one that `cargo lambda new` writes, whose init includes starting the worker threads: "
        "`hello-lambda-current-thread` is the same binary on the current-thread runtime, and the init goal is "
        "judged against it, like for like (*init ratio* is against `hello-lambda`, as in earlier reports).",
        "*AWS calls* and *AWS wait*: the cold invocation's calls through the counting proxy and the time spent "
        "waiting on them (moto's answers, timed at the proxy). *Own*: first answer less AWS wait, the part the "
        "binary itself spends (start-up, TLS and SDK set-up, parsing, serialising), and its ratio to the baseline; "
        "not defined for a function whose calls overlap (the scheduled drains read 8 shards at once, so their AWS "
        "wait adds up to more than the answer took).",
        webhook_note(data),
        moto_growth_note(data),
        "",
        "| function | event | answer | first answer (ms) | baseline (ms) | ratio | goal ≤ 1.3× | init (ms) | "
        "init ratio | init ratio, current-thread baseline | init goal ≤ 1.5× | cold handler (ms) | AWS calls | AWS wait (ms) | own (ms) | own ratio | warm handler (ms) |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    base_first = base["median_first_answer_ms"]
    # The like-for-like baseline of init (results from before it was measured: the one baseline).
    init_base = data.get(CURRENT_THREAD_BASELINE, base)["median_init_ms"]
    for name, result in data.items():
        first, init = result["median_first_answer_ms"], result["median_init_ms"]
        warm = result["median_warm_handler_ms"]
        own = result.get("median_own_first_answer_ms", first)
        is_baseline = name in ("hello-lambda", CURRENT_THREAD_BASELINE)
        baseline = "—" if is_baseline else f"{base_first:.2f}"
        goal = "(baseline)" if is_baseline else met(first <= 1.3 * base_first)
        init_goal = "(baseline)" if is_baseline else met(init <= 1.5 * init_base)
        out.append(
            f"| {name} | {result['event']} | {', '.join(result['answers'])} | {first:.2f} | {baseline} | "
            f"{ratio(first, base_first)} | {goal} | {init:.2f} | "
            f"{ratio(init, base['median_init_ms'])} | {ratio(init, init_base)} | {init_goal} | "
            f"{result['median_handler_ms']:.2f} | "
            f"{result.get('median_aws_calls', '—')} | {result.get('median_aws_wait_ms', 0):.2f} | "
            + (f"{own:.2f} | {ratio(own, base.get('median_own_first_answer_ms', base_first))} | " if own >= 0
               else "— | — (calls in parallel) | ") +
            f"{'—' if warm is None else f'{warm:.2f}'} |")
    failed = {name: len(r.get("failed_starts", [])) for name, r in data.items() if r.get("failed_starts")}
    if failed:
        out += ["", "Starts that got no answer within 30 s (retried, not in the medians): "
                + ", ".join(f"{name} {n}" for name, n in failed.items()) + "."]
    return out + [""]


def package_size(results):
    data, when = load(results, "package-size.json")
    out = ["## 2. Package size", ""]
    if not data:
        return out + ["_Not measured yet: `infra/bench/run.sh package-size`._", ""]
    base = data.get("hello-lambda")
    out += [
        f"Measured {when}. `cargo lambda build --release --arm64 --output-format zip` (the workspace release "
        "profile), `target/lambda/<bin>/bootstrap.zip`. Baseline: `hello-lambda`. Goal: ≤ 6 MB zipped each.",
        "",
        "| function | zipped (MB) | unzipped (MB) | baseline zipped (MB) | ratio | goal ≤ 6 MB |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, size in data.items():
        baseline = "—" if name == "hello-lambda" or not base else f"{base['zipped'] / MB:.2f}"
        goal = "(baseline)" if name == "hello-lambda" else met(size["zipped"] <= 6 * MB)
        out.append(f"| {name} | {size['zipped'] / MB:.2f} | {size['unzipped'] / MB:.2f} | {baseline} | "
                   f"{ratio(size['zipped'], base['zipped'] if base else 0)} | {goal} |")
    return out + [""]


def ingest(results):
    data, when = load(results, "ingest.json")
    out = ["## 3. Ingest throughput (omnichat-local, Telegram webhook)", ""]
    if not data:
        return out + ["_Not measured yet: `infra/bench/run.sh ingest`._", ""]
    runs, settings, verify = data["runs"], data["settings"], data["verify"]

    def rate(run):
        return run["requests"] / (run["duration_us"] / 1e6)

    def ok2xx(run):
        return sum(n for status, n in run["statuses"].items() if 200 <= int(status) < 300)

    def other(run):
        errors = sum(run["errors"].values())
        non2xx = run["requests"] - ok2xx(run)
        return f"{non2xx} non-2xx, {errors} socket errors"

    bare, full = runs["bare-full"], runs["omnichat-full"]
    half, bare_half = runs["omnichat-half"], runs["bare-half"]
    out += [
        f"Measured {when}. wrk 4 (`infra/bench/telegram.lua`): `-t{settings['threads']} "
        f"-c{settings['connections']} -d{settings['duration']}`, every request a Telegram update with a unique "
        f"update_id from one of {settings['customers']} customers, with the channel's secret token; the same "
        "requests against `bare-axum` (an axum server answering 200). Then both at half omnichat's rate "
        f"(target {settings['half_rate_target']:.0f} req/s: {settings['half_rate_connections']} connections, "
        f"each waiting {settings['half_rate_delay_ms']} ms after every answer, wrk's `delay()`, the connections set by a 3 s calibration run). omnichat-local "
        "release build, fresh data dir, `RUST_LOG=info` to a file, the machine's other load as it was. "
        "Goals: ≥ 25% of the bare server's req/s; p99 ≤ 10 ms at half that rate.",
        "",
        "| run | req/s | p50 (ms) | p99 (ms) | max (ms) | errors | baseline req/s (bare-axum) | ratio | goal |",
        "|---|---:|---:|---:|---:|---|---:|---:|---|",
        f"| bare-axum, full rate (baseline) | {rate(bare):.0f} | {bare['latency_us']['p50'] / 1000:.2f} | "
        f"{bare['latency_us']['p99'] / 1000:.2f} | {bare['latency_us']['max'] / 1000:.2f} | {other(bare)} | — | — | "
        "(baseline) |",
        f"| omnichat-local, full rate | {rate(full):.0f} | {full['latency_us']['p50'] / 1000:.2f} | "
        f"{full['latency_us']['p99'] / 1000:.2f} | {full['latency_us']['max'] / 1000:.2f} | {other(full)} | "
        f"{rate(bare):.0f} | {rate(full) / rate(bare) * 100:.1f}% | ≥ 25%: {met(rate(full) >= 0.25 * rate(bare))} |",
        f"| bare-axum, half rate (baseline) | {rate(bare_half):.0f} | {bare_half['latency_us']['p50'] / 1000:.2f} | "
        f"{bare_half['latency_us']['p99'] / 1000:.2f} | {bare_half['latency_us']['max'] / 1000:.2f} | "
        f"{other(bare_half)} | — | — | (baseline) |",
        f"| omnichat-local, half rate | {rate(half):.0f} | {half['latency_us']['p50'] / 1000:.2f} | "
        f"{half['latency_us']['p99'] / 1000:.2f} | {half['latency_us']['max'] / 1000:.2f} | {other(half)} | "
        f"p99 {bare_half['latency_us']['p99'] / 1000:.2f} ms | p99 "
        f"{ratio(half['latency_us']['p99'], bare_half['latency_us']['p99'])} | p99 ≤ 10 ms: "
        f"{met(half['latency_us']['p99'] <= 10_000)} |",
        "",
        "Exactly once (`verify_stored.py`, every dialog and message listed through the API; the update id is "
        "the message id, each wrk thread sends one contiguous range):",
        "",
        "| omnichat run | sent | acknowledged 2xx | stored | sent, not stored | sent, not acknowledged |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for run in verify["runs"]:
        out.append(f"| {run['run'].removeprefix('ingest-').removesuffix('.json')} | {run['sent']} | "
                   f"{run['acknowledged_2xx']} | {run['stored']} | {run['sent_not_stored']} | "
                   f"{run['sent_not_acknowledged']} |")
    out += [
        "",
        f"In all: {verify['inbound_messages']} inbound messages in {verify['dialogs']} dialogs, "
        f"{verify['distinct_message_ids']} distinct message ids, {verify['duplicates']} stored twice, "
        f"{verify['stored_but_never_sent']} stored but never sent; {verify['acknowledged_2xx']} acknowledged "
        "(with the delivery by hand). What is checked id by id: no message id stored twice, none stored that "
        "was not sent, the delivery by hand stored. What is a count: wrk does not say which requests were "
        "acknowledged, so \"every acknowledged update is stored\" is checked per run as a bound over the ids, "
        "sent but not stored ≤ sent but not acknowledged (a request in flight when its run ended may or may "
        "not be stored). All of these hold: "
        f"**{'yes' if verify['exactly_once'] else 'NO'}**.",
        "",
    ]
    return out


def roundtrips(results):
    data, when = load(results, "roundtrips.json")
    out = ["## 4. AWS round trips per message (webhook-telegram)", ""]
    if not data:
        return out + ["_Not measured yet: `infra/bench/run.sh roundtrips`._", ""]
    out += [
        f"Measured {when}. The webhook-telegram binary as one Lambda process (one container) against the local "
        "Runtime API; moto behind `counting_proxy.py`, which counts every call by `X-Amz-Target`. Cases in "
        "order, one process: its first invocation (a new customer), a second new customer, then the same "
        "customer's next messages, then a duplicate delivery of the last one. Goal: steady state ≤ 1 DynamoDB "
        "read + 1 DynamoDB write + 1 PutEvents and no Secrets Manager call; a duplicate costs 1 call.",
        "",
        "| case | answer | DynamoDB reads | DynamoDB writes | EventBridge | Secrets Manager | total | calls |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    reads = {"GetItem", "Query", "BatchGetItem", "Scan", "TransactGetItems"}
    steady = []
    duplicate = None
    for case in data["cases"]:
        counts = case["counts"]

        def total(service, only=None, skip=None):
            return sum(n for name, n in counts.items() if name.startswith(service + ".")
                       and (only is None or name.split(".", 1)[1] in only)
                       and (skip is None or name.split(".", 1)[1] not in skip))

        row = {"reads": total("DynamoDB", only=reads), "writes": total("DynamoDB", skip=reads),
               "events": total("EventBridge"), "secrets": total("SecretsManager"), "total": case["total"]}
        if case["case"].startswith("steady state"):
            steady.append(row)
        if case["case"].startswith("duplicate"):
            duplicate = row
        detail = ", ".join(f"{name} ×{n}" for name, n in sorted(counts.items()))
        out.append(f"| {case['case']} | {case['answer']} | {row['reads']} | {row['writes']} | {row['events']} | "
                   f"{row['secrets']} | {row['total']} | {detail} |")
    if steady:
        worst = max(steady, key=lambda r: r["total"])
        ok = worst["reads"] <= 1 and worst["writes"] <= 1 and worst["events"] <= 1 and worst["secrets"] == 0
        out += ["", f"Steady state per message (worst of {len(steady)}): {worst['reads']} read(s) + "
                f"{worst['writes']} write(s) to DynamoDB, {worst['events']} PutEvents, {worst['secrets']} Secrets "
                f"Manager call(s); goal ≤ 1 + 1 + 1, no Secrets Manager: **{met(ok)}**."]
    if duplicate:
        out.append(f"Duplicate delivery: {duplicate['total']} call(s); goal 1: **{met(duplicate['total'] <= 1)}**.")
    return out + [""]


def tick_cost(results):
    data, when = load(results, "tick-cost.md")
    out = ["## 5. Tick cost", ""]
    if not data:
        return out + ["_Not measured yet: `infra/bench/run.sh tick-cost`._", ""]
    out += [f"Measured {when} (the `tick-cost` binary of omnichat-bench: the embedded store at each size, then "
            "moto). Each run seeds its open dialogs through the real ingest path, 10 of them due per tick "
            "(two channels: one with auto-reply only, one with inactivity close only), then runs one tick of each "
            "job through `CountingStore`. Goal: items read flat in the number of open dialogs. For moto the "
            "dialogs are ingested into a scratch embedded store and its items copied into the moto table with "
            "`BatchWriteItem` (moto's transactions copy its whole table per item, so ingesting there grows with "
            "the square of the table); the ticks then run on moto alone.", "",
            data.strip(), ""]
    # The verdict: per store and tick, the items read at every size must be the same.
    read = {}
    for line in data.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[1].isdigit():
            read.setdefault((cells[0], cells[3]), {})[int(cells[1])] = int(cells[5])
    for (store, tick), by_size in read.items():
        sizes = sorted(by_size)
        flat = len(set(by_size.values())) == 1
        figures = ", ".join(f"{by_size[size]} at {size:,}" for size in sizes)
        span = f"{sizes[0]:,} to {sizes[-1]:,} open dialogs"
        out.append(f"- {store}, {tick} tick: items read {figures}; flat from {span}: {met(flat)}.")
    return out + [""]


def timer_drain(results):
    data, when = load(results, "timer-drain.md")
    out = ["## 8. Timer drain (issue 16, goal 3)", ""]
    if not data:
        return out + ["_Not measured yet: `infra/bench/run.sh timer-drain`._", ""]
    out += [f"Measured {when} (the `timer-drain` binary of omnichat-bench). It seeds N dialogs whose auto-reply "
            "is due and N whose inactivity close is due through the real ingest path, then times one run of "
            "`scheduled::send_auto_replies_and_retries` and one of `scheduled::close_inactive_dialogs`, as the "
            "functions run them but without a stop time; the provider accepts every send at once. \"at once\" is "
            "shards read at once x items in flight per shard. Goal (issue 16): 10,000 due auto-replies and "
            "10,000 closes within one run, at least 10,000 a minute. Before: a run read one page of 100 from "
            "each of 4 shards, 400 at most whatever was due. moto answers one request at a time and copies its "
            "table per written item: its rows run with 2 requests in flight per job and show moto's speed, not "
            "DynamoDB's.", "", data.strip(), ""]
    for line in data.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[3].isdigit() and cells[0].startswith("embedded"):
            due, done, per_minute = int(cells[3]), int(cells[4]), float(cells[6])
            ok = done == due and due >= 10_000 and per_minute >= 10_000
            out.append(f"- {cells[0]}, {cells[2]}: {done:,} of {due:,} in one run, {per_minute:,.0f} a minute; "
                       f"goal met: {met(ok)}.")
    return out + [""]


def memory(results):
    data, when = load(results, "memory.json")
    out = ["## 6. Memory", ""]
    if not data:
        return out + ["_Not measured yet: `infra/bench/run.sh memory`._", ""]
    base = data["hello-lambda"]["peak_rss_kib"]
    runs = len(data["hello-lambda"]["runs_kib"])
    out += [
        f"Measured {when}. Peak RSS (`VmHWM` from /proc/<pid>/status, read just before the process is killed) "
        f"of each function process after its first invocation with its largest event; highest of {runs} fresh "
        "processes. Host x86_64 release build. Baseline: `hello-lambda`. Goal: under 64 MB.",
        webhook_note(data),
        "",
        "| function | event | answer | peak RSS (MB) | baseline (MB) | ratio | goal < 64 MB |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for name, result in data.items():
        peak = result["peak_rss_kib"] / 1024
        baseline = "—" if name == "hello-lambda" else f"{base / 1024:.1f}"
        goal = "(baseline)" if name == "hello-lambda" else met(peak < 64)
        out.append(f"| {name} | {result['event']} | {', '.join(result['answers'])} | {peak:.1f} | {baseline} | "
                   f"{ratio(result['peak_rss_kib'], base)} | {goal} |")
    return out + [""]


NOT_MEASURED = "_Not measured yet"
KEPT = "_Kept from the report written at commit "


def previous_report(repo):
    """The BENCHMARKS.md about to be replaced: its commit and its sections by heading line."""
    path = os.path.join(repo, "BENCHMARKS.md")
    if not os.path.exists(path):
        return None, {}
    commit, sections, heading = None, {}, None
    with open(path, encoding="utf-8") as handle:
        for line in handle.read().splitlines():
            if line.startswith("- Git commit: "):
                commit = line.removeprefix("- Git commit: ").split()[0]
            if line.startswith("## "):
                heading = line
                sections[heading] = []
            elif heading:
                sections[heading].append(line)
    return commit, sections


def kept_or_new(section, commit, previous):
    """SECTION, or the previous report's section of the same heading when this run has no results for it."""
    if not any(line.startswith(NOT_MEASURED) for line in section):
        return section
    old = previous.get(section[0])
    if not old or any(line.startswith(NOT_MEASURED) for line in old):
        return section
    body = [line for line in old]
    if not any(line.startswith(KEPT) for line in body):
        body = ["", f"{KEPT}{commit or '?'}: this run did not measure it._"] + body
    while body and not body[-1].strip():
        body.pop()
    return [section[0]] + body + [""]


def mailbox_fanout(results):
    data, when = load(results, "mailbox-fanout.md")
    out = ["## 7. Mailbox fan-out (issue 16, goal 4)", ""]
    if not data:
        return out + ["_Not measured yet: `infra/bench/run.sh mailbox-fanout`._", ""]
    return out + [f"Measured {when} (the `mailbox-fanout` binary of omnichat-bench): one dispatch hands out a poll "
                  "per mailbox, 8 workers drain the queue, each poll against a mailbox fake that answers at once "
                  "(the fan-out's own cost, not IMAP's), embedded store. The SQS row is bound by moto (one call at "
                  "a time, slower the deeper the queue); on AWS the rate is MaximumConcurrency x 60 / seconds per "
                  "poll (50 at 2 s: 1,500 a minute; 100 at 2 s: 3,000).", "", data.strip(), ""]


def media(results):
    data, when = load(results, "media.md")
    out = ["## 11. Media (issue 17)", ""]
    if not data:
        return out + ["_Not measured yet: `infra/bench/run.sh media`._", ""]
    return out + [f"Measured {when} (the `media-fetch` binary of omnichat-bench): omnichat-local (release) in one process "
                  "with a Viber channel on a fake Viber API that generates a file's bytes as it sends them. A file "
                  "streams to a temporary file and then under the data dir (to S3 in the media function, the same "
                  "fetch), so the memory a fetch adds does not grow with the file. Goal (issue 17): memory flat "
                  "whatever the size.", "", data.strip(), ""]


# List prices, us-east-1, as published on the services' pricing pages (read 2026-12): DynamoDB on-demand
# (since the November 2024 cut), Lambda arm64, HTTP API, EventBridge custom events, Secrets Manager.
PRICES = {
    "write_unit": 0.625 / 1e6,
    "read_unit": 0.125 / 1e6,
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second_arm64": 0.0000133334,
    "http_api_request": 1.00 / 1e6,
    "event_entry": 1.00 / 1e6,
    "secret_month": 0.40,
    "secret_calls": 0.05 / 1e4,
}
# The previous layout, measured with the same meter (adapters::units) and the same steps at commit 237c63e
# (the units binary built there with the meter copied in): a steady-state message wrote 10 table + 2 index
# units and read 2, a new dialog's first message 16 + 5, the message after a reply 12 + 3; every
# MessageReceived invoked the router.
BEFORE = {"write_units": 12.0, "read_units": 2.0, "event_entries": 1.0, "router_invocations": 1.0}


def template_memory_mb(repo):
    """The functions' MemorySize (template.yaml's Globals)."""
    with open(os.path.join(repo, "template.yaml"), encoding="utf-8") as template:
        for line in template:
            if line.strip().startswith("MemorySize:"):
                return int(line.split(":", 1)[1].strip())
    return 128


def cost_per_million(step, webhook_ms, router_ms, memory_mb):
    """Dollars per million of this step, and the parts, at PRICES."""
    gb = memory_mb / 1024
    lambda_seconds = webhook_ms / 1000 + step["router_invocations"] * router_ms / 1000
    parts = {
        "DynamoDB writes": step["write_units"] * PRICES["write_unit"],
        "DynamoDB reads": step["read_units"] * PRICES["read_unit"],
        "EventBridge": step["event_entries"] * PRICES["event_entry"],
        "API Gateway": PRICES["http_api_request"],
        "Lambda": (1 + step["router_invocations"]) * PRICES["lambda_request"]
        + lambda_seconds * gb * PRICES["lambda_gb_second_arm64"],
    }
    return {name: value * 1e6 for name, value in parts.items()}


def units(results, repo):
    data, when = load(results, "units.json")
    out = ["## 10. Capacity units and cost per message (issue 16, goals 1 and 7)", ""]
    if not data:
        return out + ["_Not measured yet: `infra/bench/run.sh units`._", ""]
    out += [f"Measured {when} (the `units` binary of omnichat-bench). Each step of a dialog's life runs through "
            "`adapters::units`, which applies DynamoDB's item-size rules and on-demand unit rules to the images "
            "the store holds before and after each write (a write in a transaction of several counts double, a "
            "write alone once, each index entry added, changed or removed one more unit per KB, a strongly "
            "consistent read one unit per 4 KB); the "
            "events are counted as published, and as the router's rules let them through. Per step, averaged "
            "over its count. Goal: a steady-state message ≤ 6 write units, a new dialog's ≤ 10, a repeat 0.",
            "", "| store | step | write units (table + index) | read units | event entries | router invocations |",
            "|---|---|---:|---:|---:|---:|"]
    steady = None
    for store in data["stores"]:
        for step in store["steps"]:
            out.append(f"| {store['store']} | {step['step']} | {step['write_units']:g} "
                       f"({step['table_write_units']:g} + {step['index_write_units']:g}) | {step['read_units']:g} | "
                       f"{step['event_entries']:g} | {step['router_invocations']:g} |")
            if step["step"].startswith("steady") and steady is None:
                steady = step
    first = next(s for s in data["stores"][0]["steps"] if s["step"].startswith("first"))
    repeat = next(s for s in data["stores"][0]["steps"] if s["step"].startswith("repeated"))
    out += ["", f"- Steady state: {steady['write_units']:g} write units (goal ≤ 6: {met(steady['write_units'] <= 6)}; "
            f"before: {BEFORE['write_units']:g}). New dialog: {first['write_units']:g} "
            f"(goal ≤ 10: {met(first['write_units'] <= 10)}). Repeated delivery: {repeat['write_units']:g} "
            f"(goal 0: {met(repeat['write_units'] == 0)}).", ""]
    cold, _ = load(results, "cold-start.json")
    measured_webhook = (cold or {}).get("webhook-telegram", {}).get("median_warm_handler_ms")
    measured_router = (cold or {}).get("router", {}).get("median_warm_handler_ms")
    webhook_ms = measured_webhook or 40.0
    router_ms = measured_router or 20.0
    durations = ("the warm handler durations of §1" if measured_webhook and measured_router else
                 "§1's results are not in this target dir, so assumed round figures above its last measured ones")
    memory_mb = template_memory_mb(repo)
    now_cost = cost_per_million(steady, webhook_ms, router_ms, memory_mb)
    before_cost = cost_per_million(BEFORE, webhook_ms, router_ms, memory_mb)
    out += ["### Cost per million inbound messages (steady state)", "",
            f"At list prices (us-east-1: DynamoDB on-demand ${PRICES['write_unit'] * 1e6:.3f} per million write "
            f"units and ${PRICES['read_unit'] * 1e6:.3f} per million read units; Lambda arm64 $0.20 per million "
            f"requests and ${PRICES['lambda_gb_second_arm64']:.10f} per GB-second; HTTP API $1.00 per million "
            f"requests; EventBridge $1.00 per million entries). Lambda time: {durations} "
            f"(webhook-telegram {webhook_ms:.1f} ms, router {router_ms:.1f} ms; measured against moto, whose answers "
            f"are slower than DynamoDB's, so this overstates it) at the template's {memory_mb} MB. Before: the "
            "previous layout's units (measured with the same meter at commit 237c63e) and the router invoked by "
            "every message, priced the same way.", "",
            "| part | before ($) | now ($) |", "|---|---:|---:|"]
    for name in now_cost:
        out.append(f"| {name} | {before_cost[name]:.2f} | {now_cost[name]:.2f} |")
    total_now, total_before = sum(now_cost.values()), sum(before_cost.values())
    out += [f"| **total** | **{total_before:.2f}** | **{total_now:.2f}** |", "",
            f"- Cost per million messages: ${total_now:.2f} (before ${total_before:.2f}); goal ≤ $8: "
            f"{met(total_now <= 8)}. At the pre-November-2024 DynamoDB prices ($1.25 and $0.25 per million) the "
            f"same units cost ${total_now + steady['write_units'] * 0.625 + steady['read_units'] * 0.125:.2f} "
            f"(before ${total_before + BEFORE['write_units'] * 0.625 + BEFORE['read_units'] * 0.125:.2f}).",
            "- Secrets Manager, per channel and month: $0.40 for its secret, plus reads: each warm container "
            "reads a channel's secret at most every 5 minutes (8,640 reads a month, $0.04 per container), each "
            "e-mail poll once (43,200 polls a month, $0.22 per mailbox). At 100,000 channels the secrets alone "
            "are $40,000 a month, more than the messages of most tenants: the answer is envelope encryption "
            "(docs/SCALING.md §7): channel credentials sealed with a data key under one KMS key and kept in the "
            "channel's own table item, $1 a month for the key and $0.03 per 10,000 decrypts, the same cache.", ""]
    return out


def main():
    results, repo = sys.argv[1], sys.argv[2]
    commit, previous = previous_report(repo)
    lines = ["# Benchmarks", "", "Written by `infra/bench/run.sh` (issue 9); re-run it to refresh. Everything runs on "
             "127.0.0.1 of one machine, shared with whatever else it was doing.", ""]
    lines += machine(repo) + [""]
    for part in (cold_start, package_size, ingest, roundtrips, tick_cost, memory, mailbox_fanout, timer_drain):
        lines += kept_or_new(part(results), commit, previous)
    units_section = kept_or_new(units(results, repo), commit, previous)
    # Measured by a test, not by run.sh (issue 21): kept by hand beside this script and appended as it is.
    slow_clients = os.path.join(repo, "infra", "bench", "slow_clients.md")
    if os.path.exists(slow_clients):
        with open(slow_clients, encoding="utf-8") as kept:
            lines += [kept.read().rstrip("\n"), ""]
    lines += units_section
    lines += kept_or_new(media(results), commit, previous)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
