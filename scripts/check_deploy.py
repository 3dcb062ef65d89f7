#!/usr/bin/env python3
"""What scripts/ci.sh checks in the deployment files beyond cfn-lint, hadolint, the compose
schema and the Rust tests (which hold template.yaml's functions and routes to the code).

    check_deploy.py template OUT_DIR   writes, for cfn-lint, copies of template.yaml whose
        parameter defaults select each other branch of its conditions (cfn-lint ignores
        --parameters on SAM templates), and the CloudFormation JSON the SAM transform makes of
        each (a template the transform rejects fails here); prints their paths. Checks that the
        functions' environment names only variables the code reads, the ones they need on
        Lambda, and exactly the secrets their policies let them read.
    check_deploy.py containers         checks Dockerfile, .dockerignore and docker-compose.yml:
        every file COPY'd exists and is in the build context, the build stage has every
        workspace member, the runtime listens on 0.0.0.0 at the published port, and the app
        service's variables are read by the adapter, its JWT key is long enough, and its
        DATABASE_URL reaches a healthy database service with that service's credentials.
"""

import itertools
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import urllib.parse
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
errors = []


def read_variables():
    """Environment variables the code reads: `get("NAME")`, `env::var("NAME")`, ...,
    in src/ and shared/src/, plus RUST_LOG (tracing's filter)."""
    text = "".join(p.read_text() for top in ("src", "shared/src") for p in (REPO / top).rglob("*.rs"))
    names = set(re.findall(r'(?:\bget|env::var(?:_os)?|\blookup)\(\s*"([A-Z][A-Z0-9_]*)"', text))
    names |= set(re.findall(r'\bparse\(\s*&?get\s*,\s*"([A-Z][A-Z0-9_]*)"', text))
    assert {"DATABASE_URL", "JWT_SECRET"} <= names, f"update read_variables(): found only {names}"
    return names | {"RUST_LOG"}


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short tags (!Ref, !GetAtt, ...) as their long forms."""


def _tag(loader, suffix, node):
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        value = value.split(".", 1) if name == "Fn::GetAtt" else value
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)

EXISTING_DB = {
    "ExistingVpcId": "vpc-0123456789abcdef0",
    "ExistingSubnetIds": "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
    "ExistingDatabaseHost": "kv.abcdefghijkl.eu-west-1.rds.amazonaws.com",
    "ExistingDatabaseSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kv-db-AbCdEf",
    "ExistingDatabaseInstanceIdentifier": "kv-db",  # the proxy's target; unused without the proxy
}
# The parameters that select the branches of the template's conditions, one axis each: its
# choices, by name, the first being the defaults' (new VPC, new RDS MySQL instance, RDS Proxy).
# Every combination is linted, but for those that set parameters another choice makes the
# template ignore (IGNORED).
AXES = [
    {"": {}, "no-proxy": {"EnableRdsProxy": "false"}},
    {"": {}, "existing-database": EXISTING_DB},
    {"": {}, "aurora": {"DatabaseEngine": "aurora-mysql-serverless-v2"},
     "aurora-multi-az": {"DatabaseEngine": "aurora-mysql-serverless-v2", "DatabaseMultiAZ": "true"}},
    {"": {}, "alarm-topic": {"AlarmTopicArn": "arn:aws:sns:eu-west-1:123456789012:kv-alarms"}},
]
IGNORED = [("ExistingDatabaseHost", "DatabaseEngine")]  # an existing database has no engine to choose


def variants():
    """{name: the parameter defaults it changes} for every combination of AXES but the defaults'."""
    result = {}
    for choices in itertools.product(*(axis.items() for axis in AXES)):
        defaults = {k: v for _, parameters in choices for k, v in parameters.items()}
        if defaults and not any(a in defaults and b in defaults for a, b in IGNORED):
            result[".".join(name for name, _ in choices if name)] = defaults
    return result


def template(out_dir):
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    logging.disable(logging.WARNING)  # the translator's "unpublished metrics" noise
    source = REPO / "template.yaml"
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [source]
    for variant, defaults in variants().items():
        text = source.read_text()
        for parameter, value in defaults.items():
            pattern = rf"(^  {parameter}:\n(?:    .*\n)*?    Default: ).*$"
            text, count = re.subn(pattern, lambda m: m.group(1) + json.dumps(value), text, 1, re.M)
            assert count == 1, f"template.yaml: parameter {parameter} has no Default to rewrite"
        files.append(out_dir / f"template.{variant}.yaml")
        files[-1].write_text(text)
    for path in list(files):
        doc = yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506 (a SafeLoader)
        for resource in doc["Resources"].values():  # as `sam package` uploads the code
            if resource["Type"] == "AWS::Serverless::Function":
                resource.setdefault("Properties", {})["CodeUri"] = "s3://bucket/function.zip"
        try:
            translated = Translator({}, Parser()).translate(sam_template=doc, parameter_values={})
        except Exception as error:  # noqa: BLE001 (the translator's messages say what is wrong)
            errors.append(f"{path.name}: the SAM transform fails: {error}")
            continue
        files.append(out_dir / f"{path.stem}.transformed.json")
        files[-1].write_text(json.dumps(translated, indent=1))

    doc = yaml.load(source.read_text(), Loader=CfnLoader)  # noqa: S506
    read = {name for name in read_variables() if not name.startswith("AWS_")}
    global_env = doc.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    for name, resource in doc["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {})
        env = {**global_env, **props.get("Environment", {}).get("Variables", {})}
        # The API functions (those with an HTTP API route) load kv_shared's Config, which needs
        # the JWT key on Lambda; db-migrate and data-sweep read only the database's settings.
        serves_api = any(e.get("Type") == "HttpApi" for e in (props.get("Events") or {}).values())
        needed = {"DATABASE_SECRET_ARN", "DATABASE_HOST"} | ({"JWT_SECRET_ARN"} if serves_api else set())
        for variable in sorted(set(env) - read):
            errors.append(f"template.yaml: {name} sets {variable}, which the code never reads")
        for variable in sorted(needed - set(env)):
            errors.append(f"template.yaml: {name} lacks {variable}; it cannot start on Lambda without it")
        wanted = {json.dumps(v, sort_keys=True) for k, v in env.items() if k.endswith("_SECRET_ARN")}
        granted = {json.dumps(p["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"], sort_keys=True)
                   for p in props.get("Policies", []) if "AWSSecretsManagerGetSecretValuePolicy" in p}
        for secret in sorted(wanted - granted):
            errors.append(f"template.yaml: {name} may not read the secret {secret} its environment names")
        for secret in sorted(granted - wanted):
            errors.append(f"template.yaml: {name} may read the secret {secret}, which it does not use")
    print("\n".join(map(str, files)))


def ignored_by(patterns):
    """Docker's .dockerignore rules (the last matching pattern wins; `!` re-includes)."""
    rules = []
    for raw in patterns:
        negate, pattern = raw.startswith("!"), os.path.normpath(raw.lstrip("!").strip("/"))
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        rules.append((negate, re.compile(regex + "(/.*)?$")))

    def ignored(path):
        result = False
        for negate, regex in rules:
            if regex.match(path):
                result = not negate
        return result

    return ignored


def containers():
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    lines = [line.split(None, 1) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    stages = []  # the instructions of each stage
    for instruction, *rest in lines:
        if instruction.upper() == "FROM":
            stages.append([])
        elif stages:
            stages[-1].append((instruction.upper(), rest[0] if rest else ""))
    ignore = REPO / ".dockerignore"
    ignored = ignored_by([l.strip() for l in ignore.read_text().splitlines() if l.strip() and not l.startswith("#")])
    copied = []
    for stage in stages:
        for instruction, value in stage:
            words = shlex.split(value)
            if instruction in ("COPY", "ADD") and not any(w.startswith("--from") for w in words):
                sources = [os.path.normpath(w.lstrip("/")) for w in words if not w.startswith("--")][:-1]
                copied += sources
                for source in sources:
                    if not (REPO / source).exists():
                        errors.append(f"Dockerfile: COPY {source}: no such file in the build context")
                        continue
                    files = [source] if (REPO / source).is_file() else [
                        str(f.relative_to(REPO)) for f in (REPO / source).rglob("*") if f.is_file()]
                    excluded = [f for f in files if ignored(f) and "/target/" not in f"/{f}"]
                    if excluded:
                        errors.append(f"Dockerfile: COPY {source}: .dockerignore excludes {excluded[:3]}")
    for path in ("target/x", ".git/x"):
        if not ignored(path):
            errors.append(f".dockerignore: does not exclude {path[:-2]}/ from the build context")
    metadata = json.loads(subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1"],
                                         cwd=REPO, check=True, capture_output=True, text=True).stdout)
    needed = {"Cargo.toml", "Cargo.lock", "migrations"}  # sqlx::migrate! embeds migrations/
    for package in metadata["packages"]:
        needed.add(os.path.relpath(package["manifest_path"], REPO))
        needed |= {os.path.relpath(t["src_path"], REPO) for t in package["targets"]
                   if {"lib", "bin", "proc-macro", "custom-build"} & set(t["kind"])}
    for path in sorted(needed):
        if not any(c in (".", path) or path.startswith(c + "/") for c in copied):
            errors.append(f"Dockerfile: the build stage does not COPY {path}, which cargo needs")
    runtime = {}  # the runtime stage's ENV
    for instruction, value in stages[-1] if stages else []:
        if instruction == "ENV":
            runtime.update(w.split("=", 1) for w in shlex.split(value) if "=" in w)

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    built = [name for name, service in services.items() if "build" in service]
    if len(built) != 1:
        errors.append(f"docker-compose.yml: {len(built)} services build the Dockerfile, expected 1")
        return
    app = services[built[0]]
    env = {k: str(v) for k, v in (app.get("environment") or {}).items()}
    where = f"docker-compose.yml: service {built[0]}"
    for variable in sorted(set(env) - read_variables()):
        errors.append(f"{where}: sets {variable}, which the adapter never reads")
    if len(env.get("JWT_SECRET", "").encode()) < 32:
        errors.append(f"{where}: JWT_SECRET must be at least 32 bytes (the adapter refuses to start)")
    settings = {**runtime, **env}
    if settings.get("HOST") != "0.0.0.0":
        errors.append(f"{where}: HOST must be 0.0.0.0 (127.0.0.1 is unreachable from outside the container)")
    published = [str(p).rsplit(":", 1)[-1].split("/")[0] for p in app.get("ports", [])]
    if settings.get("PORT") not in published:
        errors.append(f"{where}: publishes {published}, not the PORT the adapter listens on ({settings.get('PORT')})")
    url = urllib.parse.urlsplit(env.get("DATABASE_URL", ""))
    db = services.get(url.hostname)
    if url.scheme != "mysql" or db is None:
        errors.append(f"{where}: DATABASE_URL must be mysql:// to a service of this file")
        return
    if (app.get("depends_on") or {}).get(url.hostname, {}).get("condition") != "service_healthy" or "healthcheck" not in db:
        errors.append(f"{where}: must wait for {url.hostname} with condition service_healthy (and it needs a healthcheck)")
    db_env = {k: str(v) for k, v in (db.get("environment") or {}).items()}
    expected = {"MYSQL_DATABASE": url.path.lstrip("/"), "MYSQL_USER": urllib.parse.unquote(url.username or ""),
                "MYSQL_PASSWORD": urllib.parse.unquote(url.password or "")}
    for key, value in expected.items():
        if db_env.get(key, db_env.get(key.replace("MYSQL", "MARIADB"))) != value:
            errors.append(f"{where}: DATABASE_URL does not match {url.hostname}'s {key}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["template"] and len(sys.argv) == 3:
        template(Path(sys.argv[2]))
    elif sys.argv[1:] == ["containers"]:
        containers()
    else:
        sys.exit(__doc__)
    for error in errors:
        print(f"check_deploy.py: FAIL {error}", file=sys.stderr)
    sys.exit(1 if errors else 0)
