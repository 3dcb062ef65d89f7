//! What applies to every endpoint: unknown routes, wrong methods, body limits, `/health`.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, on_both_backends};

on_both_backends!(
    unknown_paths_are_not_found,
    wrong_methods_are_not_allowed,
    bodies_over_one_mebibyte_are_too_large,
    bodies_up_to_one_mebibyte_are_read,
    health_reports_the_database,
    the_openapi_document_is_served,
);

async fn unknown_paths_are_not_found(app: TestApp) {
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/nope"),
        (Method::POST, "/auth/register/"),
        (Method::POST, "/auth"),
        (Method::GET, "/data/retrieve"),
        (Method::GET, "/data/retrieve/"),
        (Method::GET, "/data/retrieve/a/b"),
        (Method::POST, "/data/store/extra"),
    ] {
        app.request(method, path, None, None)
            .await
            .assert_code(404, "NOT_FOUND");
    }
}

async fn wrong_methods_are_not_allowed(app: TestApp) {
    for (method, path) in [
        (Method::GET, "/auth/register"),
        (Method::PUT, "/auth/token"),
        (Method::GET, "/data/store"),
        (Method::POST, "/data/retrieve/k"),
        (Method::PATCH, "/data/update/k"),
        (Method::GET, "/data/delete/k"),
        (Method::POST, "/health"),
    ] {
        let answer = app.request(method.clone(), path, None, None).await;
        answer.assert_code(405, "METHOD_NOT_ALLOWED");
        assert!(answer.headers.contains_key("allow"), "{method} {path}");
    }
}

async fn bodies_over_one_mebibyte_are_too_large(app: TestApp) {
    let (_, token) = app.user_with_token("big").await;
    let oversized = format!(
        r#"{{"keyN": "k", "valueN": "{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    app.send_raw(Method::POST, "/data/store", Some(&token), oversized.clone())
        .await
        .assert_code(413, "PAYLOAD_TOO_LARGE");
    app.send_raw(Method::POST, "/auth/register", None, oversized)
        .await
        .assert_code(413, "PAYLOAD_TOO_LARGE");
    app.retrieve(&token, "k")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
}

async fn bodies_up_to_one_mebibyte_are_read(app: TestApp) {
    let (_, token) = app.user_with_token("padded").await;
    // Exactly 1 MiB: a valid store padded with whitespace.
    let body = r#"{"keyN": "k", "valueN": "v"}"#;
    let padded = format!("{body}{}", " ".repeat(1024 * 1024 - body.len()));
    assert_eq!(padded.len(), 1024 * 1024);
    let answer = app
        .send_raw(Method::POST, "/data/store", Some(&token), padded)
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
}

async fn health_reports_the_database(app: TestApp) {
    app.request(Method::GET, "/health", None, None)
        .await
        .assert_success(json!({"status": "success", "data": {"database": "ok"}}));
}

#[tokio::test]
async fn health_is_unavailable_when_the_database_is_closed() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    app.state.store.close().await;
    let answer = app.request(Method::GET, "/health", None, None).await;
    answer.assert_code(503, "SERVICE_UNAVAILABLE");
    assert!(answer.headers.contains_key("retry-after"));
    app.register(crate::helpers::registration("late"))
        .await
        .assert_code(503, "SERVICE_UNAVAILABLE");
}

async fn the_openapi_document_is_served(app: TestApp) {
    // What it must hold is checked in `endpoints.rs`; here, that the adapter serves it.
    let answer = app.request(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "application/json");
    let served: serde_json::Value = answer.body;
    let document: serde_json::Value =
        serde_json::from_str(kv_shared::routes::OPENAPI_JSON).unwrap();
    assert_eq!(served, document);
}
