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

/// One Argon2id verification with the parameters of every stored hash: 19 MiB times 2 passes,
/// as the pool counts cost.
const ONE_VERIFICATION: u64 = 19 * 1024 * 2;

/// What answering `send` cost the app's hashing pool: Argon2 runs, their cost, and the bytes
/// of password they were given.
async fn hashing_cost<F: std::future::Future<Output = crate::helpers::Answer>>(
    app: &TestApp,
    send: F,
) -> (crate::helpers::Answer, (u64, u64, u64)) {
    let before = app.state.passwords.stats();
    let answer = send.await;
    let after = app.state.passwords.stats();
    let cost = (
        after.hashes - before.hashes,
        after.cost - before.cost,
        after.password_bytes - before.password_bytes,
    );
    (answer, cost)
}

/// Without the decoy verification an unknown user would answer in a fraction of a
/// millisecond, against tens of milliseconds of Argon2 for a wrong password. The proof is
/// counted, not timed: each refusal runs exactly one Argon2 verification of the same cost.
/// The times are compared too, but only their medians over interleaved attempts (so that a
/// busy spell of the machine slows both alike), and with bounds far looser than the gap.
#[tokio::test]
async fn unknown_users_cost_about_what_wrong_passwords_cost() {
    // Login throttling would end the measurement after five failures.
    let settings = TestSettings {
        login_max_failures: 1000,
        ..TestSettings::default()
    };
    let app = spawn_app_with(Backend::Sqlite, settings).await.unwrap();
    app.register_user("timed").await;
    let token = app.login("timed").await;
    let wrong_password = json!({"username": "timed", "password": "Wr0ng!Password"});
    let unknown_user = json!({"username": "nobody_here", "password": "Wr0ng!Password"});
    let overlong = json!({"username": "timed", "password": format!("Wr0ng!{}", "x".repeat(200))});
    let wrong_current =
        json!({"current_password": "Wr0ng!Password", "new_password": "N3w!Passw0rd"});

    // No warm-up: the decoy is a constant, so even its first use is one verification.
    let mut times: [Vec<Duration>; 4] = Default::default();
    for _ in 0..7 {
        for (index, times) in times.iter_mut().enumerate() {
            let started = Instant::now();
            let (answer, cost) = match index {
                0 => hashing_cost(&app, app.token(wrong_password.clone())).await,
                1 => hashing_cost(&app, app.token(unknown_user.clone())).await,
                2 => hashing_cost(&app, app.token(overlong.clone())).await,
                _ => hashing_cost(&app, app.change_password(&token, wrong_current.clone())).await,
            };
            times.push(started.elapsed());
            answer.assert_code(401, "INVALID_CREDENTIALS");
            assert_eq!((cost.0, cost.1), (1, ONE_VERIFICATION), "case {index}");
        }
    }
    let [wrong, unknown, overlong, wrong_current] = times.map(|mut times| {
        times.sort();
        times[times.len() / 2]
    });
    for (case, time) in [
        ("unknown user", unknown),
        ("overlong password", overlong),
        ("wrong current password", wrong_current),
    ] {
        let ratio = time.as_secs_f64() / wrong.as_secs_f64();
        assert!(
            (0.25..4.0).contains(&ratio),
            "{case} {time:?} vs wrong password {wrong:?}"
        );
    }
}

/// Logins with a throttle of three failures per username.
mod overlong {
    use super::*;

    on_both_backends!(
        settings = crate::helpers::TestSettings {
            login_max_failures: 3,
            ..crate::helpers::TestSettings::default()
        } =>
        overlong_passwords_are_wrong_passwords_and_never_hashed
    );

    /// A login password longer than register allows is refused as a wrong one (same answer, one
    /// verification of the same cost, a failure for throttling), and is never hashed: the pool is
    /// given no more than a short stand-in. Likewise a password change's current password.
    async fn overlong_passwords_are_wrong_passwords_and_never_hashed(app: TestApp) {
        app.register_user("target").await;
        let just_over = format!("{PASSWORD}{}", "x".repeat(128 - PASSWORD.len() + 1));
        assert_eq!(just_over.chars().count(), 129);
        // Near the 1 MiB body limit, in characters of three bytes.
        let huge = "\u{20ac}".repeat(340_000);
        for (attempt, password) in [just_over.as_str(), huge.as_str()].into_iter().enumerate() {
            let (answer, (hashes, cost, bytes)) = hashing_cost(
                &app,
                app.token(json!({"username": "target", "password": password})),
            )
            .await;
            answer.assert_code(401, "INVALID_CREDENTIALS");
            assert_eq!((hashes, cost), (1, ONE_VERIFICATION));
            assert!(bytes < 128, "{bytes} bytes of password hashed");
            // A failure, as a wrong password is.
            assert_eq!(
                app.db.login_rows_of("target").await,
                (attempt as i64 + 1, 0)
            );
        }
        // The same for a user who does not exist.
        let (answer, (hashes, _, bytes)) = hashing_cost(
            &app,
            app.token(json!({"username": "no_such_user", "password": huge})),
        )
        .await;
        answer.assert_code(401, "INVALID_CREDENTIALS");
        assert_eq!(hashes, 1);
        assert!(bytes < 128, "{bytes} bytes of password hashed");
        // The third failure throttles, as three wrong passwords would: no hash at all now.
        app.token(json!({"username": "target", "password": "Wr0ng!Password"}))
            .await
            .assert_code(401, "INVALID_CREDENTIALS");
        let (answer, (hashes, _, _)) = hashing_cost(
            &app,
            app.token(json!({"username": "target", "password": huge})),
        )
        .await;
        assert_eq!(answer.status, 429, "{:?}", answer.body);
        answer.assert_code(429, "TOO_MANY_ATTEMPTS");
        assert_eq!(hashes, 0);

        // A password change's current password: the same refusal, a failure of the username.
        app.register_user("changer").await;
        let token = app.login("changer").await;
        let (answer, (hashes, cost, bytes)) = hashing_cost(
            &app,
            app.change_password(
                &token,
                json!({"current_password": huge, "new_password": "N3w!Passw0rd"}),
            ),
        )
        .await;
        answer.assert_code(401, "INVALID_CREDENTIALS");
        assert_eq!((hashes, cost), (1, ONE_VERIFICATION));
        assert!(bytes < 128, "{bytes} bytes of password hashed");
        assert_eq!(app.db.login_rows_of("changer").await, (1, 0));
        // And the right password still works.
        app.change_password(
            &token,
            json!({"current_password": PASSWORD, "new_password": "N3w!Passw0rd"}),
        )
        .await
        .assert_success(json!({"status": "success", "message": "Password changed successfully."}));
    }
}

/// Waits (at most a minute) until `done` holds of the hashing pool's figures.
async fn until_stats(
    app: &TestApp,
    what: &str,
    done: impl Fn(&kv_shared::auth::PasswordStats) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = app.state.passwords.stats();
        if done(&stats) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {stats:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An app whose hashing queue holds two jobs.
mod full_queue {
    use super::*;

    on_both_backends!(
        settings = crate::helpers::TestSettings {
            password_queue_max: Some(2),
            ..crate::helpers::TestSettings::default()
        } =>
        a_full_hashing_queue_answers_503_with_retry_after,
        an_attempt_the_queue_refused_is_withdrawn,
    );

    /// An attempt let through by throttling whose hash the queue then refused (it filled
    /// between the handler's look and its job) is withdrawn: its row is gone, so it counts
    /// neither as a failure nor as in flight.
    async fn an_attempt_the_queue_refused_is_withdrawn(app: TestApp) {
        use kv_shared::store::{LoginAttempt, LoginLimits, login_username_key, now_millis};

        let limits = LoginLimits {
            per_username: 5,
            per_address: 100,
            window: Duration::from_secs(900),
        };
        let attempt = app
            .state
            .store
            .begin_login_attempt(
                &login_username_key("refused"),
                "192.0.2.1",
                now_millis(),
                &limits,
            )
            .await
            .unwrap();
        let LoginAttempt::Allowed(attempt) = attempt else {
            panic!("{attempt:?}");
        };
        assert_eq!(app.db.login_rows_of("refused").await, (0, 1));
        app.state
            .store
            .withdraw_login_attempt(&attempt)
            .await
            .unwrap();
        assert_eq!(app.db.login_rows_of("refused").await, (0, 0));
    }

    /// With the workers held, two logins fill a queue of two; every endpoint that hashes then
    /// answers 503 SERVICE_UNAVAILABLE with `Retry-After` at once, recording nothing, and the two
    /// waiting logins are answered once the workers go on.
    async fn a_full_hashing_queue_answers_503_with_retry_after(app: TestApp) {
        app.register_user("queued").await;
        let token = app.login("queued").await;
        let held = app.state.passwords.hold_workers();
        let waiting: Vec<_> = ["Wr0ng!Password", PASSWORD]
            .into_iter()
            .map(|password| {
                let (client, address) = (app.client.clone(), app.address.clone());
                tokio::spawn(async move {
                    client
                        .post(format!("{address}/auth/token"))
                        .json(&json!({"username": "queued", "password": password}))
                        .send()
                        .await
                        .map(|response| response.status().as_u16())
                })
            })
            .collect();
        until_stats(&app, "a full queue", |stats| stats.queued == 2).await;

        let refused = [
            app.token(json!({"username": "queued", "password": PASSWORD}))
                .await,
            app.token(json!({"username": "someone_else", "password": PASSWORD}))
                .await,
            app.register(registration("newcomer")).await,
            app.change_password(
                &token,
                json!({"current_password": PASSWORD, "new_password": "N3w!Passw0rd"}),
            )
            .await,
        ];
        for answer in &refused {
            answer.assert_code(503, "SERVICE_UNAVAILABLE");
            assert_eq!(
                answer
                    .headers
                    .get("retry-after")
                    .map(|value| value.as_bytes()),
                Some(&b"1"[..]),
                "{answer:?}"
            );
        }
        let stats = app.state.passwords.stats();
        assert_eq!((stats.queued, stats.hashes), (2, 2), "{stats:?}"); // the two of `login` and register_user
        // Nothing recorded: no failure, nothing in flight beyond the two queued logins.
        assert_eq!(app.db.login_rows_of("someone_else").await, (0, 0));
        assert_eq!(app.db.login_rows_of("queued").await, (0, 2));
        assert!(app.db.users_named("newcomer").await.is_empty());

        drop(held);
        let mut statuses = Vec::new();
        for login in waiting {
            statuses.push(login.await.unwrap().expect("an answer"));
        }
        statuses.sort();
        assert_eq!(statuses, [200, 401]);
        assert_eq!(app.state.passwords.stats().max_queued, 2);
    }
}

/// A burst of 200 logins with passwords of 1 MiB or of the register limit, whose clients go
/// away while their hashes wait, while the workers are busy (held): the queue never holds
/// more than its bound, the logins past it are refused at once, the abandoned ones are never
/// hashed, and a real login behind them is answered, its own the only hash run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_logins_leave_the_queue_bounded_and_cost_no_hashing() {
    const CLIENTS: usize = 200;
    let settings = TestSettings {
        login_max_failures_per_address: 10 * CLIENTS as u32,
        ..TestSettings::default()
    };
    let app = spawn_app_with(Backend::Sqlite, settings).await.unwrap();
    app.register_user("real_user").await;
    let queue_max = app.state.passwords.stats().queue_max;
    assert_eq!(
        queue_max,
        app.state.passwords.stats().workers * kv_shared::auth::DEFAULT_QUEUE_PER_WORKER
    );
    assert!(queue_max < CLIENTS, "the burst must overflow the queue");

    let held = app.state.passwords.hold_workers();
    let before = app.state.passwords.stats();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let huge = "A".repeat(1_000_000);
    let limit_sized = format!("Aa1!{}", "x".repeat(124));
    let burst: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let password = if client % 2 == 0 { &huge } else { &limit_sized };
            let body = json!({"username": format!("ghost_{client}"), "password": password});
            let (http, address, answered) =
                (app.client.clone(), app.address.clone(), answered.clone());
            tokio::spawn(async move {
                let answer = http
                    .post(format!("{address}/auth/token"))
                    .json(&body)
                    .send()
                    .await
                    .expect("an answer");
                assert_eq!(answer.status(), 503, "only refusals come back");
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            })
        })
        .collect();
    // Every request has arrived: each is either refused already or waiting in the queue.
    until_stats(&app, "every request in", |stats| {
        stats.queued + answered.load(std::sync::atomic::Ordering::SeqCst) == CLIENTS
    })
    .await;
    let stats = app.state.passwords.stats();
    assert_eq!(stats.queued, queue_max, "{stats:?}");
    assert!(stats.max_queued <= queue_max, "{stats:?}");
    // The clients go away.
    for client in burst {
        client.abort();
        let _ = client.await;
    }
    until_stats(&app, "every waiting job abandoned", |stats| {
        stats.abandoned == stats.queued
    })
    .await;

    // A real login meanwhile: it takes the place of an abandoned job, and is answered.
    let login = {
        let (http, address) = (app.client.clone(), app.address.clone());
        tokio::spawn(async move {
            http.post(format!("{address}/auth/token"))
                .json(&json!({"username": "real_user", "password": PASSWORD}))
                .send()
                .await
                .expect("an answer")
                .status()
        })
    };
    until_stats(&app, "the real login queued", |stats| {
        stats.queued - stats.abandoned == 1
    })
    .await;
    drop(held);
    assert_eq!(login.await.unwrap(), 200);

    let after = app.state.passwords.stats();
    assert!(after.max_queued <= queue_max, "{after:?}");
    // One hash: the real login's. None of the burst's, and none of its megabytes.
    assert_eq!(after.hashes - before.hashes, 1, "{after:?}");
    assert_eq!(
        after.password_bytes - before.password_bytes,
        PASSWORD.len() as u64
    );
    assert_eq!(
        after.skipped - before.skipped,
        queue_max as u64,
        "{after:?}"
    );
    assert_eq!(after.queued, 0);
}

/// The same burst with the workers running, each client leaving after 1.5 s whatever
/// happened: the queue stays within its bound, the megabyte passwords are never hashed, and a
/// real login sent meanwhile (retrying after `Retry-After` when refused, as a client should) is
/// answered. How many of the burst's jobs were run before their clients left depends on the
/// machine's speed, so it is reported, not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_login_is_answered_during_a_burst_of_abandoned_logins() {
    const CLIENTS: usize = 200;
    let settings = TestSettings {
        login_max_failures_per_address: 10 * CLIENTS as u32,
        ..TestSettings::default()
    };
    let app = spawn_app_with(Backend::Sqlite, settings).await.unwrap();
    app.register_user("real_user").await;
    let before = app.state.passwords.stats();
    let huge = "A".repeat(1_000_000);
    let limit_sized = format!("Aa1!{}", "x".repeat(124));
    let burst: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let password = if client % 2 == 0 { &huge } else { &limit_sized };
            let body = json!({"username": format!("ghost_{client}"), "password": password});
            let (http, address) = (app.client.clone(), app.address.clone());
            tokio::spawn(async move {
                let send = http
                    .post(format!("{address}/auth/token"))
                    .json(&body)
                    .send();
                match tokio::time::timeout(Duration::from_millis(1500), send).await {
                    Ok(answer) => Some(answer.expect("an answer").status().as_u16()),
                    Err(_) => None,
                }
            })
        })
        .collect();

    let mut tries = 0;
    let status = loop {
        tries += 1;
        let answer = app
            .token(json!({"username": "real_user", "password": PASSWORD}))
            .await;
        if answer.status != 503 || tries == 30 {
            break answer.status;
        }
        answer.assert_code(503, "SERVICE_UNAVAILABLE");
        let retry_after: u64 = answer.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(retry_after)).await;
    };
    assert_eq!(status, 200, "after {tries} tries");

    let mut outcomes = std::collections::BTreeMap::new();
    for client in burst {
        *outcomes.entry(client.await.unwrap()).or_insert(0) += 1;
    }
    until_stats(&app, "an empty queue", |stats| stats.queued == 0).await;
    let after = app.state.passwords.stats();
    assert!(after.max_queued <= after.queue_max, "{after:?}");
    let hashes = after.hashes - before.hashes;
    // Every input hashed was at most 128 characters: none of the megabytes.
    assert!(
        after.password_bytes - before.password_bytes <= hashes * 512,
        "{after:?}"
    );
    eprintln!(
        "burst outcomes {outcomes:?}; {hashes} hashes run, {} jobs skipped, {} refused, \
         at most {} of {} queued; the real login answered on try {tries}",
        after.skipped - before.skipped,
        after.rejected - before.rejected,
        after.max_queued,
        after.queue_max,
    );
}
