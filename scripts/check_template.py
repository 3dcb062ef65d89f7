#!/usr/bin/env python3
"""Checks template.yaml against the workspace, the API contract and README.md.

    check_template.py [TEMPLATE] [--contract PATH] [--doc PATH]
    check_template.py TEMPLATE --write-variants DIR
    check_template.py TEMPLATE --sam-translate OUT_JSON

TEMPLATE defaults to <repo>/template.yaml. The checks:

- every AWS::Serverless::Function is built from a binary of a crate under functions/ (its
  Metadata BuildProperties.Binary, `cargo metadata --no-deps`) that is a default member of the
  workspace (`sam build` runs `cargo lambda build --bin NAME` at the root), with the
  rust-cargolambda build method, and every binary of a crate under functions/ has a function;
- routes: the HTTP API (exactly one, its routes all from HttpApi events, its default route
  settings throttling) sends every request to a function whose router answers in the
  contract's envelope. Every API function (all but db-migrate) has exactly one route whose
  method is ANY (or the contract's own, with a warning: a wrong method then gets API
  Gateway's 404, not the function's 405) and whose path (`{key+}` read as `{key}`, path
  parameters greedy) is an endpoint of the contract (the `## METHOD /path` headings of
  ../shared/CONTRACT.md beside the repository) that the contract does not mark "only"; every
  such endpoint has a route; exactly one `$default` route (Path: $default, Method: ANY) exists
  and targets an API function, whose router answers unknown paths 404 NOT_FOUND; and the
  cargo-lambda watch router in Cargo.toml routes the same paths to the same functions (with
  the contract's methods or none);
- every function's environment variables (Globals included) are ones shared/src/config.rs
  (or telemetry.rs: RUST_LOG) reads, the ones the functions need on Lambda are set, and each
  function may read exactly the secrets its *_SECRET_ARN variables name;
- README.md documents exactly the template's parameters.

With --write-variants, writes copies of TEMPLATE whose parameter defaults select the other
configurations (no proxy; existing VPC and database, with and without proxy) into DIR and
prints their paths, so that cfn-lint can check every branch of the conditions. With
--sam-translate, writes the CloudFormation template the SAM transform makes of TEMPLATE.

Needs PyYAML (and aws-sam-translator for --sam-translate). Exits 1 and lists every problem when a check fails.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent

# Used only when ../shared/CONTRACT.md is absent (a warning says so).
FALLBACK_ENDPOINTS = [
    ("POST", "/auth/register", True),
    ("POST", "/auth/token", True),
    ("POST", "/data/store", True),
    ("GET", "/data/retrieve/{key}", True),
    ("PUT", "/data/update/{key}", True),
    ("DELETE", "/data/delete/{key}", True),
    ("GET", "/health", False),
]

# What every function needs on Lambda (kv_shared::config::Config::load(Runtime::Lambda)): the
# database from a secret, and a JWT key, except for db-migrate, which supplies none.
REQUIRED_ENV = ["DATABASE_SECRET_ARN", "DATABASE_HOST"]
REQUIRED_ENV_API = ["JWT_SECRET_ARN"]
NO_JWT_BINARIES = {"db-migrate"}

SECRETS_POLICY = "AWSSecretsManagerGetSecretValuePolicy"

# The HTTP API route that takes every request no other route matches (SAM: Path: $default).
DEFAULT_ROUTE = "$default"


# ------------------------------------------------------------------ YAML with CloudFormation tags
class CfnLoader(yaml.SafeLoader):
    """A safe loader that reads CloudFormation's short forms as their long forms."""


def _construct_tag(loader: CfnLoader, suffix: str, node: yaml.Node):
    name = "Ref" if suffix == "Ref" else "Condition" if suffix == "Condition" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "Fn::GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict:
    with path.open(encoding="utf-8") as handle:
        template = yaml.load(handle, Loader=CfnLoader)  # noqa: S506 (a SafeLoader subclass)
    if not isinstance(template, dict):
        raise SystemExit(f"{path}: not a YAML mapping")
    return template


# ------------------------------------------------------------------------------------- sources
def workspace_binaries() -> tuple[set[str], set[str], set[str], dict]:
    """(every binary of the workspace, the binaries of crates under functions/, the binaries of
    default members, the workspace metadata)."""
    output = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1",
         "--manifest-path", str(REPO / "Cargo.toml")],
        check=True, capture_output=True, text=True,
    ).stdout
    metadata = json.loads(output)
    functions_dir = Path(metadata["workspace_root"]) / "functions"
    default_members = set(metadata.get("workspace_default_members") or [])
    every, functions, defaults = set(), set(), set()
    for package in metadata["packages"]:
        bins = {t["name"] for t in package["targets"] if "bin" in t["kind"]}
        every |= bins
        if functions_dir in Path(package["manifest_path"]).parents:
            functions |= bins
        if package["id"] in default_members:
            defaults |= bins
    return every, functions, defaults, metadata.get("metadata") or {}


def contract_endpoints(path: Path) -> tuple[list[tuple[str, str, bool]], str]:
    """(method, path, required on Lambda) of each `## METHOD /path` heading, and the source."""
    if not path.is_file():
        return FALLBACK_ENDPOINTS, f"the built-in list ({path} is absent)"
    endpoints = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^##\s+(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+(/\S*)(.*)$", line)
        if match:
            # "## GET /health (local adapter and docker-compose only)": not on Lambda.
            required = not re.search(r"\bonly\b", match.group(3))
            endpoints.append((match.group(1), match.group(2), required))
    if not endpoints:
        raise SystemExit(f"{path}: no '## METHOD /path' headings found")
    return endpoints, str(path)


def config_variables() -> set[str]:
    """The environment variables kv_shared reads: config.rs, and RUST_LOG from telemetry.rs."""
    config = (REPO / "shared/src/config.rs").read_text(encoding="utf-8")
    names = set(re.findall(r'\b(?:get|var|var_os)\(\s*"([A-Z][A-Z0-9_]*)"', config))
    names |= set(re.findall(r'\bparse\(\s*&get,\s*"([A-Z][A-Z0-9_]*)"', config))
    telemetry = (REPO / "shared/src/telemetry.rs").read_text(encoding="utf-8")
    if re.search(r'env::var\("RUST_LOG"\)', telemetry):
        names.add("RUST_LOG")
    # AWS_LAMBDA_FUNCTION_NAME and the other AWS_ variables are Lambda's own: reserved.
    names = {name for name in names if not name.startswith("AWS_")}
    if not names:
        raise SystemExit("shared/src/config.rs: found no environment variable names")
    return names


def documented_parameters(path: Path) -> set[str]:
    """Parameter names in the first column of the Markdown tables of the section of `path`
    whose `## ` heading names deploying."""
    names = set()
    in_section = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            in_section = "deploy" in line.lower()
            continue
        match = re.match(r"^\|\s*`([A-Za-z][A-Za-z0-9]*)`\s*\|", line)
        if in_section and match:
            names.add(match.group(1))
    return names


# -------------------------------------------------------------------------------------- checks
def normalise(path: str) -> str:
    return re.sub(r"\{(\w+)\+\}", r"{\1}", path)


def check(template_path: Path, contract_path: Path, doc_path: Path) -> list[str]:
    errors: list[str] = []
    template = load_template(template_path)
    resources = template.get("Resources") or {}
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    every_bin, function_bins, default_bins, ws_metadata = workspace_binaries()

    functions = {
        name: resource for name, resource in resources.items()
        if isinstance(resource, dict) and resource.get("Type") == "AWS::Serverless::Function"
    }
    http_apis = {
        name for name, resource in resources.items()
        if isinstance(resource, dict) and resource.get("Type") == "AWS::Serverless::HttpApi"
    }

    # Functions <-> binaries.
    binary_of: dict[str, str] = {}
    for name, resource in functions.items():
        metadata = resource.get("Metadata") or {}
        props = resource.get("Properties") or {}
        binary = (metadata.get("BuildProperties") or {}).get("Binary")
        if metadata.get("BuildMethod") != "rust-cargolambda":
            errors.append(f"{name}: Metadata.BuildMethod must be rust-cargolambda")
        if not binary:
            errors.append(f"{name}: no Metadata.BuildProperties.Binary (CodeUri is the workspace root)")
            continue
        if binary not in function_bins:
            where = "is not a Lambda function crate under functions/" if binary in every_bin \
                else "is not a binary of the workspace"
            errors.append(f"{name}: binary {binary!r} {where} "
                          f"(functions: {', '.join(sorted(function_bins))})")
        elif binary not in default_bins:
            errors.append(f"{name}: binary {binary!r} is not in a default member of the workspace: "
                          "`sam build` runs `cargo lambda build --bin` at the root, which would not "
                          "find it (add its crate to default-members in Cargo.toml)")
        if binary in binary_of.values():
            errors.append(f"{name}: binary {binary!r} is built by another function too")
        binary_of[name] = binary
        for key, expected in (("Runtime", "provided.al2023"), ("Handler", "bootstrap"),
                              ("Architectures", ["arm64"]), ("CodeUri", ".")):
            value = props.get(key, globals_fn.get(key))
            if value != expected:
                errors.append(f"{name}: {key} is {value!r}, expected {expected!r}")
    for binary in sorted(function_bins - set(binary_of.values())):
        errors.append(f"functions/ binary {binary!r} has no AWS::Serverless::Function in the template")

    # Routes <-> contract. Every answer must be the contract's, never API Gateway's own
    # {"message":"Not Found"}: each API function serves one contract path with Method ANY (a
    # wrong method then reaches its router, which answers 405), and one $default route sends
    # every unmatched request to an API function (whose router answers 404 NOT_FOUND).
    endpoints, source = contract_endpoints(contract_path)
    if not contract_path.is_file():
        print(f"check_template: WARNING: contract not found at {contract_path}; "
              f"checking routes against {source}", file=sys.stderr)
    contract_methods: dict[str, set[str]] = {}
    lambda_paths: set[str] = set()
    for method, path, required in endpoints:
        contract_methods.setdefault(path, set()).add(method)
        if required:
            lambda_paths.add(path)
    if len(http_apis) != 1:
        errors.append(f"the template defines {len(http_apis)} AWS::Serverless::HttpApi resources; "
                      "the routes and the checks assume exactly one")
    for api_name in sorted(http_apis):
        api_props = resources[api_name].get("Properties") or {}
        for key in ("DefinitionBody", "DefinitionUri"):
            if key in api_props:
                errors.append(f"{api_name}: {key}: routes must come from the functions' HttpApi "
                              "events alone, which this checker sees")
        throttling = api_props.get("DefaultRouteSettings") or {}
        for key in ("ThrottlingBurstLimit", "ThrottlingRateLimit"):
            if key not in throttling:
                errors.append(f"{api_name}: DefaultRouteSettings.{key} is not set; the stage's "
                              "default route settings throttle every route, $default included")
    api_functions = {name for name in functions if binary_of.get(name) not in NO_JWT_BINARIES}
    routes: dict[str, str] = {}  # contract path -> function
    route_count = {name: 0 for name in api_functions}
    default_routes: list[tuple[str, str]] = []  # (event, function)
    for name, resource in functions.items():
        events = (resource.get("Properties") or {}).get("Events") or {}
        for event_name, event in events.items():
            kind = event.get("Type")
            where = f"{name}.Events.{event_name}"
            if kind == "Api":
                errors.append(f"{where}: a REST API event; the API is the HTTP API")
                continue
            if kind != "HttpApi":
                continue
            props = event.get("Properties") or {}
            api = props.get("ApiId")
            if not (isinstance(api, dict) and api.get("Ref") in http_apis):
                errors.append(f"{where}: ApiId must Ref the template's AWS::Serverless::HttpApi")
            method = str(props.get("Method") or "").upper()
            path = str(props.get("Path") or "")
            if not path and not method:
                path, method = DEFAULT_ROUTE, "ANY"  # SAM's reading of an event without both
            if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
                method = "ANY"
            if path == DEFAULT_ROUTE:
                default_routes.append((where, name))
                if method != "ANY":
                    errors.append(f"{where}: the $default route must have Method ANY, not {method or 'none'}")
                if name not in api_functions:
                    errors.append(f"{where}: the $default route must target one of the API functions "
                                  f"(whose routers answer 404 NOT_FOUND), not {name}")
                continue
            if path == f"/{DEFAULT_ROUTE}":
                errors.append(f"{where}: Path /{DEFAULT_ROUTE} is an ordinary route; the default "
                              f"route is Path: {DEFAULT_ROUTE}")
                continue
            if name not in api_functions:
                errors.append(f"{where}: {name} is not an API function and must have no HTTP route")
                continue
            route_count[name] += 1
            route_path = normalise(path)
            if route_path not in lambda_paths:
                what = "is served only outside Lambda" if route_path in contract_methods \
                    else "is not a path of the contract"
                errors.append(f"{where}: route {method} {path}: {route_path} {what} ({source})")
            elif method != "ANY" and method not in contract_methods[route_path]:
                errors.append(f"{where}: route {method} {path}: the contract's method on {route_path} "
                              f"is {'/'.join(sorted(contract_methods[route_path]))} ({source})")
            elif method != "ANY":
                print(f"check_template: WARNING: {where}: route {method} {path}: with Method ANY "
                      "a wrong method would reach the function and get the contract's 405 "
                      "METHOD_NOT_ALLOWED; with this one API Gateway answers it 404 itself",
                      file=sys.stderr)
            if route_path in routes:
                errors.append(f"{where}: path {path} is also routed to {routes[route_path]}")
            else:
                routes[route_path] = name
            for segment in path.split("/"):
                if re.fullmatch(r"\{\w+\}", segment):
                    errors.append(f"{where}: {path}: path parameters must be greedy ({{key+}}): "
                                  "HTTP APIs decode %2F before routing")
            if "+}" in path and not re.search(r"\{\w+\+\}$", path):
                errors.append(f"{where}: {path}: a greedy parameter must be the last segment")
    for name in sorted(api_functions):
        if route_count[name] != 1:
            errors.append(f"{name}: has {route_count[name]} routes besides $default; every API "
                          "function serves exactly one path of the contract")
    for path in sorted(lambda_paths - set(routes)):
        methods = "/".join(sorted(contract_methods[path]))
        errors.append(f"contract endpoint {methods} {path} has no route in the template")
    if not default_routes:
        errors.append(f"no {DEFAULT_ROUTE} route (an HttpApi event with Path: {DEFAULT_ROUTE} and "
                      "Method: ANY on one API function): API Gateway would answer unknown paths "
                      'itself, {"message":"Not Found"}, instead of 404 NOT_FOUND')
    elif len(default_routes) > 1:
        errors.append(f"{len(default_routes)} {DEFAULT_ROUTE} routes "
                      f"({', '.join(where for where, _ in default_routes)}); an HTTP API has exactly one")

    # Routes <-> cargo lambda watch router: the same paths, each to the same function. The
    # router may name the method of each path: the contract's (or * / ANY).
    router = ((ws_metadata.get("lambda") or {}).get("watch") or {}).get("router")
    if router is not None:
        where = "Cargo.toml [workspace.metadata.lambda.watch.router]"
        local: dict[str, set[str]] = {}
        for path, target in router.items():
            entries = target if isinstance(target, list) else [{"method": "*", "function": target}]
            route_path = normalise(path)
            for entry in entries:
                method = str(entry.get("method", "*")).upper()
                local.setdefault(route_path, set()).add(entry.get("function"))
                if method not in ("*", "ANY") and method not in contract_methods.get(route_path, set()):
                    errors.append(f"{where}: {method} {path} is not the contract's method on {route_path}")
        template_routes = {path: binary_of.get(name, name) for path, name in routes.items()}
        for path in sorted(set(local) | set(template_routes)):
            there, here = local.get(path, set()), template_routes.get(path)
            if not there:
                errors.append(f"the template routes {path} to {here}, which {where} does not route")
            elif here is None:
                errors.append(f"{where} routes {path} to {', '.join(sorted(map(str, there)))}, "
                              "which the template does not route")
            elif there != {here}:
                errors.append(f"{where} routes {path} to {', '.join(sorted(map(str, there)))}, "
                              f"the template to {here}")

    # Environment and secrets.
    allowed = config_variables()
    known = f"(known: {', '.join(sorted(allowed))})"
    global_env = ((globals_fn.get("Environment") or {}).get("Variables")) or {}
    for variable in sorted(set(global_env) - allowed):
        errors.append(f"Globals.Function: environment variable {variable} is not read by "
                      f"shared/src/config.rs {known}")
    for name, resource in functions.items():
        props = resource.get("Properties") or {}
        own_env = ((props.get("Environment") or {}).get("Variables")) or {}
        for variable in sorted(set(own_env) - allowed):
            errors.append(f"{name}: environment variable {variable} is not read by "
                          f"shared/src/config.rs {known}")
        env = {**global_env, **own_env}
        required = REQUIRED_ENV + ([] if binary_of.get(name) in NO_JWT_BINARIES else REQUIRED_ENV_API)
        for variable in required:
            if variable not in env:
                errors.append(f"{name}: {variable} is not set; the function cannot start on Lambda without it")
        wanted = [env[v] for v in sorted(env) if v.endswith("_SECRET_ARN")]
        granted = []
        for policy in props.get("Policies") or []:
            if isinstance(policy, dict) and SECRETS_POLICY in policy:
                granted.append((policy[SECRETS_POLICY] or {}).get("SecretArn"))
            elif isinstance(policy, (str, dict)):
                errors.append(f"{name}: policy {policy!r} is not a {SECRETS_POLICY}; "
                              "extend the checker if it is needed")
        for secret in wanted:
            if secret not in granted:
                errors.append(f"{name}: may not read the secret {secret!r} its environment names")
        for secret in granted:
            if secret not in wanted:
                errors.append(f"{name}: may read the secret {secret!r}, which its environment does not name")

    # Parameters <-> README.md.
    parameters = set((template.get("Parameters") or {}).keys())
    if not doc_path.is_file():
        errors.append(f"{doc_path}: missing; it must document every template parameter")
    else:
        documented = documented_parameters(doc_path)
        for parameter in sorted(parameters - documented):
            errors.append(f"parameter {parameter} is not documented in {doc_path}")
        for parameter in sorted(documented - parameters):
            errors.append(f"{doc_path} documents {parameter}, which is not a template parameter")
    return errors


# ------------------------------------------------------------------------------------ variants
VARIANTS = {
    "no-proxy": {"EnableRdsProxy": "false"},
    "existing-database-with-proxy": {
        "ExistingVpcId": "vpc-0123456789abcdef0",
        "ExistingSubnetIds": "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
        "ExistingDatabaseHost": "kv.abcdefghijkl.eu-west-1.rds.amazonaws.com",
        "ExistingDatabaseSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kv-db-AbCdEf",
        "ExistingDatabaseInstanceIdentifier": "kv-db",
    },
    "existing-database-without-proxy": {
        "EnableRdsProxy": "false",
        "ExistingVpcId": "vpc-0123456789abcdef0",
        "ExistingSubnetIds": "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
        "ExistingDatabaseHost": "kv.abcdefghijkl.eu-west-1.rds.amazonaws.com",
        "ExistingDatabaseSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kv-db-AbCdEf",
    },
}


def write_variants(template_path: Path, out_dir: Path) -> list[Path]:
    """Copies of the template whose parameter defaults select the other configurations (cfn-lint
    ignores --parameters on SAM templates, so the defaults are rewritten in the text)."""
    text = template_path.read_text(encoding="utf-8")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for variant, defaults in VARIANTS.items():
        copy = text
        for parameter, value in defaults.items():
            pattern = re.compile(rf"(^  {parameter}:\n(?:    .*\n)*?    Default: ).*$", re.MULTILINE)
            copy, count = pattern.subn(lambda m: m.group(1) + json.dumps(value), copy, count=1)
            if count != 1:
                raise SystemExit(f"{template_path}: parameter {parameter} has no Default to rewrite")
        path = out_dir / f"template.{variant}.yaml"
        path.write_text(copy, encoding="utf-8")
        written.append(path)
    return written


def sam_translate(template_path: Path, out_path: Path) -> None:
    """Writes the CloudFormation template the SAM transform makes of TEMPLATE (the aws-sam-translator
    that `sam deploy` and CloudFormation run), with local CodeUris replaced by a dummy S3 location
    as `sam package` would, so that cfn-lint can check the resources actually deployed."""
    import os

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.parser import parser as sam_parser  # pylint: disable=import-outside-toplevel
    from samtranslator.translator.translator import Translator  # pylint: disable=import-outside-toplevel

    template = load_template(template_path)
    packaged = "s3://sam-artifacts/function.zip"
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    if "CodeUri" in globals_fn:
        globals_fn["CodeUri"] = packaged
    for resource in (template.get("Resources") or {}).values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and "CodeUri" in props:
            props["CodeUri"] = packaged
    translator = Translator(managed_policy_map={}, sam_parser=sam_parser.Parser())
    translated = translator.translate(sam_template=template, parameter_values={})
    out_path.write_text(json.dumps(translated, indent=1), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", nargs="?", type=Path, default=REPO / "template.yaml")
    parser.add_argument("--contract", type=Path, default=REPO.parent / "shared" / "CONTRACT.md")
    parser.add_argument("--doc", type=Path, default=REPO / "README.md")
    parser.add_argument("--write-variants", type=Path, metavar="DIR")
    parser.add_argument("--sam-translate", type=Path, metavar="OUT_JSON")
    args = parser.parse_args()

    if args.sam_translate:
        try:
            sam_translate(args.template, args.sam_translate)
        except Exception as error:  # noqa: BLE001 (the translator's own messages say what is wrong)
            print(f"check_template: the SAM transform of {args.template} fails: {error}", file=sys.stderr)
            return 1
        return 0
    if args.write_variants:
        for path in write_variants(args.template, args.write_variants):
            print(path)
        return 0

    errors = check(args.template, args.contract, args.doc)
    if errors:
        print(f"check_template: {args.template}: {len(errors)} problem(s):", file=sys.stderr)
        for error in errors:
            print(f"  - {error}", file=sys.stderr)
        return 1
    print(f"check_template: {args.template}: functions, routes, environment, secrets and "
          "documented parameters agree with the workspace, the contract and README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
