//! `POST /auth/token`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kv_shared::auth::key_id;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, PASSWORD, TEST_JWT_SECRET, TestApp, TestSettings, on_both_backends, sleep,
    spawn_app_with,
};

on_both_backends!(
    issues_an_hs256_token_for_the_user,
    usernames_match_case_insensitively,
    missing_fields_are_refused,
    wrong_passwords_and_unknown_users_get_the_same_answer,
    tokens_without_kid_are_checked_against_the_only_key,
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
    let refresh_token = answer.body["data"]["refresh_token"].as_str().unwrap();
    assert_eq!(
        answer.body,
        json!({
            "status": "success",
            "message": "Access token generated successfully.",
            "data": {"access_token": token, "token_type": "Bearer", "expires_in": 3600,
                     "refresh_token": refresh_token, "refresh_expires_in": 2_592_000}
        })
    );
    let header = jwt_part(token, 0);
    assert_eq!(header["alg"], "HS256");
    // The header names the key: a short fingerprint, not the key.
    let kid = header["kid"].as_str().expect("a kid in the header");
    assert_eq!(kid, key_id(TEST_JWT_SECRET.as_bytes()));
    assert!(!kid.is_empty() && kid.len() <= 16, "{kid}");
    assert!(!TEST_JWT_SECRET.contains(kid));
    let claims = jwt_part(token, 1);
    assert_eq!(claims["sub"], user_id.to_string());
    // The session it belongs to, a string.
    assert!(claims["sid"].is_string(), "{claims}");
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

/// The keys of a rotation: `NEW_KEY` signs, `OLD_KEY` is still configured, `RETIRED_KEY` no
/// longer is.
const NEW_KEY: &str = "the-new-jwt-key-that-is-at-least-32-bytes-long";
const OLD_KEY: &str = "the-old-jwt-key-that-is-at-least-32-bytes-long";
const RETIRED_KEY: &str = "a-retired-jwt-key-that-is-at-least-32-bytes";

/// An app in the middle of a key rotation: `JWT_SECRET="new,old"`.
async fn rotating_app(backend: Backend) -> Option<TestApp> {
    let settings = TestSettings {
        jwt_secret: format!("{NEW_KEY}, {OLD_KEY}"),
        ..TestSettings::default()
    };
    spawn_app_with(backend, settings).await
}

/// A token with the user and session of `issued` (a token the app issued), signed by hand with
/// `key`, naming `kid` in its header.
fn signed_by_hand(key: &str, kid: Option<String>, issued: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid;
    let issued = jwt_part(issued, 1);
    let claims = json!({"sub": issued["sub"], "sid": issued["sid"], "iat": now, "exp": now + 600});
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(key.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// Asserts a 401 INVALID_TOKEN with `WWW-Authenticate: Bearer` for `token` on /data/retrieve.
async fn assert_token_refused(app: &TestApp, token: &str, what: &str) {
    let answer = app.retrieve(token, "k").await;
    assert_eq!(answer.status, 401, "{what}: {:?}", answer.body);
    answer.assert_code(401, "INVALID_TOKEN");
    assert_eq!(answer.headers["www-authenticate"], "Bearer", "{what}");
}

/// Asserts that `token` opens the user's data: /data/retrieve answers (200 or 404), not 401.
async fn assert_token_accepted(app: &TestApp, token: &str, what: &str) {
    let answer = app.retrieve(token, "k").await;
    assert!(
        answer.status == 200 || answer.status == 404,
        "{what}: {} {:?}",
        answer.status,
        answer.body
    );
}

async fn rotation_keeps_tokens_of_the_old_key_and_refuses_retired_ones(app: TestApp) {
    let (_, token) = app.user_with_token("rotated").await;
    // The first key signs.
    assert_eq!(jwt_part(&token, 0)["kid"], key_id(NEW_KEY.as_bytes()));
    assert_token_accepted(&app, &token, "issued now").await;
    assert_eq!(app.store(&token, "k", "v").await.status, 200);

    // Issued before the rotation, with the old key: accepted while it is configured.
    let old = signed_by_hand(OLD_KEY, Some(key_id(OLD_KEY.as_bytes())), &token);
    assert_token_accepted(&app, &old, "old key, its kid").await;
    assert_eq!(app.retrieve(&old, "k").await.status, 200);

    // A key no longer configured, named by its kid or passing for a configured key.
    let retired = signed_by_hand(RETIRED_KEY, Some(key_id(RETIRED_KEY.as_bytes())), &token);
    assert_token_refused(&app, &retired, "retired key, its kid").await;
    let disguised = signed_by_hand(RETIRED_KEY, Some(key_id(OLD_KEY.as_bytes())), &token);
    assert_token_refused(&app, &disguised, "retired key, the old key's kid").await;
    let crossed = signed_by_hand(OLD_KEY, Some(key_id(NEW_KEY.as_bytes())), &token);
    assert_token_refused(&app, &crossed, "old key, the new key's kid").await;
    let unknown_kid = signed_by_hand(NEW_KEY, Some("not-a-key-id".into()), &token);
    assert_token_refused(&app, &unknown_kid, "new key, an unknown kid").await;

    // Without kid (issued before keys had ids): the first key only.
    let kidless_first = signed_by_hand(NEW_KEY, None, &token);
    assert_token_accepted(&app, &kidless_first, "no kid, first key").await;
    let kidless_old = signed_by_hand(OLD_KEY, None, &token);
    assert_token_refused(&app, &kidless_old, "no kid, second key").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rotation_keeps_tokens_of_the_old_key_and_refuses_retired_ones() {
    let app = rotating_app(Backend::Sqlite)
        .await
        .expect("SQLite is always available");
    rotation_keeps_tokens_of_the_old_key_and_refuses_retired_ones(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_rotation_keeps_tokens_of_the_old_key_and_refuses_retired_ones() {
    if let Some(app) = rotating_app(Backend::MySql).await {
        rotation_keeps_tokens_of_the_old_key_and_refuses_retired_ones(app).await;
    }
}

/// A single-key app (every app before rotations): a token without kid, signed with its key,
/// is still accepted, so tokens issued before this version keep working.
async fn tokens_without_kid_are_checked_against_the_only_key(app: TestApp) {
    let (_, token) = app.user_with_token("legacy").await;
    let legacy = signed_by_hand(TEST_JWT_SECRET, None, &token);
    assert_token_accepted(&app, &legacy, "no kid, the key").await;
    let other = signed_by_hand(OLD_KEY, None, &token);
    assert_token_refused(&app, &other, "no kid, another key").await;
}
