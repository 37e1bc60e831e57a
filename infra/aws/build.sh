#!/usr/bin/env bash
# `sam build` of the whole template, as a deploy would run it: every AWS::Serverless::Function through
# cargo lambda (release, arm64, provided.al2023), then a check that each function got an arm64 Linux
# `bootstrap` in the build directory. Fails on any build error and on any function left without one.
#
#   infra/aws/build.sh [TEMPLATE]      # default: template.yaml in the repo root
#
# Shares the workspace's target directory: SAM asks `cargo metadata` where the binaries are, so
# CARGO_TARGET_DIR (or the repo's target/ when unset) is where cargo lambda compiles and where SAM copies
# from. A second run only relinks what changed (the numbers are in the README's deploy section). The build
# output goes to .aws-sam/build (SAM's default, ignored by git).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=../tools.sh
source "$repo_root/infra/tools.sh"

template="$(realpath "${1:-$repo_root/template.yaml}")"
build_dir="$repo_root/.aws-sam/build"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo_root/target}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

# The functions and their binaries, read from the template (SAM's own YAML reader: it knows !Ref and co.).
functions="$(python - "$template" <<'PY'
import sys

from samcli.yamlhelper import yaml_parse

with open(sys.argv[1], encoding="utf-8") as f:
    template = yaml_parse(f.read())
for name, resource in sorted((template.get("Resources") or {}).items()):
    if resource.get("Type") != "AWS::Serverless::Function":
        continue
    metadata = resource.get("Metadata") or {}
    binary = (metadata.get("BuildProperties") or {}).get("Binary")
    if metadata.get("BuildMethod") != "rust-cargolambda" or not binary:
        sys.exit(f"build: {name} is not built with rust-cargolambda and a Binary")
    print(name, binary)
PY
)"

# A Binary the workspace does not have would fail deep inside SAM's log; say which one up front.
bins="$(cargo metadata --no-deps --format-version 1 --manifest-path "$repo_root/Cargo.toml" |
    python -c 'import json, sys
for p in json.load(sys.stdin)["packages"]:
    for t in p["targets"]:
        if "bin" in t["kind"]:
            print(t["name"])')"
missing=0
while read -r name binary; do
    if ! grep -qx -- "$binary" <<<"$bins"; then
        echo "build: $name wants the binary '$binary', which no workspace package has" >&2
        missing=1
    fi
done <<<"$functions"
[[ $missing -eq 0 ]] || exit 1

echo "build: sam build of $(wc -l <<<"$functions") functions (target dir $CARGO_TARGET_DIR)"
started=$(date +%s)
# First every binary in one cargo invocation, with the very command SAM runs per function
# (`cargo lambda build --release --arm64 --bin X`, aws-lambda-builders' rust_cargo workflow) but all --bin
# at once: cargo then links the functions in parallel instead of one after the other, and SAM's own calls
# below find each binary fresh and only copy it.
bin_args=()
while read -r _ binary; do bin_args+=(--bin "$binary"); done <<<"$functions"
(cd "$repo_root" && cargo lambda build --release --arm64 "${bin_args[@]}")
echo "build: cargo lambda build of every binary took $(($(date +%s) - started)) s"
rm -rf "$build_dir"
(cd "$repo_root" && sam build --template "$template" --build-dir "$build_dir")
echo "build: sam build took $(($(date +%s) - started)) s"

# Each function's artifact: an ELF executable for aarch64 (e_machine 183) named bootstrap.
status=0
while read -r name binary; do
    python - "$build_dir/$name/bootstrap" "$name" "$binary" <<'PY' || status=1
import struct, sys

path, name, binary = sys.argv[1:]
try:
    with open(path, "rb") as f:
        header = f.read(20)
except OSError as error:
    sys.exit(f"build: {name} ({binary}): no bootstrap: {error}")
if header[:4] != b"\x7fELF" or header[4] != 2:
    sys.exit(f"build: {name} ({binary}): {path} is not a 64-bit ELF file")
machine = struct.unpack("<H", header[18:20])[0]
if machine != 183:
    sys.exit(f"build: {name} ({binary}): {path} is built for ELF machine {machine}, not aarch64 (183)")
PY
done <<<"$functions"
[[ $status -eq 0 ]] || exit 1
echo "build: every function has an arm64 bootstrap in $build_dir"
