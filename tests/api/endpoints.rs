//! The endpoint list exists once, as `Endpoint::ALL`. Everything that must name each endpoint
//! outside the router is checked against it here: the function binaries, `template.yaml`, the
//! `cargo lambda watch` router and the OpenAPI document, which must also carry every status and
//! error code `CONTRACT.md` gives the endpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use kv_shared::routes::{Endpoint, OPENAPI_JSON};
use serde_json::Value as Json;
use serde_norway::Value as Yaml;

/// Binaries of the functions crate that serve no endpoint, in byte order: the schema step
/// (CloudFormation's custom resource) and the sweep of expired entries (an EventBridge schedule).
const OTHER_FUNCTIONS: [&str; 2] = ["data-sweep", "db-migrate"];

/// Error codes of the contract that no endpoint answers yet, with the issue that adds them.
/// An endpoint's code missing from the OpenAPI document fails the test unless it is here.
/// Empty: every code of the contract is documented (issue 12 added TOO_MANY_ATTEMPTS).
const NOT_YET_ANSWERED: [(&str, &str); 0] = [];

/// Whether `endpoint` needs `Authorization: Bearer` (CONTRACT.md, "Authentication of /data/*
/// and of logout and password").
fn needs_token(endpoint: Endpoint) -> bool {
    endpoint.path().starts_with("/data/")
        || matches!(endpoint, Endpoint::Logout | Endpoint::Password)
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `/data/retrieve/{key}` as API Gateway's HTTP API routes it: a greedy `{key+}`, since the
/// gateway decodes `%2F` before it matches.
fn gateway_path(endpoint: Endpoint) -> String {
    endpoint.path().replace("{key}", "{key+}")
}

#[test]
fn every_endpoint_has_its_function_binary_and_nothing_else_does() {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(repository())
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "{output:?}");
    let metadata: Json = serde_json::from_slice(&output.stdout).unwrap();
    let functions_dir = repository().join("functions");
    let binaries: BTreeSet<String> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|package| {
            Path::new(package["manifest_path"].as_str().unwrap()).starts_with(&functions_dir)
        })
        .flat_map(|package| package["targets"].as_array().unwrap())
        .filter(|target| target["kind"] == serde_json::json!(["bin"]))
        .map(|target| target["name"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = Endpoint::ALL
        .iter()
        .map(|endpoint| endpoint.function_name())
        .chain(OTHER_FUNCTIONS)
        .map(str::to_owned)
        .collect();
    assert_eq!(
        binaries, expected,
        "functions/src/bin must hold one binary per Endpoint (function_name) and OTHER_FUNCTIONS"
    );
}

#[test]
fn the_watch_router_routes_every_endpoint_to_its_function() {
    let manifest: toml::Table = std::fs::read_to_string(repository().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let router = manifest["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .expect("[workspace.metadata.lambda.watch.router] in Cargo.toml");
    let mut routed = BTreeMap::new();
    for (path, routes) in router {
        for route in routes.as_array().unwrap() {
            routed.insert(
                (
                    route["method"].as_str().unwrap().to_owned(),
                    path.to_owned(),
                ),
                route["function"].as_str().unwrap().to_owned(),
            );
        }
    }
    let expected: BTreeMap<_, _> = Endpoint::ALL
        .iter()
        .map(|endpoint| {
            (
                (endpoint.method().to_owned(), endpoint.path().to_owned()),
                endpoint.function_name().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        routed, expected,
        "the cargo lambda watch router in Cargo.toml"
    );
}

/// The functions of `template.yaml`, by binary name: each one's HTTP API routes, as
/// `(method, path)`.
fn template_functions() -> BTreeMap<String, BTreeSet<(String, String)>> {
    let template: Yaml = serde_norway::from_str(
        &std::fs::read_to_string(repository().join("template.yaml")).unwrap(),
    )
    .unwrap();
    let mut functions = BTreeMap::new();
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        assert_eq!(
            resource["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{name:?} is built by sam build's cargo-lambda"
        );
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{name:?} names its binary"));
        let mut routes = BTreeSet::new();
        if let Some(events) = resource["Properties"]["Events"].as_mapping() {
            for event in events.values() {
                if event["Type"].as_str() == Some("HttpApi") {
                    let properties = &event["Properties"];
                    routes.insert((
                        properties["Method"].as_str().unwrap().to_owned(),
                        properties["Path"].as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
        assert!(
            functions.insert(binary.to_owned(), routes).is_none(),
            "{binary} is deployed twice"
        );
    }
    functions
}

#[test]
fn the_template_deploys_every_endpoint_as_its_own_function_behind_its_route() {
    let mut functions = template_functions();
    let mut default_routes = 0;
    for endpoint in Endpoint::ALL {
        let routes = functions
            .remove(endpoint.function_name())
            .unwrap_or_else(|| panic!("template.yaml has no function for {endpoint:?}"));
        // ANY, so that a wrong method is answered by the function's 405, not the gateway's 404.
        let own_route = ("ANY".to_owned(), gateway_path(endpoint));
        assert!(
            routes.contains(&own_route),
            "{endpoint:?}: template.yaml needs the HttpApi event {own_route:?}, has {routes:?}"
        );
        for route in &routes {
            if route.1 == "$default" {
                default_routes += 1;
            } else {
                assert_eq!(route, &own_route, "{endpoint:?} serves only its own route");
            }
        }
    }
    assert_eq!(
        default_routes, 1,
        "exactly one function takes the $default route (unknown paths: 404 NOT_FOUND)"
    );
    let others: Vec<&String> = functions.keys().collect();
    assert_eq!(
        others, OTHER_FUNCTIONS,
        "template.yaml deploys no other function"
    );
    for function in OTHER_FUNCTIONS {
        assert!(functions[function].is_empty(), "{function} has no route");
    }
}

/// CONTRACT.md, "Expiry": expired entries are swept at least once a minute; on AWS by
/// data-sweep, which an EventBridge rule invokes every minute, one sweep at a time.
#[test]
fn the_template_sweeps_every_minute_one_sweep_at_a_time() {
    let template: Yaml = serde_norway::from_str(
        &std::fs::read_to_string(repository().join("template.yaml")).unwrap(),
    )
    .unwrap();
    let sweep = template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .find(|resource| {
            resource["Metadata"]["BuildProperties"]["Binary"].as_str() == Some("data-sweep")
        })
        .expect("template.yaml deploys data-sweep");
    let properties = &sweep["Properties"];
    let schedules: Vec<&str> = properties["Events"]
        .as_mapping()
        .into_iter()
        .flat_map(|events| events.values())
        .filter(|event| event["Type"].as_str() == Some("Schedule"))
        .map(|event| event["Properties"]["Schedule"].as_str().unwrap())
        .collect();
    assert_eq!(
        schedules,
        ["rate(1 minute)"],
        "an EventBridge rule invokes data-sweep every minute"
    );
    assert_eq!(
        properties["ReservedConcurrentExecutions"].as_u64(),
        Some(1),
        "one sweep at a time"
    );
    let timeout = properties["Timeout"]
        .as_u64()
        .expect("data-sweep sets its own timeout");
    assert!(
        timeout < 60,
        "a sweep ends before the next one starts, not after {timeout} s"
    );
    assert!(
        properties["Environment"]["Variables"]["JWT_SECRET_ARN"].is_null(),
        "data-sweep reads only the database's settings"
    );
}

/// The contract's error codes, each with its status, from every table of `CONTRACT.md`.
fn contract_statuses(contract: &str) -> BTreeMap<String, u16> {
    let mut statuses = BTreeMap::new();
    for line in contract.lines().filter(|line| line.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        for pair in cells.windows(2) {
            if let (Ok(status), code) = (pair[0].parse::<u16>(), pair[1])
                && is_code(code)
            {
                statuses.insert(code.to_owned(), status);
            }
        }
    }
    statuses
}

fn is_code(word: &str) -> bool {
    word.len() > 3
        && word.contains('_')
        && word
            .bytes()
            .all(|byte| byte.is_ascii_uppercase() || byte == b'_')
}

/// The text of each `## ` section of the contract, by heading.
fn contract_sections(contract: &str) -> BTreeMap<String, String> {
    let mut sections = BTreeMap::new();
    let mut heading = String::new();
    for line in contract.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            heading = title.trim().to_owned();
        } else {
            sections
                .entry(heading.clone())
                .or_insert_with(String::new)
                .push_str(&format!("{line}\n"));
        }
    }
    sections
}

/// The `(status, code)` pairs the contract gives `endpoint`: the errors of every endpoint,
/// the authentication errors of those that need a token, and every code its own section names.
fn contract_answers(contract: &str, endpoint: Endpoint) -> BTreeSet<(u16, String)> {
    let statuses = contract_statuses(contract);
    let sections = contract_sections(contract);
    let codes_in = |text: &str| -> Vec<String> {
        text.split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .filter(|word| statuses.contains_key(*word))
            .map(str::to_owned)
            .collect()
    };
    let own = sections
        .get(&format!("{} {}", endpoint.method(), endpoint.path()))
        .unwrap_or_else(|| panic!("CONTRACT.md has no section for {endpoint:?}"));
    // The table under "Errors that apply to every endpoint", less what needs a request body
    // (INVALID_REQUEST, PAYLOAD_TOO_LARGE) where the endpoint reads none.
    let envelope = &sections["Envelope"];
    let general: String = envelope[envelope
        .find("Errors that apply to every endpoint")
        .expect("CONTRACT.md lists the errors of every endpoint")..]
        .lines()
        .skip(1)
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .collect();
    let reads_a_body = matches!(endpoint.method(), "POST" | "PUT");
    let mut codes = codes_in(own);
    codes.extend(codes_in(&general).into_iter().filter(|code| {
        reads_a_body || !matches!(code.as_str(), "INVALID_REQUEST" | "PAYLOAD_TOO_LARGE")
    }));
    if needs_token(endpoint) {
        codes.push("INVALID_TOKEN".to_owned());
    }
    codes
        .into_iter()
        .map(|code| (statuses[&code], code))
        .collect()
}

/// The `(status, code)` pairs the OpenAPI document gives an operation.
fn openapi_answers(operation: &Json) -> BTreeSet<(u16, String)> {
    let mut answers = BTreeSet::new();
    for (status, response) in operation["responses"].as_object().unwrap() {
        let schema = &response["content"]["application/json"]["schema"];
        for code in schema["properties"]["code"]["enum"]
            .as_array()
            .into_iter()
            .flatten()
        {
            answers.insert((status.parse().unwrap(), code.as_str().unwrap().to_owned()));
        }
    }
    answers
}

#[test]
fn the_openapi_document_has_every_endpoint_with_the_contract_s_answers() {
    let document: Json = serde_json::from_str(OPENAPI_JSON).unwrap();
    let paths = document["paths"].as_object().unwrap();
    let contract = std::fs::read_to_string(repository().join("../shared/CONTRACT.md"));
    if contract.is_err() {
        assert!(
            !test_support::is_ci(),
            "../shared/CONTRACT.md is missing, and under CI the contract must be checked"
        );
        eprintln!("SKIPPED the contract's answers: ../shared/CONTRACT.md is missing");
    }
    for endpoint in Endpoint::ALL {
        let operation = &paths
            .get(endpoint.path())
            .unwrap_or_else(|| panic!("shared/openapi.json has no path {}", endpoint.path()))
            [endpoint.method().to_ascii_lowercase()];
        assert!(
            operation.is_object(),
            "shared/openapi.json has no {} {}",
            endpoint.method(),
            endpoint.path()
        );
        let security = &operation["security"];
        if needs_token(endpoint) {
            assert_eq!(
                security,
                &serde_json::json!([{"bearer": []}]),
                "shared/openapi.json: {} {} needs the bearer security",
                endpoint.method(),
                endpoint.path()
            );
        } else {
            assert!(
                security.is_null(),
                "shared/openapi.json: {} {} needs no token",
                endpoint.method(),
                endpoint.path()
            );
        }
        let Ok(contract) = &contract else { continue };
        let documented = openapi_answers(operation);
        let missing: Vec<_> = contract_answers(contract, endpoint)
            .into_iter()
            .filter(|(_, code)| !NOT_YET_ANSWERED.iter().any(|(later, _)| later == code))
            .filter(|answer| !documented.contains(answer))
            .collect();
        assert!(
            missing.is_empty(),
            "shared/openapi.json lacks, for {} {}, these (status, code) of CONTRACT.md: {missing:?}",
            endpoint.method(),
            endpoint.path()
        );
    }
    let served: BTreeSet<&str> = Endpoint::ALL
        .iter()
        .map(|endpoint| endpoint.path())
        .chain(["/health"])
        .collect();
    let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    assert_eq!(
        documented, served,
        "shared/openapi.json documents only served paths"
    );
}
