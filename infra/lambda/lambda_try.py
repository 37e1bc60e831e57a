"""Invokes the functions through `cargo lambda invoke` against the dev stack (infra/lambda/dev-stack.sh), from
their example events (`functions/<name>/events/*.json`), and checks each answer.

    python infra/lambda/lambda_try.py seed     # run by dev-stack.sh: first tenant, channels, events
    python infra/lambda/lambda_try.py check    # run by try.sh inside dev-stack.sh: every function, every event

Reads DEV_STACK_DIR, DEV_STACK_PORT and DEV_STACK_FAKES (set by dev-stack.sh), and for `check` the table
name from DEV_STACK_DIR/watch.env (the table is only counted, never written). Prints one line per
invocation; the first surprise ends the run with exit 1 and says what was expected.

Placeholders in the checked-in events, filled here into copies under DEV_STACK_DIR/events/<function>/:
`CHANNEL_ID` and `WEBHOOK_SECRET` (as the handler tests fill them) for the Telegram, VK and Viber webhooks,
`SIGNATURE` (Viber's X-Viber-Content-Signature: HMAC-SHA256 of the body with the bot token), `DIALOG_ID`; the
router's events get this stack's tenant, Telegram channel and dialog ids in `detail` (the live function's bus
event its tenant and channel), the first-tenant events a ResponseURL on the fakes, the live authorizer's `TICKET`
a ticket from the API. The other providers' webhook events stay as they are: no fake, no channel.
"""

import hashlib
import hmac
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
# The channels seeded through the API, against infra/crash/fake_providers.py: its Telegram bot id is the
# token's digits before ':', its VK community tokens are `vkfake<group id>_...`, its Viber tokens `viberfake...`.
TELEGRAM_EVENT = "connect-telegram.json"
VK_EVENT = "connect-vk.json"
VIBER_EVENT = "connect-viber.json"

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


def credentials(connect_event):
    return json.loads(json.loads(load_event("api", connect_event))["body"])["credentials"]


def connect(connect_event, provider):
    """POST /v1/channels from the api event; answers (seconds, the channel)."""
    seconds, answer = invoke("api", event_path("api", connect_event))
    status, channel = http_answer(answer)
    expect(status == 201, f"POST /v1/channels ({connect_event}) answered {status}: {channel!r}")
    expect(isinstance(channel, dict) and channel.get("provider") == provider and channel.get("id"),
           f"not a {provider} channel: {channel!r}")
    return seconds, channel


def viber_signature(token, body):
    """What Viber puts in X-Viber-Content-Signature: HMAC-SHA256 of the raw body, keyed with the bot token."""
    return hmac.new(token.encode(), body.encode(), hashlib.sha256).hexdigest()


def seed():
    """The first tenant through first-tenant's Create event, then a Telegram bot, a VK community and a Viber
    bot connected through the API; the example events of every function with this stack's values, under
    DIR/events."""
    print("dev-stack: seeding through the functions (a function's first invocation builds it)")
    path = write_filled("first-tenant", "create.json", first_tenant_event("create.json", "seed-create"))
    seconds, answer = invoke("first-tenant", path)
    expect(answer == "SUCCESS", f"first-tenant answered {answer!r}, not the delivered status \"SUCCESS\"")
    reply = custom_resource_answer("seed-create")
    expect(reply.get("Status") == "SUCCESS", f"the custom resource answered {reply!r}")
    tenant = reply.get("Data", {}).get("TenantId")
    expect(bool(tenant), f"no TenantId in the custom resource's answer {reply!r}")
    line("first-tenant", "create.json", seconds, f"SUCCESS, tenant {tenant}")

    seconds, channel = connect(TELEGRAM_EVENT, "telegram")
    bot = credentials(TELEGRAM_EVENT)["token"].split(":")[0]
    secret = fake_state()["telegram_secrets"].get(bot)
    expect(bool(secret), "the fake Bot API got no setWebhook with a secret_token")
    webhook = fake_state()["telegram_webhooks"].get(bot, "")
    expect(webhook.endswith(f"/webhooks/telegram/{channel['id']}"), f"setWebhook to {webhook!r}")
    line("api", TELEGRAM_EVENT, seconds, f"201, channel {channel['id']}, webhook registered with the fake")

    seconds, vk = connect(VK_EVENT, "vk")
    group = str(credentials(VK_EVENT)["group_id"])
    server = fake_state()["vk_servers"].get(group) or {}
    expect(server.get("url", "").endswith(f"/webhooks/vk/{vk['id']}") and server.get("secret_key"),
           f"the fake VK API got no callback server for /webhooks/vk/{vk['id']} with a secret key "
           f"(it has {server.get('url')!r})")
    expect(bool(fake_state()["vk_codes"].get(group)), "the fake VK API gave no confirmation code")
    line("api", VK_EVENT, seconds, f"201, channel {vk['id']}, callback server added to the fake")

    seconds, viber = connect(VIBER_EVENT, "viber")
    viber_token = credentials(VIBER_EVENT)["token"]
    webhook = fake_state()["viber_webhooks"].get(viber_token, "")
    expect(webhook.endswith(f"/webhooks/viber/{viber['id']}"), f"set_webhook to {webhook!r}")
    line("api", VIBER_EVENT, seconds, f"201, channel {viber['id']}, webhook set with the fake")

    fill_events({
        "webhook-telegram": {"CHANNEL_ID": channel["id"], "WEBHOOK_SECRET": secret},
        "webhook-vk": {"CHANNEL_ID": vk["id"], "WEBHOOK_SECRET": server["secret_key"]},
        "webhook-viber": {"CHANNEL_ID": viber["id"]},
    }, viber_token, tenant, channel["id"])
    with open(os.path.join(DIR, "seed.json"), "w", encoding="utf-8") as f:
        json.dump({"tenant_id": tenant, "channel_id": channel["id"], "vk_channel_id": vk["id"], "vk_group_id": group,
                   "viber_channel_id": viber["id"]}, f)


def fill_events(replacements, viber_token, tenant, channel):
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
                # The other providers' events stay as they are: this stack has no channel of theirs.
                for placeholder, value in replacements.get(function, {}).items():
                    text = text.replace(placeholder, value)
                event = json.loads(text)
                if function == "webhook-viber":
                    text = text.replace("SIGNATURE", viber_signature(viber_token, event["body"]))
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


def table_items():
    """How many items the table holds (a count only: what they hold is the functions' business)."""
    table = dict(line.strip().split("=", 1) for line in open(os.path.join(DIR, "watch.env"), encoding="utf-8")
                 if "=" in line)["TABLE_NAME"]
    dynamodb = boto3.client("dynamodb")
    count, start = 0, None
    for _ in range(1000):
        page = dynamodb.scan(TableName=table, Select="COUNT", **({"ExclusiveStartKey": start} if start else {}))
        count += page["Count"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return count
    raise Surprise(f"the table {table} has more than 1000 pages")


def filled(function, name, replacements=None):
    """The event as seed() filled it, with further placeholders filled; answers the file's path."""
    with open(os.path.join(DIR, "events", function, name), encoding="utf-8") as f:
        text = f.read()
    for placeholder, value in (replacements or {}).items():
        text = text.replace(placeholder, value)
    if not replacements:
        return os.path.join(DIR, "events", function, name)
    return write_filled(function, f"{name[:-5]}.run.json", text)


def router_event(name, dialog, message=None):
    event = json.loads(open(filled("router", name), encoding="utf-8").read())
    event["detail"]["dialog_id"] = dialog
    if message is not None:
        event["detail"]["message_id"] = message
    return write_filled("router", f"{name[:-5]}.run.json", json.dumps(event, indent=2))


def api(name, replacements=None, status=200):
    seconds, answer = invoke("api", filled("api", name, replacements))
    got, body = http_answer(answer)
    expect(got == status, f"api {name} answered {got}, not {status}: {body!r}")
    return seconds, body


def dialogs_of(channel):
    _, body = api("list-dialogs.json")
    expect(isinstance(body, dict) and isinstance(body.get("items"), list), f"not a list of dialogs: {body!r}")
    return [d for d in body["items"] if d.get("channel_id") == channel]


def messages_of(dialog):
    _, body = api("dialog-messages.json", {"DIALOG_ID": dialog})
    expect(isinstance(body, dict) and isinstance(body.get("items"), list), f"not a list of messages: {body!r}")
    return body["items"]


def customer_message(function, name, channel, ok_body, text):
    """A customer's first message through the webhook, then its repeat: one dialog with one message in, then
    nothing more. Answers the dialog and its messages."""
    before = table_items()
    seconds, answer = invoke(function, filled(function, name))
    status, body = http_answer(answer)
    expect(status == 200 and body == ok_body, f"{function} answered {status} {body!r}, not 200 {ok_body!r}")
    after = table_items()
    expect(after > before, f"the table holds {after} items after the message, as many as before")
    dialogs = dialogs_of(channel)
    expect(len(dialogs) == 1, f"{len(dialogs)} dialogs of the channel after one message, not 1: {dialogs!r}")
    dialog = dialogs[0]
    messages = messages_of(dialog["id"])
    expect(len(messages) == 1 and messages[0].get("direction") == "in" and messages[0].get("text") == text,
           f"not the one message in ({text!r}): {messages!r}")
    answered = "200" if ok_body is None else f"200 {ok_body}"
    done(function, name, seconds,
         f"{answered}, 1 dialog ({dialog['status']}), 1 message in, +{after - before} table items")
    seconds, answer = invoke(function, filled(function, name))
    status, body = http_answer(answer)
    expect(status == 200 and body == ok_body, f"the repeat answered {status} {body!r}, not 200 {ok_body!r}")
    expect(table_items() == after, f"the repeat changed the table ({after} -> {table_items()} items)")
    expect(len(messages_of(dialog["id"])) == 1, "the repeat stored a second message")
    done(function, f"{name} (again)", seconds, f"{answered}, stored nothing (table unchanged)")
    return dialog, messages


INVOKED = set()


def done(function, event, seconds, outcome):
    INVOKED.add(function)
    line(function, event, seconds, outcome)


def live_event(name, run_name, change):
    """The live function's example event as seed() filled it, changed by `change`, as `run_name`."""
    event = json.loads(open(filled("live", name), encoding="utf-8").read())
    change(event)
    return write_filled("live", run_name, json.dumps(event, indent=2))


def policy_effect(answer):
    expect(isinstance(answer, dict) and "policyDocument" in answer, f"not an authorizer's answer: {answer!r}")
    return answer["policyDocument"]["Statement"][0]["Effect"]


def check_live(tenant):
    """The authorizer denies an unknown ticket and allows one the API gave, once; $connect keeps two of the
    admin's connections; the example DialogAssigned event is pushed to them through the fakes' @connections
    (one of which answers 410: forgotten); $disconnect forgets the other. The table ends as it began."""
    before = table_items()
    seconds, answer = invoke("live", filled("live", "authorizer.json"))
    expect(policy_effect(answer) == "Deny", f"the authorizer allowed an unknown ticket: {answer!r}")
    done("live", "authorizer.json", seconds, "Deny: the example's ticket is unknown here")

    seconds, ticket = api("stream-ticket.json", status=201)
    expect(isinstance(ticket, dict) and ticket.get("ticket") and ticket.get("expires_at"), f"not a ticket: {ticket!r}")
    done("api", "stream-ticket.json", seconds, "201, a one-time ticket")
    path = filled("live", "authorizer.json", {"TICKET": ticket["ticket"]})
    seconds, allowed = invoke("live", path)
    expect(policy_effect(allowed) == "Allow"
           and allowed.get("context") == {"tenant_id": tenant, "role": "admin", "employee_id": ""},
           f"the authorizer did not allow the admin's ticket: {allowed!r}")
    done("live", "authorizer.json (ticket)", seconds, "Allow, the admin of the tenant in its context")
    seconds, again = invoke("live", path)
    expect(policy_effect(again) == "Deny", f"the ticket was good twice: {again!r}")
    done("live", "authorizer.json (again)", seconds, "Deny: a ticket is good once")
    expect(table_items() == before, "the ticket outlived its use")

    authorizer = {**allowed["context"], "principalId": allowed["principalId"]}
    for connection in ("devAdminConn01", "goneAdminConn1"):
        def as_connection(event, connection=connection):
            event["requestContext"]["authorizer"] = authorizer
            event["requestContext"]["connectionId"] = connection
        seconds, answer = invoke("live", live_event("connect.json", f"connect-{connection}.run.json", as_connection))
        expect(answer == {"statusCode": 200}, f"$connect answered {answer!r}")
        done("live", f"connect.json ({connection[:4]})", seconds, f"200, the connection {connection} kept")
    expect(table_items() == before + 2, f"{table_items() - before} items for two connections, not 2")

    pushes_before = len(fake_state()["live_pushes"])
    seconds, answer = invoke("live", filled("live", "eventbridge.json"))
    expect(answer == {"pushed": 1, "skipped": 0, "dropped": 1, "failed": 0}, f"the push answered {answer!r}")
    pushes = fake_state()["live_pushes"][pushes_before:]
    pushed = sorted((p["connection_id"], p["body"].get("type"), p["signed"]) for p in pushes)
    expect(pushed == [("devAdminConn01", "dialog_assigned", True), ("goneAdminConn1", "dialog_assigned", True)],
           f"the fake @connections API got {pushes!r}")
    expect(table_items() == before + 1, "the connection API Gateway said is gone is still in the table")
    done("live", "eventbridge.json", seconds, "DialogAssigned pushed to the admin; the gone connection forgotten")

    def as_open(event):
        event["requestContext"]["connectionId"] = "devAdminConn01"
    seconds, answer = invoke("live", live_event("disconnect.json", "disconnect.run.json", as_open))
    expect(answer == {"statusCode": 200}, f"$disconnect answered {answer!r}")
    expect(table_items() == before, "the connection outlived $disconnect")
    done("live", "disconnect.json", seconds, "200, the connection forgotten; table as before")


def check():
    with open(os.path.join(DIR, "seed.json"), encoding="utf-8") as f:
        seed_ids = json.load(f)
    tenant, channel = seed_ids["tenant_id"], seed_ids["channel_id"]
    invoked = INVOKED

    print("lambda_try.py: every function, from its example events (a function's first invocation builds it)")
    # ---- the API, before anything arrived
    seconds, body = api("list-dialogs.json")
    expect(isinstance(body, dict) and isinstance(body.get("items"), list), f"not a list of dialogs: {body!r}")
    expect(not [d for d in body["items"] if d.get("channel_id") == channel], f"a dialog already: {body!r}")
    done("api", "list-dialogs.json", seconds, f"200, {len(body['items'])} dialogs")
    seconds, employee = api("create-employee.json", status=201)
    expect(employee.get("id") and employee.get("name") == "Anna" and employee.get("status") == "online",
           f"not the employee asked for: {employee!r}")
    done("api", "create-employee.json", seconds, f"201, employee {employee['id']} online")
    seconds, updated = api("route-to-employee.json", {"CHANNEL_ID": channel, "EMPLOYEE_ID": employee["id"]})
    handling = (updated.get("settings") or {}).get("handling")
    expect(updated.get("id") == channel and handling == {"employee_id": employee["id"]},
           f"the channel's handling is not the employee: {updated!r}")
    done("api", "route-to-employee.json", seconds, "200, the channel's dialogs go to the employee")

    # ---- a customer's message, twice
    dialog, messages = customer_message("webhook-telegram", "telegram-text.json", channel, None, "/start")

    # ---- the router, with the events EventBridge would bring
    seconds, answer = invoke("router", router_event("dialog-opened.json", dialog["id"]))
    expect(answer == {"handled": "DialogOpened"}, f"router answered {answer!r}")
    _, routed = api("get-dialog.json", {"DIALOG_ID": dialog["id"]})
    expect(routed.get("status") == "assigned" and routed.get("assignee_id") == employee["id"],
           f"the dialog is not assigned to the online employee: {routed!r}")
    done("router", "dialog-opened.json", seconds, "DialogOpened handled, dialog assigned to the employee")
    seconds, answer = invoke("router", router_event("message-received.json", dialog["id"], messages[0]["id"]))
    expect(answer == {"handled": "MessageReceived"}, f"router answered {answer!r}")
    done("router", "message-received.json", seconds, "MessageReceived handled")

    # ---- the employee's reply goes to the fake Bot API
    sends_before = len(fake_state()["sends"])
    seconds, reply = api("reply.json", {"DIALOG_ID": dialog["id"]}, status=201)
    expect(reply.get("direction") == "out" and reply.get("text") == "Hello! How can we help?",
           f"not the reply: {reply!r}")
    sends = fake_state()["sends"][sends_before:]
    expect(len(sends) == 1 and sends[0]["to"] == "1111111" and sends[0]["text"] == reply["text"],
           f"the fake Bot API got {sends!r}, not the one reply to chat 1111111")
    done("api", "reply.json", seconds, f"201, {reply.get('status')}, sendMessage to the fake once")

    seconds, answer = invoke("router", router_event("dialog-closed.json", dialog["id"]))
    expect(answer == {"handled": "DialogClosed"}, f"router answered {answer!r}")
    done("router", "dialog-closed.json", seconds, "DialogClosed handled")

    # ---- the schedules: nothing is due
    before = table_items()
    seconds, answer = invoke("router", filled("router", "scheduled.json"))
    expect(answer == {"swept": {"dialogs": 0, "queues": 0}}, f"the sweep answered {answer!r}")
    done("router", "scheduled.json", seconds, "swept 0 dialogs, 0 queues")
    for function in ("auto-reply", "inactivity-close"):
        seconds, answer = invoke(function, filled(function, "scheduled.json"))
        expect(answer is None, f"{function} answered {answer!r}, not null")
        expect(table_items() == before, f"{function} changed the table with nothing due")
        done(function, "scheduled.json", seconds, "success, nothing due, table unchanged")
    # No e-mail channel here: nothing to hand out, so no queue is needed.
    seconds, answer = invoke("email-poller", filled("email-poller", "scheduled.json"))
    expect(answer == {"mailboxes": 0, "enqueued": 0, "waiting": 0}, f"email-poller answered {answer!r}")
    expect(table_items() == before, "email-poller changed the table with no mailbox")
    done("email-poller", "scheduled.json", seconds, "no mailbox, nothing handed out, table unchanged")
    # The queue's records: two polls of channels this stack does not have (done, nothing to poll), one body
    # that is no work item (reported, so SQS delivers it again and then dead-letters it).
    records = json.loads(open(filled("email-poller", "sqs.json"), encoding="utf-8").read())["Records"]
    seconds, answer = invoke("email-poller", filled("email-poller", "sqs.json"))
    expect(answer == {"batchItemFailures": [{"itemIdentifier": records[2]["messageId"]}]},
           f"email-poller answered {answer!r} to the SQS event")
    expect(table_items() == before, "email-poller changed the table polling unknown channels")
    done("email-poller", "sqs.json", seconds, "unknown channels skipped, the malformed record reported")
    # The media function: its schedule finds no fetch due; its queue's records name messages this stack does
    # not have (done, nothing to fetch) and one body that is no work item (reported for SQS to redeliver).
    seconds, answer = invoke("media", filled("media", "scheduled.json"))
    expect(answer == {"swept": True}, f"media answered {answer!r} to its schedule")
    expect(table_items() == before, "media changed the table with nothing due")
    done("media", "scheduled.json", seconds, "nothing due, table unchanged")
    records = json.loads(open(filled("media", "sqs.json"), encoding="utf-8").read())["Records"]
    seconds, answer = invoke("media", filled("media", "sqs.json"))
    expect(answer == {"batchItemFailures": [{"itemIdentifier": records[2]["messageId"]}]},
           f"media answered {answer!r} to the SQS event")
    expect(table_items() == before, "media changed the table fetching unknown messages")
    done("media", "sqs.json", seconds, "unknown messages skipped, the malformed record reported")
    expect(len(fake_state()["sends"]) == sends_before + 1, "a scheduled function sent something")

    # ---- VK: the community's confirmation, then a customer's message, twice
    before = table_items()
    seconds, answer = invoke("webhook-vk", filled("webhook-vk", "vk-confirmation.json"))
    status, body = http_answer(answer)
    code = fake_state()["vk_codes"].get(seed_ids["vk_group_id"])
    # The code is the channel's own: said, not shown (an error's body is shown).
    expect(status == 200 and bool(code) and body == code,
           f"the confirmation answered {status} with " + (f"{body!r}" if isinstance(body, dict) else
                                                          "another body than the code the fake VK API gave"))
    expect(table_items() == before, "the confirmation changed the table")
    done("webhook-vk", "vk-confirmation.json", seconds,
         "200, the confirmation code the fake gave, table unchanged")
    customer_message("webhook-vk", "vk-message-new.json", seed_ids["vk_channel_id"], "ok", "Ок")

    # ---- Viber: a forged signature, then a customer's message, twice
    before = table_items()
    event = json.loads(open(filled("webhook-viber", "viber-text.json"), encoding="utf-8").read())
    event["headers"]["x-viber-content-signature"] = viber_signature("not-the-bot-token-0123456789", event["body"])
    seconds, answer = invoke("webhook-viber",
                             write_filled("webhook-viber", "viber-text.forged.run.json", json.dumps(event, indent=4)))
    status, body = http_answer(answer)
    expect(status == 401, f"the forged signature answered {status} {body!r}, not 401")
    expect(table_items() == before, "the forged signature changed the table")
    expect(not dialogs_of(seed_ids["viber_channel_id"]), "a dialog of the Viber channel after the forged signature")
    done("webhook-viber", "viber-text.json (forged)", seconds, "401, signed with another token: stored nothing")
    customer_message("webhook-viber", "viber-text.json", seed_ids["viber_channel_id"], None,
                     "a message to the service")

    # ---- the other providers' webhooks: no fake of theirs here, so no channel either
    before = table_items()
    for function in ("webhook-whatsapp", "webhook-avito"):
        for name in sorted(os.listdir(os.path.join(DIR, "events", function))):
            if name.endswith(".run.json"):
                continue
            seconds, answer = invoke(function, filled(function, name))
            status, body = http_answer(answer)
            expect(status == 404 and isinstance(body, dict) and "error" in body,
                   f"{function} {name} answered {status} {body!r}, not 404 with an error")
            expect(table_items() == before, f"{function} {name} changed the table")
            done(function, name, seconds, f"404 {body['error'].get('code')}: no such channel here, table unchanged")

    # ---- live updates: the WebSocket API's authorizer and routes, and a push of a bus event
    check_live(tenant)

    # ---- the custom resource: Create again, Update, Delete
    for name, kind in (("create.json", "Create"), ("update.json", "Update"), ("delete.json", "Delete")):
        path = filled("first-tenant", name)
        request = json.loads(open(path, encoding="utf-8").read())
        seconds, answer = invoke("first-tenant", path)
        expect(answer == "SUCCESS", f"first-tenant {kind} answered {answer!r}")
        reply = custom_resource_answer(request["ResponseURL"].rsplit("/", 1)[1])
        expect(reply.get("Status") == "SUCCESS" and reply.get("RequestId") == request["RequestId"],
               f"the {kind} answer is {reply!r}")
        if kind == "Delete":
            expect(reply.get("PhysicalResourceId") == request["PhysicalResourceId"], f"Delete answered {reply!r}")
        else:
            expect(reply.get("Data", {}).get("TenantId") == tenant, f"{kind} answered another tenant: {reply!r}")
        done("first-tenant", name, seconds, f"{kind}: SUCCESS" + ("" if kind == "Delete" else ", the same tenant"))
    seconds, _ = api("list-dialogs.json")
    done("api", "list-dialogs.json", seconds, "200: the tenant and its key outlive the resource's Delete")

    functions = {f for f in os.listdir(FUNCTIONS) if os.path.isdir(os.path.join(FUNCTIONS, f, "src"))}
    missing = sorted(functions - invoked)
    expect(not missing, f"functions never invoked: {missing}")
    unknown = fake_state()["unknown_calls"]
    expect(not unknown, f"the fakes got calls they do not know: {unknown}")
    print(f"lambda_try.py: all {len(invoked)} functions answered as expected")


if __name__ == "__main__":
    main()
