//! What an attacker could learn or abuse: leaked internals, and login timing.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::helpers::{
    Backend, PASSWORD, TestApp, TestSettings, on_both_backends, registration, spawn_app_with,
};

on_both_backends!(no_answer_leaks_hashes_sql_or_driver_text);

/// Words that would betray a password hash, a query or the database driver.
const INTERNALS: [&str; 12] = [
    "$argon2",
    "argon2id",
    "select ",
    "insert ",
    "update entries",
    "sqlx",
    "mysql",
    "mariadb",
    "sqlite",
    "duplicate",
    "constraint",
    "panicked",
];

fn assert_no_internals(body: &serde_json::Value) {
    let text = body.to_string().to_lowercase();
    for word in INTERNALS {
        assert!(!text.contains(word), "{word:?} leaked in {text}");
    }
}

async fn no_answer_leaks_hashes_sql_or_driver_text(app: TestApp) {
    let (_, token) = app.user_with_token("leaky").await;
    let mut answers = vec![
        app.register(registration("leaky")).await,
        app.register(registration("LEAKY")).await,
        app.token(json!({"username": "leaky", "password": "Wr0ng!Password"}))
            .await,
        app.store(&token, "k", "v").await,
        app.store(&token, "k", "v").await,
        app.retrieve(&token, "k").await,
        app.retrieve(&token, "absent").await,
        app.request(Method::GET, "/data/retrieve/%FF", Some(&token), None)
            .await,
        app.send_raw(Method::POST, "/data/store", Some(&token), "{\"keyN\": ")
            .await,
    ];
    // And with the database gone.
    app.state.store.close().await;
    answers.push(app.retrieve(&token, "k").await);
    answers.push(app.register(registration("late")).await);
    answers.push(
        app.token(json!({"username": "leaky", "password": PASSWORD}))
            .await,
    );
    for answer in &answers {
        assert_no_internals(&answer.body);
    }
    assert_eq!(answers.last().unwrap().status, 503);
}

/// The median time `/auth/token` takes to answer `body`.
async fn median_login_time(app: &TestApp, body: &serde_json::Value) -> Duration {
    let mut times = Vec::new();
    for _ in 0..9 {
        let started = Instant::now();
        let answer = app.token(body.clone()).await;
        times.push(started.elapsed());
        answer.assert_code(401, "INVALID_CREDENTIALS");
    }
    times.sort();
    times[times.len() / 2]
}

/// Without the decoy verification an unknown user would answer in a fraction of a
/// millisecond, against tens of milliseconds of Argon2 for a wrong password: the bounds are
/// loose enough for a busy machine and far too tight for that gap.
#[tokio::test]
async fn unknown_users_cost_about_what_wrong_passwords_cost() {
    // Login throttling would end the measurement after five failures.
    let settings = TestSettings {
        login_max_failures: 1000,
        ..TestSettings::default()
    };
    let app = spawn_app_with(Backend::Sqlite, settings).await.unwrap();
    app.register_user("timed").await;
    let wrong_password = json!({"username": "timed", "password": "Wr0ng!Password"});
    let unknown_user = json!({"username": "nobody_here", "password": "Wr0ng!Password"});
    // Warm-up: the decoy hash is made on first use.
    median_login_time(&app, &unknown_user).await;

    let wrong = median_login_time(&app, &wrong_password).await;
    let unknown = median_login_time(&app, &unknown_user).await;
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "unknown user {unknown:?} vs wrong password {wrong:?}"
    );

    // A wrong current password on /auth/password costs a verification too: it tells nothing
    // a wrong login would not.
    let token = app.login("timed").await;
    let mut times = Vec::new();
    for _ in 0..9 {
        let started = Instant::now();
        let answer = app
            .change_password(
                &token,
                json!({"current_password": "Wr0ng!Password", "new_password": "N3w!Passw0rd"}),
            )
            .await;
        times.push(started.elapsed());
        answer.assert_code(401, "INVALID_CREDENTIALS");
    }
    times.sort();
    let password_change = times[times.len() / 2];
    let ratio = password_change.as_secs_f64() / wrong.as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "wrong current password {password_change:?} vs wrong login password {wrong:?}"
    );
}
