#!/usr/bin/env bash
# Seeds the fuzz corpora: fuzz/corpus/<target>/seed-* from the providers' fixtures (tests/fixtures) and
# from the small hand-written seeds in fuzz/seeds/<target>/.
# Idempotent: seeds are rewritten, whatever the fuzzer added to the corpus stays.
#
# Provider inputs start with a mode byte (fuzz/src/lib.rs): 0x00 = signed/verified validly by the target
# ("valid"), 0x01 = the credential up to the first newline comes from the input ("arbitrary"); for
# MessageBird, 0x02 = valid with the HMAC scheme instead of the JWT, 0x03 = a fuzzed HMAC signature.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
fixtures="$root/tests/fixtures"
corpus="$root/fuzz/corpus"
if [[ ! -d "$fixtures" ]]; then
    echo "seed.sh: no fixtures at $fixtures (part of the repository: is the checkout complete?)" >&2
    exit 1
fi

# seed TARGET NAME PREFIX FILE: writes PREFIX (printf format) followed by FILE's bytes.
seed() {
    mkdir -p "$corpus/$1"
    { printf "$3"; cat "$4"; } > "$corpus/$1/seed-$2"
}

# provider TARGET FIXTURE_PREFIX: every fixture body in the valid mode and with a wrong credential.
provider() {
    local target=$1 prefix=$2 file name
    for file in "$fixtures/$prefix"*.json; do
        [[ -e "$file" ]] || continue
        name=$(basename "$file" .json)
        seed "$target" "$name-valid" '\x00' "$file"
        seed "$target" "$name-wrong" '\x01wrong-credential\n' "$file"
        seed "$target" "$name-missing" '\x03\n' "$file"
    done
}

provider telegram telegram_
provider vk vk_
provider viber viber_
provider edna edna_
provider infobip infobip_
provider avito avito_
provider messagebird messagebird_
for file in "$fixtures"/messagebird_*.json; do
    name=$(basename "$file" .json)
    seed messagebird "$name-hmac-valid" '\x02' "$file"
    seed messagebird "$name-hmac-wrong" '\x03c2lnbmF0dXJl\n' "$file"
done
# The published JWT test vectors, each token as the fuzzed MessageBird-Signature-JWT header.
if command -v python3 > /dev/null; then
    python3 - "$fixtures/messagebird_signature_jwt_testvectors.json" "$corpus/messagebird" <<'PY'
import json, sys
vectors = json.load(open(sys.argv[1]))
for i, vector in enumerate(vectors):
    body = (vector.get("payload") or "").encode()
    with open(f"{sys.argv[2]}/seed-jwt-vector-{i:02}", "wb") as out:
        out.write(b"\x01" + vector["token"].encode() + b"\n" + body)
PY
fi

# E-mail: the raw mails.
for file in "$fixtures"/email_*.eml; do
    seed email_mime "$(basename "$file" .eml)" '' "$file"
done

# Settings and API bodies: no fixtures, hand-written seeds.
for target in settings api_bodies; do
    for file in "$root/fuzz/seeds/$target"/*; do
        seed "$target" "$(basename "$file")" '' "$file"
    done
done
# The API's channel bodies with the provider fixtures as credentials and settings would be noise; but the
# fixtures are JSON the body parsers should also see (route 0: create channel, 1: update, 10: hours).
for file in "$fixtures"/telegram_text.json "$fixtures"/vk_confirmation.json; do
    seed api_bodies "$(basename "$file" .json)-route0" '\x00' "$file"
    seed settings "$(basename "$file" .json)" '' "$file"
done

for dir in "$corpus"/*/; do
    printf '%-12s %3s seeds\n' "$(basename "$dir")" "$(find "$dir" -name 'seed-*' | wc -l)"
done
