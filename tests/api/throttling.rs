//! Login throttling: failed logins counted in the database per username and per client address
//! (every request of these tests comes from 127.0.0.1), attempts in flight told apart from them.

use std::time::{Duration, Instant};

use kv_shared::store::{LOGIN_IN_FLIGHT_GRACE, now_millis};

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
    concurrent_logins_with_the_right_password_all_succeed,
    concurrent_logins_from_one_address_all_succeed,
    attempts_in_flight_delay_a_login_but_never_throttle_it,
    a_login_kept_waiting_too_long_answers_503,
    an_attempt_left_unsettled_counts_as_a_failure_after_the_grace,
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
    assert_eq!(
        app.db.login_rows_of("alice").await,
        (5, 0),
        "settled failures"
    );
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
    assert_eq!(
        app.db.login_rows_of("carol").await,
        (5, 0),
        "settled failures"
    );
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

    // The guesses beyond the limit wait for those in flight, and are throttled once those
    // have failed.
    let guesses = answers.iter().filter(|answer| answer.status == 401).count();
    assert_eq!(guesses, 5, "{guesses} guesses were checked: {answers:?}");
    for answer in &answers {
        if answer.status == 401 {
            answer.assert_code(401, "INVALID_CREDENTIALS");
        } else {
            assert_throttled(answer, 900);
        }
    }
    assert_eq!(
        app.db.login_rows_of("grace").await,
        (5, 0),
        "each checked guess is one settled failure"
    );
    assert_eq!(app.db.login_failure_rows().await.len(), 5);
}

async fn concurrent_logins_with_the_right_password_all_succeed(app: TestApp) {
    app.register_user("kim").await;
    // Many more than the limit at once, none of them failing: nothing to throttle.
    let answers = join_all((0..24).map(|_| app.token(login("kim", PASSWORD)))).await;

    for answer in &answers {
        assert_eq!(answer.status, 200, "{answers:?}");
    }
    assert_eq!(app.db.login_failure_rows().await, Vec::<Vec<String>>::new());
}

async fn concurrent_logins_from_one_address_all_succeed(app: TestApp) {
    let app = respawn(
        app,
        TestSettings {
            login_max_failures_per_address: 3,
            ..TestSettings::default()
        },
    )
    .await;
    let usernames: Vec<String> = (0..12).map(|n| format!("user{n}")).collect();
    for username in &usernames {
        app.register_user(username).await;
    }
    let answers = join_all(
        usernames
            .iter()
            .map(|username| app.token(login(username, PASSWORD))),
    )
    .await;

    for answer in &answers {
        assert_eq!(answer.status, 200, "{answers:?}");
    }
    assert_eq!(app.db.login_failure_rows().await, Vec::<Vec<String>>::new());
}

/// Records `count` attempts of `username` from this tests' address, unsettled, at `failed_at`.
async fn leave_in_flight(app: &TestApp, username: &str, count: usize, failed_at: i64) {
    for _ in 0..count {
        app.db
            .insert_login_row(username, "127.0.0.1", failed_at, false)
            .await;
    }
}

async fn attempts_in_flight_delay_a_login_but_never_throttle_it(app: TestApp) {
    app.register_user("mia").await;
    leave_in_flight(&app, "mia", 5, now_millis()).await;

    let started = Instant::now();
    let (answer, ()) = tokio::join!(app.token(login("mia", PASSWORD)), async {
        sleep(Duration::from_millis(500)).await;
        // The five end, as a success of theirs would end them.
        app.db.delete_login_rows_of("mia").await;
    });
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the login waited for the attempts in flight"
    );
    assert_eq!(app.db.login_rows_of("mia").await, (0, 0));
}

async fn a_login_kept_waiting_too_long_answers_503(app: TestApp) {
    app.register_user("nina").await;
    leave_in_flight(&app, "nina", 5, now_millis()).await;

    let started = Instant::now();
    let answer = app.token(login("nina", PASSWORD)).await;
    answer.assert_code(503, "SERVICE_UNAVAILABLE");
    assert_eq!(answer.headers["retry-after"], "1");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < LOGIN_IN_FLIGHT_GRACE,
        "waited {waited:?}"
    );
    // It left nothing behind, and the attempts in flight are still only that.
    assert_eq!(app.db.login_rows_of("nina").await, (0, 5));
}

async fn an_attempt_left_unsettled_counts_as_a_failure_after_the_grace(app: TestApp) {
    app.register_user("olga").await;
    let grace = i64::try_from(LOGIN_IN_FLIGHT_GRACE.as_millis()).unwrap();
    // Five attempts that never settled (their clients went away), past the grace: failures,
    // 11 s old.
    leave_in_flight(&app, "olga", 5, now_millis() - grace - 1_000).await;
    let retry_after = assert_throttled(&app.token(login("olga", PASSWORD)).await, 900);
    assert!((885..=889).contains(&retry_after), "{retry_after}");
    assert_eq!(app.db.login_rows_of("olga").await, (0, 5));

    // Five still within the grace for another second: a login waits for them, and is
    // throttled once they count as failures.
    app.register_user("pete").await;
    leave_in_flight(&app, "pete", 5, now_millis() - grace + 1_000).await;
    let started = Instant::now();
    assert_throttled(&app.token(login("pete", PASSWORD)).await, 900);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(4),
        "waited {waited:?}"
    );
    assert_eq!(app.db.login_rows_of("pete").await, (0, 5));
}

async fn failures_are_recorded_without_the_password(app: TestApp) {
    app.register_user("heidi").await;
    let password = "Sec0nd!Guess-7f3a";
    app.token(login("Heidi", password))
        .await
        .assert_code(401, "INVALID_CREDENTIALS");

    let rows = app.db.login_failure_rows().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let [_id, username_key, address, failed_at, settled] = &rows[0][..] else {
        panic!("five columns: {rows:?}");
    };
    assert_eq!(settled, "1", "a settled failure");
    assert_eq!(username_key.len(), 64, "a hex SHA-256: {username_key}");
    assert!(username_key.bytes().all(|byte| byte.is_ascii_hexdigit()));
    assert_eq!(address, "127.0.0.1");
    let failed_at: i64 = failed_at.parse().unwrap();
    assert!((failed_at - now_millis()).abs() < 60_000);
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
