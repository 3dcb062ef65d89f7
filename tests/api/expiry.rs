//! Expiry: `ttl_seconds` on store and update, expired entries absent at once, and the sweep.

use std::time::Duration;

use futures::future::join_all;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestSettings, on_both_backends, sleep, spawn_app_with};
use kv_shared::store::now_millis;

on_both_backends!(
    an_entry_with_a_one_second_ttl_is_gone_two_seconds_later_everywhere,
    ttl_seconds_must_be_an_integer_from_1_to_a_year,
    ttl_seconds_is_checked_after_the_key_and_the_value,
    store_sets_an_expiry_and_null_or_absent_means_never,
    update_keeps_clears_or_sets_the_expiry,
    the_sweep_removes_only_expired_entries_and_frees_their_quota,
    stores_that_replace_expired_keys_while_the_sweep_runs_are_all_kept,
);

async fn store_with_ttl(
    app: &TestApp,
    token: &str,
    key: &str,
    ttl: Value,
) -> crate::helpers::Answer {
    app.request(
        Method::POST,
        "/data/store",
        Some(token),
        Some(json!({"keyN": key, "valueN": "value", "ttl_seconds": ttl})),
    )
    .await
}

async fn update_with_body(
    app: &TestApp,
    token: &str,
    key: &str,
    body: Value,
) -> crate::helpers::Answer {
    app.request(
        Method::PUT,
        &format!("/data/update/{key}"),
        Some(token),
        Some(body),
    )
    .await
}

fn listed_keys(answer: &crate::helpers::Answer) -> Vec<String> {
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["data"]["keys"]
        .as_array()
        .expect("a list of keys")
        .iter()
        .map(|entry| entry["keyN"].as_str().unwrap().to_owned())
        .collect()
}

async fn an_entry_with_a_one_second_ttl_is_gone_two_seconds_later_everywhere(app: TestApp) {
    let (user_id, token) = app.user_with_token("mayfly").await;
    for key in ["r", "u", "d", "l"] {
        assert_eq!(
            store_with_ttl(&app, &token, key, json!(1)).await.status,
            200
        );
    }
    assert_eq!(app.store(&token, "kept", "value").await.status, 200);
    assert_eq!(
        listed_keys(&app.list(&token, "").await),
        ["d", "kept", "l", "r", "u"]
    );

    sleep(Duration::from_secs(2)).await;

    app.retrieve(&token, "r")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
    app.update(&token, "u", "new")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
    app.delete(&token, "d")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
    assert_eq!(listed_keys(&app.list(&token, "").await), ["kept"]);
    // The rows are still there, for the sweep: they are absent by the queries' own filter.
    assert!(app.db.expiry_of(user_id, "l").await.is_some());

    // Storing an expired key works as for a new key, and the user's counters stay exact.
    let stored = app.store(&token, "r", "again").await;
    assert_eq!(stored.status, 200, "{:?}", stored.body);
    assert_eq!(
        app.retrieve(&token, "r").await.body["data"]["valueN"],
        "again"
    );
    assert_eq!(app.db.expiry_of(user_id, "r").await, Some(None));
    assert_eq!(
        app.db.usage(user_id).await,
        app.db.actual_usage(user_id).await
    );
}

async fn ttl_seconds_must_be_an_integer_from_1_to_a_year(app: TestApp) {
    let (user_id, token) = app.user_with_token("strict").await;
    assert_eq!(
        store_with_ttl(&app, &token, "k", json!(1)).await.status,
        200
    );
    let bad: Vec<Value> = vec![
        json!(0),
        json!(-1),
        json!(31_536_001),
        json!("60"),
        json!(true),
        json!(1.5),
        json!([60]),
        json!({"seconds": 60}),
        json!(u64::MAX),
    ];
    for ttl in bad.iter() {
        store_with_ttl(&app, &token, "new", ttl.clone())
            .await
            .assert_code(400, "INVALID_TTL");
        update_with_body(
            &app,
            &token,
            "k",
            json!({"valueN": "v", "ttl_seconds": ttl}),
        )
        .await
        .assert_code(400, "INVALID_TTL");
    }
    // Numbers written with a fraction or an exponent are not integers, whatever their value.
    for raw in [
        r#"{"keyN": "new", "valueN": "v", "ttl_seconds": 30.0}"#,
        r#"{"keyN": "new", "valueN": "v", "ttl_seconds": 1e3}"#,
    ] {
        app.send_raw(Method::POST, "/data/store", Some(&token), raw)
            .await
            .assert_code(400, "INVALID_TTL");
    }
    assert_eq!(app.db.value_of(user_id, "new").await, None);
    assert_eq!(
        app.db.value_of(user_id, "k").await.as_deref(),
        Some("value")
    );
    assert_eq!(
        store_with_ttl(&app, &token, "year", json!(31_536_000))
            .await
            .status,
        200
    );
}

async fn ttl_seconds_is_checked_after_the_key_and_the_value(app: TestApp) {
    let (_, token) = app.user_with_token("orderly").await;
    let store = |body: Value| app.request(Method::POST, "/data/store", Some(&token), Some(body));
    store(json!({"keyN": "", "valueN": "", "ttl_seconds": "x"}))
        .await
        .assert_code(400, "INVALID_KEY");
    store(json!({"keyN": "k", "valueN": "", "ttl_seconds": "x"}))
        .await
        .assert_code(400, "INVALID_VALUE");
    update_with_body(
        &app,
        &token,
        "absent",
        json!({"valueN": 5, "ttl_seconds": "x"}),
    )
    .await
    .assert_code(400, "INVALID_VALUE");
    // The body's checks come before the key's existence.
    update_with_body(
        &app,
        &token,
        "absent",
        json!({"valueN": "v", "ttl_seconds": 0}),
    )
    .await
    .assert_code(400, "INVALID_TTL");
}

async fn store_sets_an_expiry_and_null_or_absent_means_never(app: TestApp) {
    let (user_id, token) = app.user_with_token("planner").await;
    let before = now_millis();
    assert_eq!(
        store_with_ttl(&app, &token, "hour", json!(3600))
            .await
            .status,
        200
    );
    let after = now_millis();
    let expires_at = app
        .db
        .expiry_of(user_id, "hour")
        .await
        .flatten()
        .expect("an expiry");
    assert!((before + 3_600_000..=after + 3_600_000).contains(&expires_at));

    assert_eq!(
        store_with_ttl(&app, &token, "null", Value::Null)
            .await
            .status,
        200
    );
    assert_eq!(app.store(&token, "absent", "value").await.status, 200);
    assert_eq!(app.db.expiry_of(user_id, "null").await, Some(None));
    assert_eq!(app.db.expiry_of(user_id, "absent").await, Some(None));
}

async fn update_with_expiry(app: &TestApp, token: &str, body: Value) -> Option<i64> {
    let answer = update_with_body(app, token, "k", body).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let user_id = app.db.users_named("changer").await[0].id;
    app.db.expiry_of(user_id, "k").await.expect("the entry")
}

async fn update_keeps_clears_or_sets_the_expiry(app: TestApp) {
    let (user_id, token) = app.user_with_token("changer").await;
    assert_eq!(
        store_with_ttl(&app, &token, "k", json!(600)).await.status,
        200
    );
    let original = app.db.expiry_of(user_id, "k").await.flatten().unwrap();

    // Absent: the expiry stays as it was.
    assert_eq!(
        update_with_expiry(&app, &token, json!({"valueN": "a"})).await,
        Some(original)
    );
    // A number: a new expiry, from the update.
    let before = now_millis();
    let set = update_with_expiry(&app, &token, json!({"valueN": "b", "ttl_seconds": 60}))
        .await
        .unwrap();
    assert!(set >= before + 60_000 && set < original, "{set} {original}");
    // Null: no expiry any more.
    assert_eq!(
        update_with_expiry(&app, &token, json!({"valueN": "c", "ttl_seconds": null})).await,
        None
    );
    assert_eq!(
        update_with_expiry(&app, &token, json!({"valueN": "d"})).await,
        None
    );
}

async fn the_sweep_removes_only_expired_entries_and_frees_their_quota(app: TestApp) {
    let (user_id, token) = app.user_with_token("sweeper").await;
    let (other_id, other_token) = app.user_with_token("bystander").await;
    for index in 0..30 {
        let key = format!("old{index:02}");
        assert_eq!(
            store_with_ttl(&app, &token, &key, json!(600)).await.status,
            200
        );
        app.db.expire_now(user_id, &key).await;
    }
    assert_eq!(
        store_with_ttl(&app, &token, "young", json!(600))
            .await
            .status,
        200
    );
    assert_eq!(app.store(&token, "forever", "value").await.status, 200);
    assert_eq!(
        store_with_ttl(&app, &other_token, "old", json!(600))
            .await
            .status,
        200
    );
    app.db.expire_now(other_id, "old").await;
    assert_eq!(
        app.db.usage(user_id).await.0,
        32,
        "expired entries count until swept"
    );

    let removed = app
        .state
        .store
        .sweep_expired_batch(now_millis())
        .await
        .expect("the sweep runs");
    assert_eq!(removed, 31);

    assert_eq!(app.db.entry_count(user_id).await, 2);
    assert_eq!(app.db.entry_count(other_id).await, 0);
    assert_eq!(
        app.db.usage(user_id).await,
        app.db.actual_usage(user_id).await
    );
    assert_eq!(app.db.usage(other_id).await, (0, 0));
    assert_eq!(app.retrieve(&token, "young").await.status, 200);
    assert_eq!(app.retrieve(&token, "forever").await.status, 200);
}

async fn stores_that_replace_expired_keys_while_the_sweep_runs_are_all_kept(app: TestApp) {
    const KEYS: usize = 200;
    let (user_id, token) = app.user_with_token("replacer").await;
    let (other_id, other_token) = app.user_with_token("lapsed").await;
    let keys: Vec<String> = (0..KEYS).map(|index| format!("k{index:03}")).collect();
    for key in &keys {
        assert_eq!(app.store(&token, key, "old value").await.status, 200);
        assert_eq!(app.store(&other_token, key, "old value").await.status, 200);
    }
    app.db.expire_all(user_id).await;
    app.db.expire_all(other_id).await;

    // The sweep runs batch after batch while every expired key of the first user is stored
    // again: a store may find its key's old entry or not, and the sweep may find it expired
    // or replaced.
    let sweeping = async {
        let mut removed = 0;
        for _ in 0..20 {
            removed += app
                .state
                .store
                .sweep_expired_batch(now_millis())
                .await
                .expect("the sweep runs");
        }
        removed
    };
    let storing = join_all(keys.iter().map(|key| app.store(&token, key, "new value")));
    let (removed, answers) = tokio::join!(sweeping, storing);

    for answer in &answers {
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    assert!(
        (KEYS..=2 * KEYS).contains(&removed),
        "the sweep removed {removed} entries"
    );
    for key in &keys {
        assert_eq!(
            app.db.value_of(user_id, key).await.as_deref(),
            Some("new value")
        );
        assert_eq!(app.db.expiry_of(user_id, key).await, Some(None));
    }
    assert_eq!(app.db.entry_count(other_id).await, 0);
    assert_eq!(app.db.usage(other_id).await, (0, 0));
    assert_eq!(
        app.db.usage(user_id).await,
        app.db.actual_usage(user_id).await
    );
    assert_eq!(app.db.actual_usage(user_id).await.0, KEYS as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adapter_sweeps_in_the_background_and_stops_with_the_server() {
    let settings = TestSettings {
        sweep_interval_seconds: 1,
        ..TestSettings::default()
    };
    let app = spawn_app_with(crate::helpers::Backend::Sqlite, settings)
        .await
        .unwrap();
    let (user_id, token) = app.user_with_token("background").await;
    assert_eq!(
        store_with_ttl(&app, &token, "brief", json!(1)).await.status,
        200
    );
    // No deadline is asserted: the loop ends when the row is gone, and the test runner's
    // timeout catches a sweep that never comes.
    while app.db.expiry_of(user_id, "brief").await.is_some() {
        sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.db.usage(user_id).await, (0, 0));
    app.stop().await;
}
