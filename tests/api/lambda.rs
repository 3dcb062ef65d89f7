//! Each Lambda function's service, driven by real API Gateway events (HTTP API payload v2 and
//! REST API payload v1) through lambda_http's own conversions, as `lambda_http::run` does.

use std::path::Path;

use kv_shared::AppState;
use kv_shared::lambda::function_service;
use kv_shared::routes::Endpoint;
use lambda_http::request::LambdaRequest;
use lambda_http::tower::{Service, ServiceExt};
use lambda_http::{Adapter, Context, LambdaEvent};
use serde_json::{Value, json};

use crate::helpers::{TestApp, on_both_backends};

on_both_backends!(
    http_api_events_walk_the_contract,
    rest_api_events_walk_the_contract,
    http_api_events_refresh_log_out_and_check_the_password,
    rest_api_events_refresh_log_out_and_check_the_password,
    http_api_named_stages_are_routed,
    a_function_serves_only_its_own_route,
    wrong_methods_on_any_routes_get_405,
    the_default_route_answers_unknown_paths_with_404,
    failed_logins_count_by_the_gateway_s_source_ip,
);

/// What a function answered: the Lambda response and its body.
struct Invocation {
    response: Value,
    status: u64,
    body: Value,
}

/// The event in `tests/fixtures/events/<name>`, with `__TOKEN__` replaced by `token`.
fn event(name: &str, token: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/events")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path:?}: {error}"));
    serde_json::from_str(&text.replace("__TOKEN__", token)).expect("a JSON event")
}

/// Invokes the function of `endpoint` with `event`, as the Lambda runtime would.
async fn invoke(endpoint: Endpoint, state: &AppState, event: Value) -> Invocation {
    let request: LambdaRequest = serde_json::from_value(event).expect("an API Gateway event");
    let mut function = Adapter::from(function_service(endpoint, state.clone()));
    let response = function
        .ready()
        .await
        .unwrap()
        .call(LambdaEvent::new(request, Context::default()))
        .await
        .unwrap();
    let response = serde_json::to_value(&response).unwrap();
    assert_eq!(response["isBase64Encoded"], false, "{response}");
    let status = response["statusCode"].as_u64().unwrap();
    if status == 304 {
        assert!(
            response["body"].is_null() || response["body"] == "",
            "a 304 has no body: {response}"
        );
        return Invocation {
            status,
            response,
            body: Value::Null,
        };
    }
    let content_type = response["headers"]["content-type"]
        .as_str()
        .or(response["multiValueHeaders"]["content-type"][0].as_str());
    assert_eq!(content_type, Some("application/json"), "{response}");
    let body =
        serde_json::from_str(response["body"].as_str().expect("a text body")).expect("a JSON body");
    Invocation {
        status,
        response,
        body,
    }
}

impl Invocation {
    /// The `ETag` header of the response, in either payload's form.
    fn etag(&self) -> String {
        self.response["headers"]["etag"]
            .as_str()
            .or(self.response["multiValueHeaders"]["etag"][0].as_str())
            .unwrap_or_else(|| panic!("an ETag header: {}", self.response))
            .to_owned()
    }
}

/// `event` with a request header added, in either payload's form.
fn with_header(mut event: Value, name: &str, value: &str) -> Value {
    event["headers"][name] = json!(value);
    if event.get("multiValueHeaders").is_some() {
        event["multiValueHeaders"][name] = json!([value]);
    }
    event
}

/// register, token, store, retrieve, update, retrieve, delete, retrieve: each through its own
/// function, with the events of `payload` (a folder of fixtures).
async fn walk_the_contract(app: &TestApp, payload: &str) {
    let fixture = |name: &str| format!("{payload}/{name}.json");
    let state = &app.state;

    let registered = invoke(Endpoint::Register, state, event(&fixture("register"), "")).await;
    assert_eq!(registered.status, 200, "{}", registered.response);
    assert_eq!(registered.body["data"]["username"], "lambda_user");
    let user_id: i64 = registered.body["data"]["user_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let issued = invoke(Endpoint::Token, state, event(&fixture("token"), "")).await;
    assert_eq!(issued.status, 200, "{}", issued.response);
    let token = issued.body["data"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let stored = invoke(Endpoint::Store, state, event(&fixture("store"), &token)).await;
    assert_eq!(
        stored.body,
        json!({"status": "success", "message": "Data stored successfully."})
    );
    assert_eq!(
        app.db.value_of(user_id, "a/b c").await.as_deref(),
        Some("hello")
    );

    let retrieved = invoke(
        Endpoint::Retrieve,
        state,
        event(&fixture("retrieve"), &token),
    )
    .await;
    assert_eq!(retrieved.status, 200, "{}", retrieved.response);
    assert_eq!(
        retrieved.body,
        json!({"status": "success", "data": {"keyN": "a/b c", "valueN": "hello"}})
    );
    let tag = stored.etag();
    assert_eq!(retrieved.etag(), tag);
    let unchanged = invoke(
        Endpoint::Retrieve,
        state,
        with_header(event(&fixture("retrieve"), &token), "if-none-match", &tag),
    )
    .await;
    assert_eq!(unchanged.status, 304, "{}", unchanged.response);
    assert_eq!(unchanged.etag(), tag);

    // The list event asks for the keys under "a/b", two at most.
    let listed = invoke(Endpoint::List, state, event(&fixture("list"), &token)).await;
    assert_eq!(listed.status, 200, "{}", listed.response);
    assert_eq!(
        listed.body,
        json!({"status": "success", "data": {
            "keys": [{"keyN": "a/b c", "etag": tag, "size": 5, "expires_at": null}],
            "next_cursor": null
        }})
    );

    let updated = invoke(Endpoint::Update, state, event(&fixture("update"), &token)).await;
    assert_eq!(
        updated.body,
        json!({"status": "success", "message": "Data updated successfully."})
    );
    assert_eq!(
        app.db.value_of(user_id, "a/b c").await.as_deref(),
        Some("world")
    );
    assert_ne!(updated.etag(), tag);
    let retrieved = invoke(
        Endpoint::Retrieve,
        state,
        event(&fixture("retrieve"), &token),
    )
    .await;
    assert_eq!(retrieved.body["data"]["valueN"], "world");

    let deleted = invoke(Endpoint::Delete, state, event(&fixture("delete"), &token)).await;
    assert_eq!(
        deleted.body,
        json!({"status": "success", "message": "Data deleted successfully."})
    );
    assert_eq!(app.db.value_of(user_id, "a/b c").await, None);
    let missing = invoke(
        Endpoint::Retrieve,
        state,
        event(&fixture("retrieve"), &token),
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["code"], "KEY_NOT_FOUND");

    let unauthenticated = invoke(
        Endpoint::Retrieve,
        state,
        event(&fixture("retrieve"), "forged"),
    )
    .await;
    assert_eq!(unauthenticated.status, 401);
    assert_eq!(unauthenticated.body["code"], "INVALID_TOKEN");
}

async fn http_api_events_walk_the_contract(app: TestApp) {
    walk_the_contract(&app, "http-api-v2").await;
}

/// REST API events put the stage (`prod`) in front of the path, keep the key percent-encoded
/// and, for the store event, base64-encode the body.
async fn rest_api_events_walk_the_contract(app: TestApp) {
    walk_the_contract(&app, "rest-api-v1").await;
}

/// The session endpoints, each through its own function: a login's refresh token traded at
/// auth-refresh, a wrong current password at auth-password, and auth-logout ending the session.
async fn refresh_log_out_and_check_the_password(app: &TestApp, payload: &str) {
    let fixture = |name: &str| format!("{payload}/{name}.json");
    let state = &app.state;

    let registered = invoke(Endpoint::Register, state, event(&fixture("register"), "")).await;
    assert_eq!(registered.status, 200, "{}", registered.response);
    let issued = invoke(Endpoint::Token, state, event(&fixture("token"), "")).await;
    assert_eq!(issued.status, 200, "{}", issued.response);
    let login_access = issued.body["data"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let login_refresh = issued.body["data"]["refresh_token"]
        .as_str()
        .expect("the login answers a refresh_token")
        .to_owned();
    assert!(
        issued.body["data"]["refresh_expires_in"].as_u64() > Some(0),
        "{}",
        issued.body
    );

    // The refresh event carries the refresh token in its body, where the placeholder is.
    let refreshed = invoke(
        Endpoint::Refresh,
        state,
        event(&fixture("refresh"), &login_refresh),
    )
    .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.response);
    assert_eq!(refreshed.body["status"], "success");
    assert_eq!(
        refreshed.body["message"],
        "Access token refreshed successfully."
    );
    let data = &refreshed.body["data"];
    assert_eq!(data["token_type"], "Bearer");
    assert!(data["expires_in"].as_u64() > Some(0), "{data}");
    assert!(data["refresh_expires_in"].as_u64() > Some(0), "{data}");
    let access = data["access_token"].as_str().unwrap().to_owned();
    let refresh = data["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(
        refresh, login_refresh,
        "a refresh hands out a new refresh token"
    );
    // The login's refresh token is used up (presented again within the grace period: refused,
    // the session lives on).
    let reused = invoke(
        Endpoint::Refresh,
        state,
        event(&fixture("refresh"), &login_refresh),
    )
    .await;
    assert_eq!(reused.status, 401, "{}", reused.response);
    assert_eq!(reused.body["code"], "INVALID_REFRESH_TOKEN");

    // The password event's current_password is wrong.
    let refused = invoke(
        Endpoint::Password,
        state,
        event(&fixture("password"), &access),
    )
    .await;
    assert_eq!(refused.status, 401, "{}", refused.response);
    assert_eq!(refused.body["code"], "INVALID_CREDENTIALS");

    let logged_out = invoke(Endpoint::Logout, state, event(&fixture("logout"), &access)).await;
    assert_eq!(logged_out.status, 200, "{}", logged_out.response);
    assert_eq!(
        logged_out.body,
        json!({"status": "success", "message": "Logged out successfully."})
    );
    // The session has ended: both of its access tokens, and its refresh token, are refused.
    for token in [&access, &login_access] {
        let after = invoke(
            Endpoint::Retrieve,
            state,
            event(&fixture("retrieve"), token),
        )
        .await;
        assert_eq!(after.status, 401, "{}", after.response);
        assert_eq!(after.body["code"], "INVALID_TOKEN");
    }
    let ended = invoke(
        Endpoint::Refresh,
        state,
        event(&fixture("refresh"), &refresh),
    )
    .await;
    assert_eq!(ended.status, 401, "{}", ended.response);
    assert_eq!(ended.body["code"], "INVALID_REFRESH_TOKEN");
}

async fn http_api_events_refresh_log_out_and_check_the_password(app: TestApp) {
    refresh_log_out_and_check_the_password(&app, "http-api-v2").await;
}

/// The REST API logout event has no body at all (the contract allows an empty one).
async fn rest_api_events_refresh_log_out_and_check_the_password(app: TestApp) {
    refresh_log_out_and_check_the_password(&app, "rest-api-v1").await;
}

async fn http_api_named_stages_are_routed(app: TestApp) {
    let mut registration = event("http-api-v2/register.json", "");
    registration["rawPath"] = json!("/prod/auth/register");
    registration["requestContext"]["http"]["path"] = json!("/prod/auth/register");
    registration["requestContext"]["stage"] = json!("prod");
    let answer = invoke(Endpoint::Register, &app.state, registration).await;
    assert_eq!(answer.status, 200, "{}", answer.response);
}

async fn a_function_serves_only_its_own_route(app: TestApp) {
    // The register event sent to the retrieve function: not its route.
    let stray = invoke(
        Endpoint::Retrieve,
        &app.state,
        event("http-api-v2/register.json", ""),
    )
    .await;
    assert_eq!(stray.status, 404);
    assert_eq!(stray.body["code"], "NOT_FOUND");

    let mut wrong_method = event("rest-api-v1/register.json", "");
    wrong_method["httpMethod"] = json!("GET");
    let answer = invoke(Endpoint::Register, &app.state, wrong_method).await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.body["code"], "METHOD_NOT_ALLOWED");
    assert_eq!(app.db.user_count().await, 0);
}

/// The template routes every method of a path to its function (`ANY /data/retrieve/{key+}`),
/// so a wrong method reaches the function, which answers in the contract's envelope.
async fn wrong_methods_on_any_routes_get_405(app: TestApp) {
    let mut delete_on_retrieve = event("http-api-v2/retrieve.json", "ignored");
    delete_on_retrieve["routeKey"] = json!("ANY /data/retrieve/{key+}");
    delete_on_retrieve["requestContext"]["routeKey"] = json!("ANY /data/retrieve/{key+}");
    delete_on_retrieve["requestContext"]["http"]["method"] = json!("DELETE");
    let answer = invoke(Endpoint::Retrieve, &app.state, delete_on_retrieve).await;
    assert_eq!(answer.status, 405, "{}", answer.response);
    assert_eq!(answer.body["code"], "METHOD_NOT_ALLOWED");

    let mut get_on_register = event("http-api-v2/register.json", "");
    get_on_register["routeKey"] = json!("ANY /auth/register");
    get_on_register["requestContext"]["routeKey"] = json!("ANY /auth/register");
    get_on_register["requestContext"]["http"]["method"] = json!("GET");
    let answer = invoke(Endpoint::Register, &app.state, get_on_register).await;
    assert_eq!(answer.status, 405, "{}", answer.response);
    assert_eq!(answer.body["code"], "METHOD_NOT_ALLOWED");
    assert_eq!(app.db.user_count().await, 0);
}

/// Requests that match no route reach the `$default` route's function, which answers 404.
async fn the_default_route_answers_unknown_paths_with_404(app: TestApp) {
    for path in ["/", "/nope", "/data/retrieve", "/auth/token/extra", "/a b"] {
        let mut unmatched = event("http-api-v2/token.json", "");
        unmatched["routeKey"] = json!("$default");
        unmatched["requestContext"]["routeKey"] = json!("$default");
        unmatched["rawPath"] = json!(path);
        unmatched["requestContext"]["http"]["path"] = json!(path);
        let answer = invoke(Endpoint::Token, &app.state, unmatched).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.response);
        assert_eq!(answer.body["code"], "NOT_FOUND");
    }
}

/// Login throttling counts a Lambda caller by the source IP of API Gateway's request context,
/// not by the `X-Forwarded-For` the events also carry (203.0.113.10).
async fn failed_logins_count_by_the_gateway_s_source_ip(app: TestApp) {
    let registered = invoke(
        Endpoint::Register,
        &app.state,
        event("http-api-v2/register.json", ""),
    )
    .await;
    assert_eq!(registered.status, 200, "{}", registered.response);
    let wrong_login = |payload: &str| {
        let mut event = event(&format!("{payload}/token.json"), "");
        event["body"] = json!(r#"{"username":"lambda_user","password":"Wr0ng!Password"}"#);
        let context = &mut event["requestContext"];
        match payload {
            "http-api-v2" => context["http"]["sourceIp"] = json!("192.0.2.99"),
            _ => context["identity"]["sourceIp"] = json!("192.0.2.99"),
        }
        event
    };
    for payload in [
        "http-api-v2",
        "rest-api-v1",
        "http-api-v2",
        "rest-api-v1",
        "http-api-v2",
    ] {
        let failed = invoke(Endpoint::Token, &app.state, wrong_login(payload)).await;
        assert_eq!(failed.status, 401, "{}", failed.response);
    }
    let rows = app.db.login_failure_rows().await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(rows.iter().all(|row| row[2] == "192.0.2.99"), "{rows:?}");

    for payload in ["http-api-v2", "rest-api-v1"] {
        let throttled = invoke(Endpoint::Token, &app.state, wrong_login(payload)).await;
        assert_eq!(throttled.status, 429, "{}", throttled.response);
        assert_eq!(throttled.body["code"], "TOO_MANY_ATTEMPTS");
        let retry_after = throttled.response["headers"]["retry-after"]
            .as_str()
            .or(throttled.response["multiValueHeaders"]["retry-after"][0].as_str())
            .unwrap_or_else(|| panic!("a Retry-After header: {}", throttled.response));
        assert!(
            retry_after
                .parse::<u64>()
                .is_ok_and(|secs| (1..=900).contains(&secs))
        );
    }
}
