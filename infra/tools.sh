#!/usr/bin/env bash
# Installs the pinned Python-packaged tools the infra scripts need (cfn-lint, SAM CLI, cargo lambda + zig)
# into the repo's virtualenv at .venv, and puts them on PATH.
#
#   source infra/tools.sh    # installs what is missing, puts .venv/bin on PATH, SAM_CLI_TELEMETRY=0
#   infra/tools.sh           # installs what is missing, nothing else
#
# Silent when everything is in place (file tests only, no Python start); on failure it prints pip's output.
# The same .venv holds moto for infra/moto/with-moto.sh. Two pip runs at once in one venv corrupt it (both
# versions of a package half-installed), so installs here hold `flock <repo>/.venv`; any other script that
# installs into .venv should hold the same lock.

# cfn-lint stays at 1.53.3: from 1.54 on it no longer applies the SAM transform and silently skips the
# checks inside AWS::Serverless::Function (measured: 1.58 caught 2 of 8 planted template errors, 1.53.3
# caught 7).
OMNICHAT_CFN_LINT_VERSION="1.53.3"
OMNICHAT_SAM_CLI_VERSION="1.170.0"
OMNICHAT_CARGO_LAMBDA_VERSION="1.9.2"

# True when every package pinned with `==` is installed at that version. Arguments: "name==version"; a
# name is matched the way pip names its dist-info folders (case-insensitive, '-' and '.' as '_').
omnichat_tools_pinned() {
    local site="$1" pin name version
    shift
    for pin in "$@"; do
        name="${pin%%==*}"
        name="${name//[-.]/_}"
        version="${pin##*==}"
        [[ -d "$site/${name}-${version}.dist-info" || -d "$site/${name,,}-${version}.dist-info" ]] || return 1
    done
}

# True when the SAM CLI's own exact pins (boto3, click, the translator, ...) still hold: another install
# into the venv (moto) may have moved one.
omnichat_tools_sam_deps_pinned() {
    local site="$1" line requirement pins=()
    while IFS= read -r line; do
        requirement="${line#Requires-Dist: }"
        [[ "$requirement" == *";"* || "$requirement" != *"=="* ]] && continue
        requirement="${requirement//[[:space:]]/}"
        requirement="${requirement/\[*\]/}"
        pins+=("$requirement")
    done < <(grep '^Requires-Dist: ' "$site/aws_sam_cli-$OMNICHAT_SAM_CLI_VERSION.dist-info/METADATA" 2>/dev/null)
    [[ ${#pins[@]} -gt 0 ]] && omnichat_tools_pinned "$site" "${pins[@]}"
}

omnichat_tools_install() {
    local repo_root venv site log status
    repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
    venv="$repo_root/.venv"
    site="$(compgen -G "$venv/lib/python3*/site-packages" | head -n 1)"

    if [[ -n "$site" && -x "$venv/bin/sam" && -x "$venv/bin/cfn-lint" && -x "$venv/bin/cargo-lambda" ]] &&
        omnichat_tools_pinned "$site" \
            "cfn_lint==$OMNICHAT_CFN_LINT_VERSION" \
            "aws_sam_cli==$OMNICHAT_SAM_CLI_VERSION" \
            "cargo_lambda==$OMNICHAT_CARGO_LAMBDA_VERSION" &&
        omnichat_tools_sam_deps_pinned "$site"; then
        return 0
    fi

    mkdir -p "$venv" || return 1
    log="$(mktemp "${TMPDIR:-/tmp}/omnichat-tools.XXXXXX.log")" || return 1
    # The venv folder itself is the lock (fd 9); nothing reads it, hence SC2094's false alarm.
    # shellcheck disable=SC2094
    (
        flock 9 || exit 1
        if [[ ! -x "$venv/bin/python" ]]; then
            python3 -m venv "$venv" || exit 1
        fi
        # All pins in one resolver run, so that none pulls another away.
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "cfn-lint==$OMNICHAT_CFN_LINT_VERSION" \
            "aws-sam-cli==$OMNICHAT_SAM_CLI_VERSION" \
            "cargo-lambda==$OMNICHAT_CARGO_LAMBDA_VERSION"
    ) 9<"$venv" >"$log" 2>&1
    status=$?
    if [[ $status -ne 0 ]]; then
        echo "infra/tools.sh: installing tools into $venv failed:" >&2
        cat "$log" >&2
    fi
    rm -f "$log"
    return "$status"
}

omnichat_tools_status=0
omnichat_tools_install || omnichat_tools_status=1
unset -f omnichat_tools_install omnichat_tools_pinned omnichat_tools_sam_deps_pinned
if [[ $omnichat_tools_status -ne 0 ]]; then
    unset omnichat_tools_status
    # `return` when sourced, `exit` when executed.
    # shellcheck disable=SC2317
    return 1 2>/dev/null || exit 1
fi
unset omnichat_tools_status

omnichat_venv_bin="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin"
case ":$PATH:" in
    *":$omnichat_venv_bin:"*) ;;
    *) export PATH="$omnichat_venv_bin:$PATH" ;;
esac
unset omnichat_venv_bin
export SAM_CLI_TELEMETRY=0
