//! The migrations upgrade a filled database: entries stored at the first schema get tags of
//! their own, no expiry, and are counted against their users; failed logins recorded before
//! attempts in flight were told apart from failures still count as failures.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{
    Backend, FIRST_MIGRATION, PASSWORD, SchemaSeed, TestApp, TestSettings, spawn_app_with,
};

/// Two users and their entries, as the first schema holds them; the password hash is `hash`.
fn seed(hash: &str) -> String {
    format!(
        "INSERT INTO users (id, username, username_key, email, password_hash, full_name, age, gender) VALUES \
             (1, 'Veteran', 'veteran', 'veteran@example.com', '{hash}', 'V', 40, 'female'), \
             (2, 'idle', 'idle', 'idle@example.com', '{hash}', 'I', NULL, 'male'); \
         INSERT INTO entries (user_id, entry_key, value) VALUES \
             (1, 'a', 'one'), (1, 'b/c', 'ééé'), (1, 'd', 'four'), (3 - 1, 'x', 'y');"
    )
}

async fn upgraded_app(backend: Backend) -> Option<TestApp> {
    let hash = kv_shared::auth::Passwords::new(1)
        .hash(PASSWORD)
        .await
        .expect("a hash");
    let settings = TestSettings {
        quota_max_keys: 4,
        schema_seed: Some(SchemaSeed {
            migration: FIRST_MIGRATION,
            sql: seed(&hash),
        }),
        ..TestSettings::default()
    };
    spawn_app_with(backend, settings).await
}

async fn existing_entries_are_tagged_counted_and_never_expire(app: TestApp) {
    // Counted: "a" 1 + 3, "b/c" 3 + 6, "d" 1 + 4 bytes.
    assert_eq!(app.db.usage(1).await, (3, 18));
    assert_eq!(app.db.usage(2).await, (1, 2));
    for key in ["a", "b/c", "d"] {
        assert_eq!(app.db.expiry_of(1, key).await, Some(None));
    }

    let token = app.login("veteran").await;
    let listed = app.list(&token, "").await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let keys = listed.body["data"]["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 3);
    let tags: HashSet<String> = keys
        .iter()
        .map(|entry| entry["etag"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tags.len(), 3, "each entry has a tag of its own: {keys:?}");
    assert_eq!(
        keys[1],
        json!({"keyN": "b/c", "etag": keys[1]["etag"], "size": 6, "expires_at": null})
    );

    // The tags work as any other: a conditional update with the listed tag goes through.
    let tag = keys[0]["etag"].as_str().unwrap();
    assert_eq!(app.retrieve(&token, "a").await.etag(), tag);
    let updated = app
        .send(
            Method::PUT,
            "/data/update/a",
            &token,
            &[("if-match", tag)],
            Some(json!({"valueN": "uno"})),
        )
        .await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);

    // The quota sees the old entries: 3 held, room for 1 more.
    assert_eq!(app.store(&token, "e", "v").await.status, 200);
    app.store(&token, "f", "v")
        .await
        .assert_code(403, "QUOTA_EXCEEDED");
    assert_eq!(app.db.usage(1).await, app.db.actual_usage(1).await);
    // A new user starts from nothing.
    let (new_id, _) = app.user_with_token("newcomer").await;
    assert_eq!(app.db.usage(new_id).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_upgrades_a_filled_database() {
    let app = upgraded_app(Backend::Sqlite).await.unwrap();
    existing_entries_are_tagged_counted_and_never_expire(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_upgrades_a_filled_database() {
    if let Some(app) = upgraded_app(Backend::MySql).await {
        existing_entries_are_tagged_counted_and_never_expire(app).await;
    }
}

/// The migration that made `login_failures`, before its rows were settled or not.
const LOGIN_FAILURES_MIGRATION: i64 = 20261202000002;

/// Five failed logins of "veteran", just recorded, as the table held them before the upgrade
/// (unsettled, they would be attempts in flight).
async fn app_with_old_failures(backend: Backend) -> Option<TestApp> {
    let key = kv_shared::store::login_username_key("veteran");
    let failed_at = kv_shared::store::now_millis();
    let rows: Vec<String> = (0..5)
        .map(|_| format!("('{key}', '192.0.2.7', {failed_at})"))
        .collect();
    let settings = TestSettings {
        schema_seed: Some(SchemaSeed {
            migration: LOGIN_FAILURES_MIGRATION,
            sql: format!(
                "INSERT INTO login_failures (username_key, address, failed_at) VALUES {};",
                rows.join(", ")
            ),
        }),
        ..TestSettings::default()
    };
    spawn_app_with(backend, settings).await
}

async fn old_failures_still_count(app: TestApp) {
    assert_eq!(app.db.login_rows_of("veteran").await, (5, 0));
    app.register_user("veteran").await;
    let answer = app
        .token(json!({"username": "veteran", "password": PASSWORD}))
        .await;
    answer.assert_code(429, "TOO_MANY_ATTEMPTS");
    let retry_after: u64 = answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (880..=900).contains(&retry_after),
        "the failures count for the whole window: {retry_after}"
    );
    assert_eq!(app.db.login_rows_of("veteran").await, (5, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_old_failed_logins_as_failures() {
    let app = app_with_old_failures(Backend::Sqlite).await.unwrap();
    old_failures_still_count(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_keeps_old_failed_logins_as_failures() {
    if let Some(app) = app_with_old_failures(Backend::MySql).await {
        old_failures_still_count(app).await;
    }
}
