//! Login throttling: failed logins counted in the database per username and per client address
//! (every request of these tests comes from 127.0.0.1).

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{
    Answer, Backend, PASSWORD, TestApp, TestSettings, on_both_backends, sleep, spawn_app_with,
};

on_both_backends!(
    the_sixth_attempt_after_five_failures_is_throttled_even_with_the_right_password,
    usernames_are_throttled_case_insensitively,
    failures_of_a_name_count_once_it_is_registered,
    a_success_clears_the_username_s_failures,
    throttled_attempts_are_not_recorded,
    any_name_is_counted_however_long_or_odd,
    one_address_is_throttled_across_usernames,
    failures_age_out_of_the_window,
    a_concurrent_burst_gets_at_most_the_limit_of_guesses,
    failures_are_recorded_without_the_password,
    the_clean_up_deletes_only_failures_before_its_cutoff,
    wrong_current_passwords_count_as_failed_logins_of_the_username,
);

const WRONG: &str = "Wr0ng!Password";

fn login(username: &str, password: &str) -> Value {
    json!({"username": username, "password": password})
}

/// Asserts a 429 TOO_MANY_ATTEMPTS whose `Retry-After` is whole seconds from 1 to `window`.
#[track_caller]
fn assert_throttled(answer: &Answer, window: u64) -> u64 {
    answer.assert_code(429, "TOO_MANY_ATTEMPTS");
    let retry_after: u64 = answer
        .headers
        .get("retry-after")
        .unwrap_or_else(|| panic!("a Retry-After header: {answer:?}"))
        .to_str()
        .expect("an ASCII Retry-After")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(
        (1..=window).contains(&retry_after),
        "Retry-After {retry_after} within 1..={window}"
    );
    retry_after
}

async fn fail(app: &TestApp, username: &str, times: usize) {
    for _ in 0..times {
        app.token(login(username, WRONG))
            .await
            .assert_code(401, "INVALID_CREDENTIALS");
    }
}

async fn the_sixth_attempt_after_five_failures_is_throttled_even_with_the_right_password(
    app: TestApp,
) {
    app.register_user("alice").await;
    app.register_user("bob").await;
    fail(&app, "alice", 5).await;

    let answer = app.token(login("alice", PASSWORD)).await;
    assert_throttled(&answer, 900);
    assert_throttled(&app.token(login("alice", WRONG)).await, 900);
    // Another username from the same address is not concerned.
    app.login("bob").await;
    assert_eq!(app.db.login_failures_of("alice").await, 5);
    assert_eq!(app.db.login_failures_of("bob").await, 0);
}

async fn wrong_current_passwords_count_as_failed_logins_of_the_username(app: TestApp) {
    app.register_user("carol").await;
    let token = app.login("carol").await;
    let change = |current: &'static str| {
        app.change_password(
            &token,
            json!({"current_password": current, "new_password": "N3w!Passw0rd"}),
        )
    };
    // Answers before the current password is checked count as nothing.
    for _ in 0..6 {
        app.change_password(&token, json!({"current_password": WRONG}))
            .await
            .assert_error(
                400,
                "MISSING_FIELDS",
                "Missing fields. Please provide both current_password and new_password.",
            );
        app.change_password(
            &token,
            json!({"current_password": WRONG, "new_password": "weak"}),
        )
        .await
        .assert_code(400, "INVALID_PASSWORD");
    }
    assert_eq!(app.db.login_failures_of("carol").await, 0);
    for _ in 0..3 {
        change(WRONG).await.assert_code(401, "INVALID_CREDENTIALS");
    }
    fail(&app, "carol", 2).await;

    // Five failures of either kind: the right password is refused on both endpoints.
    assert_throttled(&change(PASSWORD).await, 900);
    assert_throttled(&app.token(login("carol", PASSWORD)).await, 900);
    assert_eq!(app.db.login_failures_of("carol").await, 5);
    // The password did not change: the session still works.
    assert_eq!(app.retrieve(&token, "none").await.status, 404);
}

async fn usernames_are_throttled_case_insensitively(app: TestApp) {
    app.register_user("alice").await;
    for username in ["Alice", "ALICE", "aLiCe", "alice", "ALIce"] {
        fail(&app, username, 1).await;
    }
    assert_throttled(&app.token(login("alice", PASSWORD)).await, 900);
    assert_throttled(&app.token(login("Alice", PASSWORD)).await, 900);
}

async fn failures_of_a_name_count_once_it_is_registered(app: TestApp) {
    fail(&app, "Latecomer", 5).await;
    app.register_user("latecomer").await;
    assert_throttled(&app.token(login("latecomer", PASSWORD)).await, 900);
}

async fn a_success_clears_the_username_s_failures(app: TestApp) {
    app.register_user("carol").await;
    fail(&app, "carol", 4).await;
    app.login("carol").await;
    assert_eq!(app.db.login_failures_of("carol").await, 0);

    fail(&app, "carol", 5).await;
    assert_throttled(&app.token(login("carol", PASSWORD)).await, 900);
}

async fn throttled_attempts_are_not_recorded(app: TestApp) {
    app.register_user("dave").await;
    fail(&app, "dave", 5).await;
    for _ in 0..5 {
        assert_throttled(&app.token(login("dave", WRONG)).await, 900);
    }
    assert_eq!(app.db.login_failures_of("dave").await, 5);
    assert_eq!(app.db.login_failure_rows().await.len(), 5);
    // Requests refused before the throttle are no attempts at all.
    app.token(json!({"username": "dave", "password": " "}))
        .await
        .assert_code(400, "MISSING_FIELDS");
    assert_eq!(app.db.login_failures_of("dave").await, 5);
}

async fn any_name_is_counted_however_long_or_odd(app: TestApp) {
    for username in ["x".repeat(10_000), "ключ \u{2} é".to_owned()] {
        fail(&app, &username, 5).await;
        assert_throttled(&app.token(login(&username, WRONG)).await, 900);
        assert_eq!(app.db.login_failures_of(&username).await, 5);
    }
}

async fn one_address_is_throttled_across_usernames(app: TestApp) {
    let app = respawn(
        app,
        TestSettings {
            login_max_failures_per_address: 3,
            ..TestSettings::default()
        },
    )
    .await;
    app.register_user("erin").await;
    for username in ["first", "second", "third"] {
        fail(&app, username, 1).await;
    }
    // Every username from this address, with the right password or not.
    assert_throttled(&app.token(login("erin", PASSWORD)).await, 900);
    assert_throttled(&app.token(login("fourth", WRONG)).await, 900);
    assert_eq!(app.db.login_failure_rows().await.len(), 3);
}

async fn failures_age_out_of_the_window(app: TestApp) {
    let app = respawn(
        app,
        TestSettings {
            login_window_seconds: 2,
            ..TestSettings::default()
        },
    )
    .await;
    app.register_user("frank").await;
    fail(&app, "frank", 5).await;
    assert_throttled(&app.token(login("frank", PASSWORD)).await, 2);

    sleep(Duration::from_millis(2500)).await;
    app.login("frank").await;
}

async fn a_concurrent_burst_gets_at_most_the_limit_of_guesses(app: TestApp) {
    app.register_user("grace").await;
    let answers = join_all((0..20).map(|_| app.token(login("grace", WRONG)))).await;

    let guesses = answers.iter().filter(|answer| answer.status == 401).count();
    assert!(guesses <= 5, "{guesses} guesses were checked: {answers:?}");
    for answer in &answers {
        if answer.status == 401 {
            answer.assert_code(401, "INVALID_CREDENTIALS");
        } else {
            assert_throttled(answer, 900);
        }
    }
    let recorded = app.db.login_failures_of("grace").await;
    assert_eq!(
        recorded, guesses as i64,
        "each checked guess is one failure"
    );
}

async fn failures_are_recorded_without_the_password(app: TestApp) {
    app.register_user("heidi").await;
    let password = "Sec0nd!Guess-7f3a";
    app.token(login("Heidi", password))
        .await
        .assert_code(401, "INVALID_CREDENTIALS");

    let rows = app.db.login_failure_rows().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let [_id, username_key, address, failed_at] = &rows[0][..] else {
        panic!("four columns: {rows:?}");
    };
    assert_eq!(username_key.len(), 64, "a hex SHA-256: {username_key}");
    assert!(username_key.bytes().all(|byte| byte.is_ascii_hexdigit()));
    assert_eq!(address, "127.0.0.1");
    let failed_at: i64 = failed_at.parse().unwrap();
    assert!((failed_at - kv_shared::store::now_millis()).abs() < 60_000);
    let text = rows[0].join(" ").to_lowercase();
    for secret in [password.to_lowercase(), "heidi".to_owned()] {
        assert!(!text.contains(&secret), "{secret} is stored: {text}");
    }
}

async fn the_clean_up_deletes_only_failures_before_its_cutoff(app: TestApp) {
    fail(&app, "ivan", 3).await;
    let cutoff = kv_shared::store::now_millis() + 1;
    sleep(Duration::from_millis(5)).await;
    fail(&app, "judy", 2).await;

    let store = &app.state.store;
    assert_eq!(
        store
            .delete_login_failures_before(cutoff - 60_000)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.delete_login_failures_before(cutoff).await.unwrap(), 3);
    assert_eq!(app.db.login_failures_of("ivan").await, 0);
    assert_eq!(app.db.login_failures_of("judy").await, 2);
}

/// A fresh app on the same backend as `app`, with `settings`.
async fn respawn(app: TestApp, settings: TestSettings) -> TestApp {
    let backend = match app.db {
        crate::helpers::TestDatabase::Sqlite(_) => Backend::Sqlite,
        crate::helpers::TestDatabase::MySql(_) => Backend::MySql,
    };
    drop(app);
    spawn_app_with(backend, settings)
        .await
        .expect("the backend of the app it replaces")
}
