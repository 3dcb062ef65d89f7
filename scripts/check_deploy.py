#!/usr/bin/env python3
"""What scripts/ci.sh checks in the deployment files beyond cfn-lint, hadolint, the compose
schema and the Rust tests (which hold template.yaml's functions and routes to the code).

    check_deploy.py template OUT_DIR   writes, for cfn-lint, copies of template.yaml whose
        parameter defaults select every combination of the branches of its conditions (cfn-lint
        ignores --parameters on SAM templates), the CloudFormation JSON the SAM transform makes
        of each (a template the transform rejects fails here), and that JSON resolved for its
        parameters: conditions decided, parameters replaced by their values, which cfn-lint
        then checks as values (an engine version, say); prints their paths. Checks that the
        functions' environment names only variables the code reads, the ones they need on
        Lambda, and exactly the secrets their policies let them read; and, in each resolved
        JSON, that every function logs JSON to a log group with a retention and holds one
        database connection, that those the API or a schedule invokes have a reserved
        concurrency, that a rule invokes data-sweep every minute, and that the alarms are
        there (the API's 5xx, each function's errors and throttles, the proxy's pinned and
        near-limit connections, a new database's free storage) with AlarmTopicArn, when given,
        as their action; that a new database has deletion protection, a final snapshot and
        (RDS) a storage autoscaling limit; that the API logs its requests, with the client's
        address, as JSON to a log group with a retention; and that every security group has
        explicit egress rules (no allow-all), each to the database's port or 443, to anywhere
        only where the template cannot name the destination.
    check_deploy.py containers         checks Dockerfile, .dockerignore and docker-compose.yml:
        every base image is pinned by a version tag and its digest, every file COPY'd exists
        and is in the build context, the build stage has every workspace member, the runtime listens on 0.0.0.0 at the published port, and the app
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
    in src/, shared/src/ and functions/src/, plus RUST_LOG (tracing's filter)."""
    text = "".join(p.read_text() for top in ("src", "shared/src", "functions/src") for p in (REPO / top).rglob("*.rs"))
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
    {"": {}, "no-proxy": {"EnableRdsProxy": "false",
                          "DatabaseCaBundleLayerArn": "arn:aws:lambda:eu-west-1:123456789012:layer:rds-ca:1"}},
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
        deployed = resolve(translated)
        parameters = translated["Parameters"]
        check_deployed(path.name, deployed, parameters["AlarmTopicArn"].get("Default", ""),
                       str(parameters["ExistingDatabasePort"]["Default"]),
                       parameters["DatabaseCaBundleLayerArn"].get("Default", ""))
        files.append(out_dir / f"{path.stem}.deployed.json")
        files[-1].write_text(json.dumps(deployed, indent=1))

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


NO_VALUE = object()  # what AWS::NoValue resolves to: the key or item is left out


def resolve(doc):
    """`doc`, a SAM transform, as CloudFormation creates it from its parameters' defaults: every
    Ref to a parameter replaced by its value (in Fn::Sub too), the conditions decided, the
    resources and outputs whose condition is false left out, each Fn::If replaced by its
    branch; no Parameters, Rules or Conditions left."""
    parameters = {}  # a parameter's value is a string (a list of them for a list type)
    for name, parameter in doc.get("Parameters", {}).items():
        value = str(parameter.get("Default", ""))
        parameters[name] = value.split(",") if parameter["Type"] == "CommaDelimitedList" else value
    decided = {}

    def condition(name):
        if name not in decided:
            decided[name] = holds(doc["Conditions"][name])
        return decided[name]

    def holds(expression):
        (function, argument), = expression.items()
        if function == "Condition":
            return condition(argument)
        if function == "Fn::Equals":
            left, right = (value(a) for a in argument)
            return str(left) == str(right)  # CloudFormation compares parameters as strings
        if function == "Fn::Not":
            return not holds(argument[0])
        if function == "Fn::And":
            return all(holds(a) for a in argument)
        if function == "Fn::Or":
            return any(holds(a) for a in argument)
        raise ValueError(f"no such condition function: {function}")

    def value(node):
        if isinstance(node, list):
            return [v for v in map(value, node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (function, argument), = node.items()
            if function == "Ref" and argument == "AWS::NoValue":
                return NO_VALUE
            if function == "Ref" and argument in parameters:
                return parameters[argument]
            if function == "Fn::If":
                return value(argument[1] if condition(argument[0]) else argument[2])
            if function == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                text = re.sub(r"\$\{([A-Za-z0-9]+)\}", lambda m: str(parameters[m.group(1)])
                              if m.group(1) in parameters and m.group(1) not in variables else m.group(0), text)
                if not variables and "${" not in text:
                    return text  # only parameters: CloudFormation makes it a plain string
                return {function: text if not variables else [text, value(variables)]}
        return {k: v for k, v in ((k, value(v)) for k, v in node.items()) if v is not NO_VALUE}

    result = {key: doc[key] for key in ("AWSTemplateFormatVersion", "Description", "Metadata") if key in doc}
    for section in ("Resources", "Outputs"):
        result[section] = {name: value({k: v for k, v in entry.items() if k != "Condition"})
                           for name, entry in doc.get(section, {}).items()
                           if "Condition" not in entry or condition(entry["Condition"])}
    return result


def check_deployed(name, doc, alarm_topic, existing_database_port, layer_arn):
    """What the template must deploy, whatever its parameters select (`doc` is resolved): the
    log format and pool size of every function, the reserved concurrency of every function
    an event invokes, the sweep's schedule, the alarms, with `alarm_topic` as their action,
    the database's protection, the API's access log, the security groups' egress, and TLS that
    verifies the database (the RDS CA bundle's layer without the proxy, `layer_arn`)."""
    resources = doc["Resources"]

    def of_type(kind):
        return {k: r for k, r in resources.items() if r["Type"] == kind}

    alarms = {k: a["Properties"] for k, a in of_type("AWS::CloudWatch::Alarm").items()}

    def watched(namespace, metric, dimension, value):
        """The alarms on one metric of one resource, or on an expression over it."""
        wanted = {"Namespace": namespace, "MetricName": metric, "Dimensions": [{"Name": dimension, "Value": value}]}
        return [a for a in alarms.values() if {k: a.get(k) for k in wanted} == wanted
                or wanted in [q.get("MetricStat", {}).get("Metric") for q in a.get("Metrics", [])]]

    def need_alarm(what, *metric):
        if not watched(*metric):
            errors.append(f"{name}: no alarm on {what} (the metric {metric[1]} of {metric[3]})")

    functions = of_type("AWS::Lambda::Function")
    invoked = {p["Properties"]["FunctionName"]["Ref"]: p["Properties"]["Principal"]
               for p in of_type("AWS::Lambda::Permission").values()}
    logging_config = {"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "SystemLogLevel": "WARN"}
    for function, resource in functions.items():
        props = resource["Properties"]
        config = props.get("LoggingConfig", {})
        if {k: config.get(k) for k in logging_config} != logging_config:
            errors.append(f"{name}: {function} logs with {config}, not {logging_config}")
        group = resources.get(config.get("LogGroup", {}).get("Ref"), {})
        if group.get("Type") != "AWS::Logs::LogGroup" or "RetentionInDays" not in group.get("Properties", {}):
            errors.append(f"{name}: {function} does not log to a log group of the stack with a retention")
        variables = props.get("Environment", {}).get("Variables", {})
        pool = variables.get("DATABASE_MAX_CONNECTIONS")
        if pool != "1":
            errors.append(f"{name}: {function} has DATABASE_MAX_CONNECTIONS {pool}, not 1 (one per instance)")
        # TLS verifies the server: RDS Proxy's certificate against the public roots, a database's
        # against the RDS CA bundle of the layer DATABASE_SSL_CA points into.
        if variables.get("DATABASE_SSL_MODE") not in (None, "verify_identity"):
            errors.append(f"{name}: {function} connects with DATABASE_SSL_MODE {variables['DATABASE_SSL_MODE']}")
        proxied = bool(of_type("AWS::RDS::DBProxy"))
        bundle = (variables.get("DATABASE_SSL_CA"), props.get("Layers"))
        if bundle != ((None, None) if proxied else ("/opt/rds-ca/global-bundle.pem", [layer_arn])):
            errors.append(f"{name}: {function} has DATABASE_SSL_CA and Layers {bundle}, but "
                          + ("the proxy's certificate is public" if proxied else "it connects to the database"))
        if function in invoked and "ReservedConcurrentExecutions" not in props:
            errors.append(f"{name}: {invoked[function]} invokes {function}, which has no reserved concurrency")
        for metric in ("Errors", "Throttles"):
            need_alarm(f"{function}'s {metric.lower()}", "AWS/Lambda", metric, "FunctionName", {"Ref": function})

    sweep = [f for f, r in functions.items() if r.get("Metadata", {}).get("BuildProperties", {}).get("Binary") == "data-sweep"]
    schedules = [r["Properties"] for r in of_type("AWS::Events::Rule").values()
                 if r["Properties"].get("ScheduleExpression") == "rate(1 minute)"
                 and r["Properties"].get("State", "ENABLED") == "ENABLED"
                 and {"Fn::GetAtt": [*sweep, "Arn"]} in [t["Arn"] for t in r["Properties"].get("Targets", [])]]
    if len(sweep) != 1 or len(schedules) != 1 or invoked.get(sweep[0]) != "events.amazonaws.com":
        errors.append(f"{name}: no EventBridge rule invokes data-sweep every minute (rate(1 minute)), with its permission")

    for api in of_type("AWS::ApiGatewayV2::Api"):
        need_alarm("the HTTP API's 5xx answers", "AWS/ApiGateway", "5xx", "ApiId", {"Ref": api})
    for proxy in of_type("AWS::RDS::DBProxy"):
        dimension = ("ProxyName", {"Ref": proxy})
        need_alarm("pinned proxy connections", "AWS/RDS", "DatabaseConnectionsCurrentlySessionPinned", *dimension)
        need_alarm("the proxy's connections", "AWS/RDS", "DatabaseConnections", *dimension)
        need_alarm("the proxy's connection limit", "AWS/RDS", "MaxDatabaseConnectionsAllowed", *dimension)

    # A new database: deletion protection, a final snapshot, storage autoscaling (RDS) and an
    # alarm on its free storage (RDS) or each instance's free local storage (Aurora).
    instances = of_type("AWS::RDS::DBInstance")
    for logical, resource in {**of_type("AWS::RDS::DBCluster"), **instances}.items():
        props = resource["Properties"]
        if "DBClusterIdentifier" in props:  # an Aurora instance: the cluster has them
            need_alarm(f"{logical}'s free local storage", "AWS/RDS", "FreeLocalStorage",
                       "DBInstanceIdentifier", {"Ref": logical})
            continue
        if str(props.get("DeletionProtection")).lower() != "true":
            errors.append(f"{name}: {logical} has DeletionProtection {props.get('DeletionProtection')}, not true")
        for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
            if resource.get(policy) != "Snapshot":
                errors.append(f"{name}: {logical} has {policy} {resource.get(policy)}, not Snapshot")
        if resource["Type"] == "AWS::RDS::DBInstance":
            allocated, limit = (float(props.get(k, 0)) for k in ("AllocatedStorage", "MaxAllocatedStorage"))
            if limit < 1.1 * allocated:  # RDS wants the limit 10 % above the storage at least
                errors.append(f"{name}: {logical} has MaxAllocatedStorage {limit:g}, not 10 % above "
                              f"AllocatedStorage {allocated:g}: no storage autoscaling")
            need_alarm(f"{logical}'s free storage", "AWS/RDS", "FreeStorageSpace", "DBInstanceIdentifier", {"Ref": logical})

    # The API's access log: JSON with the client's address, to a log group with a retention.
    access_log = {"requestId": "$context.requestId", "sourceIp": "$context.identity.sourceIp",
                  "routeKey": "$context.routeKey", "status": "$context.status",
                  "responseLatency": "$context.responseLatency"}
    for logical, stage in of_type("AWS::ApiGatewayV2::Stage").items():
        settings = stage["Properties"].get("AccessLogSettings", {})
        group = resources.get((settings.get("DestinationArn", {}).get("Fn::GetAtt") or [None])[0], {})
        if group.get("Type") != "AWS::Logs::LogGroup" or "RetentionInDays" not in group.get("Properties", {}):
            errors.append(f"{name}: {logical} does not log its requests to a log group of the stack with a retention")
        try:
            fields = json.loads(settings.get("Format", ""))
        except ValueError:
            fields = None
        if not isinstance(fields, dict) or {k: fields.get(k) for k in access_log} != access_log:
            errors.append(f"{name}: {logical}'s access log format is not JSON with {access_log}")

    # Security groups: explicit egress (a group without any gets allow-all), each rule to one
    # TCP port, the database's or HTTPS's; to anywhere only where the destination is unknown.
    groups = of_type("AWS::EC2::SecurityGroup")
    egress = {g: [("inline", r) for r in groups[g]["Properties"].get("SecurityGroupEgress", [])] for g in groups}
    for logical, rule in of_type("AWS::EC2::SecurityGroupEgress").items():
        egress.setdefault(rule["Properties"]["GroupId"].get("Ref"), []).append((logical, rule["Properties"]))
    users = {}  # the functions of each group
    for function, resource in functions.items():
        for group in resource["Properties"].get("VpcConfig", {}).get("SecurityGroupIds", []):
            users.setdefault(group.get("Ref"), set()).add(function)
    migrator = {f for f, r in functions.items() if r.get("Metadata", {}).get("BuildProperties", {}).get("Binary") == "db-migrate"}
    creates_vpc, creates_database = bool(of_type("AWS::EC2::VPC")), bool(of_type("AWS::RDS::DBSubnetGroup"))
    database_ports = {"3306", existing_database_port}  # a new database's or the proxy's, an existing one's
    for group in groups:
        if not groups[group]["Properties"].get("SecurityGroupEgress"):
            errors.append(f"{name}: {group} has no SecurityGroupEgress of its own, so allow-all egress")
    for group, rules in egress.items():
        for where, rule in rules:
            what = f"{name}: {group}'s egress rule {rule.get('Description')!r} ({where})"
            if rule.get("IpProtocol") == "icmp" and rule.get("CidrIp") == "127.0.0.1/32":
                continue  # the rule that matches nothing: no egress at all
            port = str(rule.get("FromPort"))
            if rule.get("IpProtocol") != "tcp" or port != str(rule.get("ToPort")) or port not in database_ports | {"443"}:
                errors.append(f"{what} is not to one TCP port, the database's or 443")
            if "CidrIpv6" in rule or "DestinationPrefixListId" in rule:
                errors.append(f"{what} names an IPv6 range or a prefix list, which nothing here needs")
            if rule.get("CidrIp") == "0.0.0.0/0":
                if port == "443" and creates_vpc and not (users.get(group) and users[group] <= migrator):
                    errors.append(f"{what} reaches any address on 443 in the stack's VPC, where only "
                                  "db-migrate's own group needs to (S3); name the endpoint's group")
                if port != "443" and creates_database:
                    errors.append(f"{what} opens the database's port to any address; name its group")
            elif rule.get("CidrIp") is not None:
                errors.append(f"{what} names the address range {rule.get('CidrIp')}; name a group")

    actions = [alarm_topic] if alarm_topic else None
    for logical, alarm in alarms.items():
        for key in ("AlarmActions", "OKActions"):
            if alarm.get(key) != actions:
                errors.append(f"{name}: {logical} has {key} {alarm.get(key)}, not {actions}")


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
    names = set()  # the stages' names (AS name), which a later FROM may build on
    for instruction, *rest in lines:
        if instruction.upper() == "FROM":
            words = [w for w in (rest[0] if rest else "").split() if not w.startswith("--")]
            image = words[0] if words else ""
            # An image from a registry: a version tag and the digest of its content.
            if image.lower() not in names and not re.fullmatch(r"[^@:\s]+(:[^@:\s]+)+@sha256:[0-9a-f]{64}", image):
                errors.append(f"Dockerfile: FROM {image} is not pinned as IMAGE:TAG@sha256:DIGEST")
            elif image.lower() not in names and not re.search(r"\d+\.\d+|\d{8}", image.split("@")[0].rsplit(":", 1)[-1]):
                errors.append(f"Dockerfile: FROM {image}: the tag names no version (1.95.0, a date), so it documents no digest")
            if len(words) >= 3 and words[1].upper() == "AS":
                names.add(words[2].lower())
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
