//! Quotas: at most `QUOTA_MAX_KEYS` entries and `QUOTA_MAX_BYTES` bytes of keys and values per
//! user, held by the database under concurrency.

use futures::future::join_all;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Answer, Backend, TestApp, TestSettings, spawn_app_with};

/// Declares each test on both backends, with an app whose quotas are `$keys` and `$bytes`.
macro_rules! with_quota {
    ($keys:expr, $bytes:expr => $($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::app(super::Backend::Sqlite, $keys, $bytes).await.unwrap()).await;
                }
            )+
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(app) = super::app(super::Backend::MySql, $keys, $bytes).await {
                        super::$test(app).await;
                    }
                }
            )+
        }
    };
}

async fn app(backend: Backend, max_keys: i64, max_bytes: i64) -> Option<TestApp> {
    let settings = TestSettings {
        quota_max_keys: max_keys,
        quota_max_bytes: max_bytes,
        ..TestSettings::default()
    };
    spawn_app_with(backend, settings).await
}

// Each test's user may hold 5 entries of 100 bytes in all.
with_quota!(5, 100 =>
    the_key_limit_refuses_one_entry_more_until_one_is_deleted,
    the_byte_limit_counts_keys_and_values_on_store_and_update,
    a_key_that_exists_is_refused_as_such_before_the_quota,
    expired_entries_count_until_replaced_or_swept,
    twenty_concurrent_stores_one_below_the_limit_give_one_success,
    concurrent_growing_updates_never_pass_the_byte_limit,
    quotas_are_per_user,
);

async fn store(app: &TestApp, token: &str, key: &str, value: &str) -> Answer {
    app.store(token, key, value).await
}

async fn the_key_limit_refuses_one_entry_more_until_one_is_deleted(app: TestApp) {
    let (user_id, token) = app.user_with_token("collector").await;
    for index in 0..5 {
        assert_eq!(
            store(&app, &token, &format!("k{index}"), "v").await.status,
            200
        );
    }
    store(&app, &token, "k5", "v").await.assert_error(
        403,
        "QUOTA_EXCEEDED",
        "The storage quota of this account is exhausted.",
    );
    assert_eq!(app.db.value_of(user_id, "k5").await, None);
    // Each entry counts its key's 2 bytes and its value's 1.
    assert_eq!(app.db.usage(user_id).await, (5, 15));

    assert_eq!(app.delete(&token, "k0").await.status, 200);
    assert_eq!(app.db.usage(user_id).await, (4, 12));
    assert_eq!(store(&app, &token, "k5", "v").await.status, 200);
    assert_eq!(
        app.db.usage(user_id).await,
        app.db.actual_usage(user_id).await
    );
}

async fn the_byte_limit_counts_keys_and_values_on_store_and_update(app: TestApp) {
    let (user_id, token) = app.user_with_token("hoarder").await;
    // "a" and 59 bytes: 60 of 100.
    assert_eq!(store(&app, &token, "a", &"x".repeat(59)).await.status, 200);
    // "b" and 40 bytes would make 101.
    store(&app, &token, "b", &"x".repeat(40))
        .await
        .assert_code(403, "QUOTA_EXCEEDED");
    // Multi-byte characters count in bytes: 13 × "é" is 26 bytes, with "b" 27: 87.
    assert_eq!(store(&app, &token, "b", &"é".repeat(13)).await.status, 200);
    assert_eq!(app.db.usage(user_id).await, (2, 87));

    // An update may grow a value to the limit, not past it.
    assert_eq!(app.update(&token, "a", &"x".repeat(72)).await.status, 200);
    assert_eq!(app.db.usage(user_id).await, (2, 100));
    app.update(&token, "a", &"x".repeat(73))
        .await
        .assert_code(403, "QUOTA_EXCEEDED");
    assert_eq!(app.db.value_of(user_id, "a").await, Some("x".repeat(72)));

    // A smaller value frees the difference at once.
    assert_eq!(app.update(&token, "a", "x").await.status, 200);
    assert_eq!(app.db.usage(user_id).await, (2, 29));
    assert_eq!(
        app.db.usage(user_id).await,
        app.db.actual_usage(user_id).await
    );
}

async fn a_key_that_exists_is_refused_as_such_before_the_quota(app: TestApp) {
    let (_, token) = app.user_with_token("full").await;
    for index in 0..5 {
        assert_eq!(
            store(&app, &token, &format!("k{index}"), "v").await.status,
            200
        );
    }
    store(&app, &token, "k0", "v")
        .await
        .assert_code(409, "KEY_EXISTS");
    // Update checks the key, then the precondition, then the quota.
    app.update(&token, "absent", &"x".repeat(200))
        .await
        .assert_code(404, "KEY_NOT_FOUND");
    let answer = app
        .send(
            Method::PUT,
            "/data/update/k0",
            &token,
            &[("if-match", "\"stale\"")],
            Some(json!({"valueN": "x".repeat(200)})),
        )
        .await;
    answer.assert_code(412, "PRECONDITION_FAILED");
}

async fn expired_entries_count_until_replaced_or_swept(app: TestApp) {
    let (user_id, token) = app.user_with_token("lapsed").await;
    for index in 0..5 {
        assert_eq!(
            store(&app, &token, &format!("k{index}"), "v").await.status,
            200
        );
    }
    app.db.expire_now(user_id, "k0").await;
    app.db.expire_now(user_id, "k1").await;
    // Not swept yet: the expired entries still take their place.
    store(&app, &token, "new", "v")
        .await
        .assert_code(403, "QUOTA_EXCEEDED");
    // Storing an expired key again replaces its entry: no more entries than before.
    assert_eq!(store(&app, &token, "k0", "again").await.status, 200);
    assert_eq!(app.db.usage(user_id).await, (5, 15 - 3 + 7));
    // The sweep frees the other.
    app.state
        .store
        .sweep_expired_batch(kv_shared::store::now_millis())
        .await
        .unwrap();
    assert_eq!(store(&app, &token, "new", "v").await.status, 200);
    assert_eq!(
        app.db.usage(user_id).await,
        app.db.actual_usage(user_id).await
    );
}

async fn twenty_concurrent_stores_one_below_the_limit_give_one_success(app: TestApp) {
    let (user_id, token) = app.user_with_token("rusher").await;
    for index in 0..4 {
        assert_eq!(
            store(&app, &token, &format!("k{index}"), "v").await.status,
            200
        );
    }
    let keys: Vec<String> = (0..20).map(|index| format!("race{index:02}")).collect();
    let answers = join_all(keys.iter().map(|key| store(&app, &token, key, "v"))).await;
    let successes = answers.iter().filter(|answer| answer.status == 200).count();
    assert_eq!(successes, 1, "{answers:?}");
    for answer in answers.iter().filter(|answer| answer.status != 200) {
        answer.assert_code(403, "QUOTA_EXCEEDED");
    }
    assert_eq!(app.db.entry_count(user_id).await, 5);
    assert_eq!(
        app.db.usage(user_id).await,
        app.db.actual_usage(user_id).await
    );
}

async fn concurrent_growing_updates_never_pass_the_byte_limit(app: TestApp) {
    let (user_id, token) = app.user_with_token("grower").await;
    for key in ["a", "b", "c", "d"] {
        assert_eq!(store(&app, &token, key, "v").await.status, 200);
    }
    // 8 of 100 bytes held; each update asks for 40 more (a value of 41 bytes): two fit.
    let updates = (0..20).map(|index| {
        let key = ["a", "b", "c", "d"][index % 4];
        let value = format!("{index:02}{}", "x".repeat(39));
        let (app, token) = (&app, &token);
        async move { app.update(token, key, &value).await }
    });
    let answers = join_all(updates).await;
    for answer in &answers {
        assert!(
            answer.status == 200 || answer.body["code"] == "QUOTA_EXCEEDED",
            "{answer:?}"
        );
    }
    let (keys, bytes) = app.db.actual_usage(user_id).await;
    assert!(bytes <= 100, "{bytes} bytes held");
    assert_eq!(app.db.usage(user_id).await, (keys, bytes));
    assert_eq!(keys, 4);
}

async fn quotas_are_per_user(app: TestApp) {
    let (_, first) = app.user_with_token("first").await;
    let (_, second) = app.user_with_token("second").await;
    for index in 0..5 {
        assert_eq!(
            store(&app, &first, &format!("k{index}"), "v").await.status,
            200
        );
    }
    store(&app, &first, "k5", "v")
        .await
        .assert_code(403, "QUOTA_EXCEEDED");
    for index in 0..5 {
        assert_eq!(
            store(&app, &second, &format!("k{index}"), "v").await.status,
            200
        );
    }
}
