//! `POST /auth/token`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, PASSWORD, TestApp, TestSettings, on_both_backends, sleep, spawn_app_with,
};

on_both_backends!(
    issues_an_hs256_token_for_the_user,
    usernames_match_case_insensitively,
    missing_fields_are_refused,
    wrong_passwords_and_unknown_users_get_the_same_answer,
);

/// The JSON of one base64url part of a JWT.
pub fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("three parts");
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url");
    serde_json::from_slice(&bytes).expect("a JSON part")
}

async fn issues_an_hs256_token_for_the_user(app: TestApp) {
    let user_id = app.register_user("token_user").await;
    let answer = app
        .token(json!({"username": "token_user", "password": PASSWORD}))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let token = answer.body["data"]["access_token"].as_str().unwrap();
    assert_eq!(
        answer.body,
        json!({
            "status": "success",
            "message": "Access token generated successfully.",
            "data": {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        })
    );
    assert_eq!(jwt_part(token, 0)["alg"], "HS256");
    let claims = jwt_part(token, 1);
    assert_eq!(claims["sub"], user_id.to_string());
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 3600);
    // The token opens the user's data.
    assert_eq!(app.store(token, "k", "v").await.status, 200);
}

async fn usernames_match_case_insensitively(app: TestApp) {
    app.register_user("MixedCase").await;
    let answer = app
        .token(json!({"username": "mixedcase", "password": PASSWORD}))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    // The password is not case-insensitive.
    app.token(json!({"username": "MixedCase", "password": PASSWORD.to_lowercase()}))
        .await
        .assert_code(401, "INVALID_CREDENTIALS");
}

async fn missing_fields_are_refused(app: TestApp) {
    for body in [
        json!({}),
        json!({"username": "someone"}),
        json!({"password": PASSWORD}),
        json!({"username": null, "password": PASSWORD}),
        json!({"username": "someone", "password": "   "}),
        json!({"username": "", "password": ""}),
    ] {
        app.token(body).await.assert_code(400, "MISSING_FIELDS");
    }
    app.token(json!({"username": 5, "password": PASSWORD}))
        .await
        .assert_code(400, "INVALID_REQUEST");
    app.send_raw(reqwest::Method::POST, "/auth/token", None, "{not json")
        .await
        .assert_code(400, "INVALID_REQUEST");
}

async fn wrong_passwords_and_unknown_users_get_the_same_answer(app: TestApp) {
    app.register_user("known").await;
    let wrong = app
        .token(json!({"username": "known", "password": "Wr0ng!Password"}))
        .await;
    let unknown = app
        .token(json!({"username": "unknown", "password": PASSWORD}))
        .await;
    wrong.assert_code(401, "INVALID_CREDENTIALS");
    unknown.assert_code(401, "INVALID_CREDENTIALS");
    for answer in [&wrong, &unknown] {
        // Only INVALID_TOKEN answers carry it (the contract's Authentication section).
        assert!(!answer.headers.contains_key("www-authenticate"));
    }
    // Names no one can register are unknown too, whatever characters they hold.
    for username in ["\u{2}Fá\u{8e} o", "ключ", "a b", "x".repeat(65).as_str()] {
        app.token(json!({"username": username, "password": PASSWORD}))
            .await
            .assert_code(401, "INVALID_CREDENTIALS");
    }
}

#[tokio::test]
async fn lifetime_is_configurable_and_expired_tokens_are_refused() {
    let settings = TestSettings {
        token_lifetime_seconds: 1,
        ..TestSettings::default()
    };
    let app = spawn_app_with(Backend::Sqlite, settings).await.unwrap();
    app.register_user("short_lived").await;
    let answer = app
        .token(json!({"username": "short_lived", "password": PASSWORD}))
        .await;
    assert_eq!(answer.body["data"]["expires_in"], 1);
    let token = answer.body["data"]["access_token"].as_str().unwrap();
    let claims = jwt_part(token, 1);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        1
    );
    // Past `exp` by at least a second, whatever the clock's rounding.
    sleep(Duration::from_millis(2100)).await;
    app.retrieve(token, "k")
        .await
        .assert_code(401, "INVALID_TOKEN");
}
