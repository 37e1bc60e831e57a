#!/usr/bin/env bash
# Creates the template as a stack on moto's CloudFormation and checks what it made (infra/aws/moto_stack.py):
# the SAM template translated by samtranslator, the resources moto cannot create dropped with a printed
# reason, then the table, bus, rules, dead-letter queue, functions, log groups, metric filters, alarms and
# roles read back through the services' APIs. Fails if anything the template promises is missing. Seconds.
#
#   infra/aws/moto-stack.sh [TEMPLATE]      # default: template.yaml in the repo root
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=../tools.sh
source "$repo_root/infra/tools.sh"

template="$(realpath "${1:-$repo_root/template.yaml}")"
# The moto server gets CloudFormation support for alarms, metric filters and Lambda invoke configs.
export OMNICHAT_MOTO_PLUGINS="$repo_root/infra/moto/cfn_models.py"
exec "$repo_root/infra/moto/with-moto.sh" python "$repo_root/infra/aws/moto_stack.py" "$template"
