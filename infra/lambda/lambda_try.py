"""Invokes the functions through `cargo lambda invoke` against the dev stack (infra/lambda/dev-stack.sh), from
their example events (`functions/<name>/events/*.json`), and checks each answer.

    python infra/lambda/lambda_try.py seed     # run by dev-stack.sh: first tenant, Telegram channel, events
    python infra/lambda/lambda_try.py check    # run by try.sh inside dev-stack.sh: every function, every event

Reads DEV_STACK_DIR, DEV_STACK_PORT and DEV_STACK_FAKES (set by dev-stack.sh), and for `check` the table
name from DEV_STACK_DIR/watch.env (the table is only counted, never written). Prints one line per
invocation; the first surprise ends the run with exit 1 and says what was expected.

Placeholders in the checked-in events, filled here into copies under DEV_STACK_DIR/events/<function>/:
`CHANNEL_ID` and `WEBHOOK_SECRET` (as the handler tests fill them), `DIALOG_ID`; the router's events get
this stack's tenant, channel and dialog ids in `detail`, the first-tenant events a ResponseURL on the fakes.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request

import boto3

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FUNCTIONS = os.path.join(REPO, "functions")
# The first invocation of a function builds it (cargo lambda watch): minutes on a cold target dir.
INVOKE_TIMEOUT_SECONDS = 900
DEV_ADMIN_KEY = "ock_dev_admin_key_0123456789ab"
# The fake's bot: telegram_bot_id() of infra/crash/fake_providers.py is the token's digits before ':'.
TELEGRAM_EVENT = "connect-telegram.json"

DIR = os.environ.get("DEV_STACK_DIR", "")
PORT = os.environ.get("DEV_STACK_PORT", "")
FAKES = os.environ.get("DEV_STACK_FAKES", "")


class Surprise(Exception):
    pass


def expect(condition, what):
    if not condition:
        raise Surprise(what)


def fake_state():
    with urllib.request.urlopen(f"{FAKES}/_fake/state", timeout=10) as answer:
        return json.load(answer)


def event_path(function, name):
    return os.path.join(FUNCTIONS, function, "events", name)


def load_event(function, name):
    with open(event_path(function, name), encoding="utf-8") as f:
        return f.read()


def write_filled(function, name, text):
    folder = os.path.join(DIR, "events", function)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, name)
    json.loads(text)  # still JSON
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def invoke(function, path):
    """`cargo lambda invoke`; answers (seconds, the answer as JSON or None for a null answer)."""
    started = time.monotonic()
    command = ["cargo", "lambda", "invoke", function, "--invoke-address", "127.0.0.1", "--invoke-port", PORT,
               "--data-file", path, "--output-format", "json"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INVOKE_TIMEOUT_SECONDS, cwd=REPO)
    except subprocess.TimeoutExpired as error:
        raise Surprise(f"cargo lambda invoke {function} gave no answer in {INVOKE_TIMEOUT_SECONDS}s") from error
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise Surprise(f"cargo lambda invoke {function} failed ({done.returncode}): "
                       f"{(done.stderr or done.stdout).strip()[-2000:]}")
    text = done.stdout.strip()
    try:
        return seconds, json.loads(text) if text else None
    except ValueError as error:
        raise Surprise(f"{function} answered something that is not JSON: {text[:500]!r}") from error


def http_answer(answer):
    """An API Gateway v2 proxy answer: (status, body as JSON or text)."""
    expect(isinstance(answer, dict) and "statusCode" in answer, f"not an HTTP answer: {answer!r}")
    body = answer.get("body") or ""
    expect(not answer.get("isBase64Encoded"), f"a base64 body: {answer!r}")
    try:
        body = json.loads(body) if body else None
    except ValueError:
        pass
    return answer["statusCode"], body


def line(function, event, seconds, outcome):
    print(f"  {function:<17} {event:<28} {seconds:6.1f}s  {outcome}", flush=True)


# ---------------------------------------------------------------- seed


def first_tenant_event(name, request_id):
    event = json.loads(load_event("first-tenant", name))
    event["ResponseURL"] = f"{FAKES}/cloudformation-response/{request_id}"
    return json.dumps(event, indent=4)


def custom_resource_answer(path_suffix):
    answers = [a for a in fake_state()["cloudformation_answers"] if a["path"].endswith(path_suffix)]
    expect(len(answers) == 1, f"{len(answers)} custom resource answers at .../{path_suffix}, not 1")
    return answers[0]["answer"]


def seed():
    """The first tenant through first-tenant's Create event, then a Telegram bot connected through the API;
    the example events of every function with this stack's values, under DIR/events."""
    print("dev-stack: seeding through the functions (a function's first invocation builds it)")
    path = write_filled("first-tenant", "create.json", first_tenant_event("create.json", "seed-create"))
    seconds, answer = invoke("first-tenant", path)
    expect(answer == "SUCCESS", f"first-tenant answered {answer!r}, not the delivered status \"SUCCESS\"")
    reply = custom_resource_answer("seed-create")
    expect(reply.get("Status") == "SUCCESS", f"the custom resource answered {reply!r}")
    tenant = reply.get("Data", {}).get("TenantId")
    expect(bool(tenant), f"no TenantId in the custom resource's answer {reply!r}")
    line("first-tenant", "create.json", seconds, f"SUCCESS, tenant {tenant}")

    seconds, answer = invoke("api", event_path("api", TELEGRAM_EVENT))
    status, channel = http_answer(answer)
    expect(status == 201, f"POST /v1/channels answered {status}: {channel!r}")
    expect(channel.get("provider") == "telegram" and channel.get("id"), f"not a Telegram channel: {channel!r}")
    bot = json.loads(json.loads(load_event("api", TELEGRAM_EVENT))["body"])["credentials"]["token"].split(":")[0]
    secret = fake_state()["telegram_secrets"].get(bot)
    expect(bool(secret), "the fake Bot API got no setWebhook with a secret_token")
    webhook = fake_state()["telegram_webhooks"].get(bot, "")
    expect(webhook.endswith(f"/webhooks/telegram/{channel['id']}"), f"setWebhook to {webhook!r}")
    line("api", TELEGRAM_EVENT, seconds, f"201, channel {channel['id']}, webhook registered with the fake")

    fill_events({"CHANNEL_ID": channel["id"], "WEBHOOK_SECRET": secret}, tenant, channel["id"])
    with open(os.path.join(DIR, "seed.json"), "w", encoding="utf-8") as f:
        json.dump({"tenant_id": tenant, "channel_id": channel["id"]}, f)


def fill_events(replacements, tenant, channel):
    for function in sorted(os.listdir(FUNCTIONS)):
        folder = os.path.join(FUNCTIONS, function, "events")
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".json"):
                continue
            if function == "first-tenant":
                text = first_tenant_event(name, f"{name[:-5]}-{int(time.time() * 1000)}")
            else:
                text = load_event(function, name)
                for placeholder, value in replacements.items():
                    text = text.replace(placeholder, value)
                event = json.loads(text)
                if event.get("source") == "omnichat":
                    event["detail"]["tenant_id"] = tenant
                    event["detail"]["channel_id"] = channel
                    text = json.dumps(event, indent=2)
            write_filled(function, name, text)


def main():
    if not (DIR and PORT and FAKES):
        print("lambda_try.py: run by infra/lambda/dev-stack.sh (DEV_STACK_DIR, DEV_STACK_PORT, DEV_STACK_FAKES)",
              file=sys.stderr)
        sys.exit(2)
    step = sys.argv[1] if len(sys.argv) == 2 else ""
    try:
        if step == "seed":
            seed()
        elif step == "check":
            check()
        else:
            print(__doc__, file=sys.stderr)
            sys.exit(2)
    except Surprise as surprise:
        print(f"lambda_try.py: FAILED: {surprise}", file=sys.stderr)
        sys.exit(1)


def check():
    raise Surprise("not yet")


if __name__ == "__main__":
    main()
