//! Authentication of `/data/*`: the bearer token is checked before anything else.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TEST_JWT_SECRET, TestApp, on_both_backends};

on_both_backends!(
    requests_without_a_valid_token_are_refused_on_every_endpoint,
    tokens_signed_otherwise_are_refused,
    the_scheme_is_case_insensitive,
    the_token_is_checked_before_the_body,
    a_removed_user_cannot_store,
);

/// One request to every /data endpoint.
fn data_requests() -> Vec<(Method, &'static str, Option<serde_json::Value>)> {
    vec![
        (
            Method::POST,
            "/data/store",
            Some(json!({"keyN": "k", "valueN": "v"})),
        ),
        (Method::GET, "/data/retrieve/k", None),
        (Method::PUT, "/data/update/k", Some(json!({"valueN": "v"}))),
        (Method::DELETE, "/data/delete/k", None),
        (Method::GET, "/data/list", None),
    ]
}

/// Sends every /data request with this Authorization header (none when `None`) and expects
/// INVALID_TOKEN with `WWW-Authenticate: Bearer`.
async fn assert_refused(app: &TestApp, authorization: Option<&str>) {
    for (method, path, body) in data_requests() {
        let mut request = app
            .client
            .request(method.clone(), format!("{}{path}", app.address));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            401,
            "{method} {path} with {authorization:?}"
        );
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"status": "error", "code": "INVALID_TOKEN", "message": "Invalid access token provided."})
        );
    }
}

/// The `sid` claim of a token the app issued.
fn session_of(token: &str) -> String {
    use base64::Engine;
    let claims = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(algorithm: Algorithm, secret: &[u8], claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        &claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

async fn requests_without_a_valid_token_are_refused_on_every_endpoint(app: TestApp) {
    let (_, token) = app.user_with_token("holder").await;
    let basic = format!("Basic {token}");
    let glued = format!("Bearer{token}");
    let truncated = format!("Bearer {}", &token[..token.len() - 2]);
    for header in [
        None,
        Some(""),
        Some("Bearer"),
        Some("Bearer "),
        Some("Bearer not-a-jwt"),
        Some("Bearer a.b.c"),
        Some(basic.as_str()),
        Some(glued.as_str()),
        Some(truncated.as_str()),
        Some(token.as_str()),
    ] {
        assert_refused(&app, header).await;
    }
}

async fn tokens_signed_otherwise_are_refused(app: TestApp) {
    let (user_id, token) = app.user_with_token("victim").await;
    // Each forgery lacks only what makes it one: the rest is a valid token's, of the user's
    // session.
    let sid = session_of(&token);
    let claims = json!({"sub": user_id.to_string(), "sid": sid, "iat": now(), "exp": now() + 600});

    let other_key = sign(
        Algorithm::HS256,
        b"some-other-secret-that-is-32-bytes-long",
        claims.clone(),
    );
    let other_algorithm = sign(Algorithm::HS512, TEST_JWT_SECRET.as_bytes(), claims.clone());
    let expired = sign(
        Algorithm::HS256,
        TEST_JWT_SECRET.as_bytes(),
        json!({"sub": user_id.to_string(), "sid": sid, "iat": now() - 600, "exp": now() - 300}),
    );
    let no_subject = sign(
        Algorithm::HS256,
        TEST_JWT_SECRET.as_bytes(),
        json!({"sid": sid, "iat": now(), "exp": now() + 600}),
    );
    let no_session = sign(
        Algorithm::HS256,
        TEST_JWT_SECRET.as_bytes(),
        json!({"sub": user_id.to_string(), "iat": now(), "exp": now() + 600}),
    );
    let not_a_session_id = sign(
        Algorithm::HS256,
        TEST_JWT_SECRET.as_bytes(),
        json!({"sub": user_id.to_string(), "sid": "none", "iat": now(), "exp": now() + 600}),
    );
    let numeric_session_id = sign(
        Algorithm::HS256,
        TEST_JWT_SECRET.as_bytes(),
        json!({"sub": user_id.to_string(), "sid": 0, "iat": now(), "exp": now() + 600}),
    );
    let not_a_user_id = sign(
        Algorithm::HS256,
        TEST_JWT_SECRET.as_bytes(),
        json!({"sub": "admin", "sid": sid, "iat": now(), "exp": now() + 600}),
    );
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let unsigned = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
    );
    // The user's real token with its payload changed to another user.
    let mut parts: Vec<&str> = token.split('.').collect();
    let altered_payload = URL_SAFE_NO_PAD.encode(
        json!({"sub": (user_id + 1).to_string(), "sid": sid, "iat": now(), "exp": now() + 600})
            .to_string(),
    );
    parts[1] = &altered_payload;
    let altered = parts.join(".");

    for forged in [
        other_key,
        other_algorithm,
        expired,
        no_subject,
        no_session,
        not_a_session_id,
        numeric_session_id,
        not_a_user_id,
        unsigned,
        altered,
    ] {
        assert_refused(&app, Some(&format!("Bearer {forged}"))).await;
    }
    // The real token still works, and so does one signed by hand with the key (a check that
    // the forgeries above fail for their flaw, not for a shape the server never accepts).
    assert_eq!(app.store(&token, "k", "v").await.status, 200);
    let by_hand = sign(Algorithm::HS256, TEST_JWT_SECRET.as_bytes(), claims);
    assert_eq!(app.retrieve(&by_hand, "k").await.status, 200);
}

async fn the_scheme_is_case_insensitive(app: TestApp) {
    let (_, token) = app.user_with_token("schemes").await;
    for (index, scheme) in ["Bearer", "bearer", "BEARER", "bEaReR"].iter().enumerate() {
        let response = app
            .client
            .post(format!("{}/data/store", app.address))
            .header("authorization", format!("{scheme} {token}"))
            .json(&json!({"keyN": format!("k{index}"), "valueN": "v"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
    }
}

async fn the_token_is_checked_before_the_body(app: TestApp) {
    for (method, path) in [
        (Method::POST, "/data/store"),
        (Method::PUT, "/data/update/k"),
    ] {
        // (Not an oversized body: the server answers without reading it and closes, and the
        // client may then fail writing it, which says nothing about the server.)
        app.send_raw(method.clone(), path, None, "{not json")
            .await
            .assert_code(401, "INVALID_TOKEN");
        app.send_raw(method.clone(), path, Some("garbage"), "[]")
            .await
            .assert_code(401, "INVALID_TOKEN");
    }
    app.request(Method::GET, "/data/retrieve/%20%20", None, None)
        .await
        .assert_code(401, "INVALID_TOKEN");
}

async fn a_removed_user_cannot_store(app: TestApp) {
    let (user_id, token) = app.user_with_token("ghost").await;
    assert_eq!(app.store(&token, "before", "v").await.status, 200);
    app.db.delete_user(user_id).await;
    assert_eq!(
        app.db.entry_count(user_id).await,
        0,
        "entries go with their user"
    );
    app.store(&token, "after", "v")
        .await
        .assert_code(401, "INVALID_TOKEN");
    assert_eq!(app.db.entry_count(user_id).await, 0);
    // Its sessions went with it: every endpoint refuses the token.
    assert_refused(&app, Some(&format!("Bearer {token}"))).await;
}
