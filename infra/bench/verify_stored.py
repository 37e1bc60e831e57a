"""The ingest benchmark's exactly-once check: what omnichat-local stored, through its REST API, against what
wrk sent and saw acknowledged.

    python3 verify_stored.py BASE_URL ADMIN_KEY OUT.json EXTRA_ID WRK_RUN.json [WRK_RUN.json ...]

Lists every dialog (all pages, `limit=500`), then every dialog's messages (all pages). Each wrk request is a
Telegram update whose message id is its update id, and each wrk thread sent one contiguous range of them
(telegram.lua: base + thread * 10^7 + 1 ..= + sent). EXTRA_ID: the message id of the one delivery by hand.
Checked id by id: no message id is stored twice, nothing is stored that was not sent, the delivery by hand
is stored. Not id by id: "every acknowledged delivery is among the stored ones". wrk cannot say which
requests were the unacknowledged ones (those in flight when a run ended, or timed out), so that condition is
a count bound over the ids, per run: "sent but not stored" ≤ "sent but not acknowledged". Writes the figures to OUT.json; exits 1 when a condition fails.
"""

import json
import sys
import urllib.parse
import urllib.request
from collections import Counter

MAX_PAGES = 100_000


def get(base, key, path, params):
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def all_items(base, key, path):
    params, pages = {"limit": "500"}, 0
    while pages < MAX_PAGES:
        page = get(base, key, path, params)
        yield from page["items"]
        pages += 1
        if not page.get("next"):
            return
        params = {"limit": "500", "page": page["next"]}
    raise SystemExit(f"{path}: more than {MAX_PAGES} pages")


def main():
    base, key, out, extra = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3], int(sys.argv[4])
    runs = {}
    for path in sys.argv[5:]:
        with open(path, encoding="utf-8") as handle:
            runs[path] = json.load(handle)

    dialogs = 0
    stored = Counter()
    for dialog in all_items(base, key, "/v1/dialogs"):
        dialogs += 1
        for message in all_items(base, key, f"/v1/dialogs/{dialog['id']}/messages"):
            if message.get("direction") == "in":
                stored[int(message.get("provider_message_id") or -1)] += 1

    sent_ids = {extra}
    per_run = []
    ok = True
    for path, run in runs.items():
        ids = set()
        for thread, count in run["sent_per_thread"].items():
            first = run["base"] + int(thread) * 10_000_000 + 1
            ids.update(range(first, first + count))
        acknowledged = sum(n for status, n in run["statuses"].items() if 200 <= int(status) < 300)
        missing = len(ids - stored.keys())
        per_run.append({"run": path.rsplit("/", 1)[-1], "sent": len(ids), "acknowledged_2xx": acknowledged,
                        "stored": len(ids & stored.keys()), "sent_not_stored": missing,
                        "sent_not_acknowledged": len(ids) - acknowledged})
        ok = ok and missing <= len(ids) - acknowledged
        sent_ids |= ids
    duplicates = sum(n - 1 for n in stored.values() if n > 1)
    unexpected = len(stored.keys() - sent_ids)
    acknowledged = 1 + sum(r["acknowledged_2xx"] for r in per_run)
    ok = ok and duplicates == 0 and unexpected == 0 and extra in stored
    result = {"dialogs": dialogs, "inbound_messages": sum(stored.values()), "distinct_message_ids": len(stored),
              "duplicates": duplicates, "stored_but_never_sent": unexpected, "sent": len(sent_ids),
              "acknowledged_2xx": acknowledged, "runs": per_run, "exactly_once": ok}
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    print(json.dumps(result))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
