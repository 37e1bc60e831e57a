#!/usr/bin/env bash
# Lints template.yaml offline: `sam validate --lint` (the SAM transform, then cfn-lint) and cfn-lint 1.53.3 on
# its own (the version that still applies the SAM transform; see infra/tools.sh). Exits non-zero on any
# finding, warnings included. Needs no AWS credentials and no network beyond PyPI for the first install.
#
#   infra/aws/lint-template.sh [TEMPLATE]      # default: template.yaml in the repo root
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=../tools.sh
source "$repo_root/infra/tools.sh"

template="${1:-$repo_root/template.yaml}"

# Both tools want a region to resolve the resource specs; none is called.
export AWS_DEFAULT_REGION=us-east-1
export AWS_REGION=us-east-1

echo "lint-template: sam validate --lint $template"
sam validate --lint --template "$template"

echo "lint-template: cfn-lint $(cfn-lint --version | awk '{print $2}') $template"
cfn-lint --format parseable -- "$template"
# cfn-lint skips its IAM action check (W3037) in templates with the SAM transform, and the statements here
# are written by hand: check every Action of a function's inline policy against cfn-lint's own IAM data.
echo "lint-template: IAM actions of the functions' policies"
python - "$template" <<'PY'
import sys

from cfnlint.data import AdditionalSpecs
from cfnlint.decode import decode
from cfnlint.helpers import load_resource

known = load_resource(AdditionalSpecs, "Policies.json")
template, errors = decode(sys.argv[1])
if errors:
    sys.exit(f"cannot read {sys.argv[1]}: {errors}")
bad = []
for name, resource in (template.get("Resources") or {}).items():
    for policy in (resource.get("Properties") or {}).get("Policies") or []:
        if not isinstance(policy, dict):
            continue
        for statement in policy.get("Statement") or []:
            actions = statement.get("Action", [])
            for action in [actions] if isinstance(actions, str) else actions:
                service, _, permission = action.partition(":")
                if permission.lower() not in known.get(service.lower(), {}).get("Actions", {}):
                    bad.append(f"{name}: unknown IAM action {action!r}")
if bad:
    sys.exit("\n".join(bad))
PY
echo "lint-template: no findings"
