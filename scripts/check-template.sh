#!/usr/bin/env bash
# Lints and checks the SAM template:
#
#   scripts/check-template.sh [TEMPLATE]      (default: <repo>/template.yaml)
#
# 1. creates (or reuses) a Python venv under target/venv-tools with pinned cfn-lint, PyYAML and
#    aws-sam-translator;
# 2. runs cfn-lint on TEMPLATE and on the CloudFormation template the SAM transform makes of it,
#    then the same on copies whose parameter defaults select the other configurations (no
#    proxy; existing VPC and database, with and without proxy), since cfn-lint does not apply
#    --parameters to SAM templates. Any error, warning or informational finding fails;
# 3. runs scripts/check_template.py: functions <-> workspace binaries, routes <-> contract
#    (../shared/CONTRACT.md beside the repository: one ANY route per endpoint, one $default
#    route to an API function) and the cargo-lambda router, environment variables <->
#    shared/src/config.rs, secrets <-> IAM, parameters <-> README.md (its deploy section).
#
# Needs python3 (with venv) and cargo; the first run downloads the tools from PyPI.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="$REPO_ROOT/target/venv-tools"
REQUIREMENTS=(cfn-lint==1.58.0 PyYAML==6.0.4 aws-sam-translator==1.115.0)

template="${1:-$REPO_ROOT/template.yaml}"
[[ -f "$template" ]] || {
    echo "check-template.sh: no template at $template" >&2
    exit 2
}
template="$(cd "$(dirname "$template")" && pwd -P)/$(basename "$template")"

say() { printf '\n==> %s\n' "$*" >&2; }

installed() {
    local requirement
    for requirement in "${REQUIREMENTS[@]}"; do
        [[ "$("$VENV/bin/python" -m pip show "${requirement%%==*}" 2>/dev/null |
            sed -n 's/^Version: //p')" == "${requirement##*==}" ]] || return 1
    done
}
if ! [[ -x "$VENV/bin/python" ]] || ! installed; then
    say "installing ${REQUIREMENTS[*]} into $VENV"
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
fi
PYTHON="$VENV/bin/python"
CHECKER="$REPO_ROOT/scripts/check_template.py"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

lint() { # lint NAME TEMPLATE: cfn-lint the template, then its SAM transform
    local name="$1" file="$2"
    say "cfn-lint: $name"
    "$VENV/bin/cfn-lint" --non-zero-exit-code informational -- "$file"
    say "cfn-lint: $name, after the SAM transform"
    "$PYTHON" "$CHECKER" "$file" --sam-translate "$work/$name.json"
    "$VENV/bin/cfn-lint" --non-zero-exit-code informational -- "$work/$name.json"
}

lint "$(basename "$template")" "$template"
mapfile -t variants < <("$PYTHON" "$CHECKER" "$template" --write-variants "$work/variants")
for variant in "${variants[@]}"; do
    lint "$(basename "$variant" .yaml)" "$variant"
done

say "check_template.py: $template"
"$PYTHON" "$CHECKER" "$template"
