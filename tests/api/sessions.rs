//! Sessions: refresh tokens, refresh, logout and password change, and the access tokens of an
//! ended session refused at once by every endpoint.

use std::time::Duration;

use futures::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Answer, PASSWORD, TestApp, message_of, on_both_backends, sleep};

on_both_backends!(
    a_login_gives_a_refresh_token_stored_only_as_its_hash,
    a_refresh_gives_new_tokens_of_the_same_session_and_uses_the_old_one_up,
    refresh_refuses_missing_unknown_and_expired_tokens,
    ten_concurrent_refreshes_with_one_token_give_one_success_and_keep_the_session,
    logout_ends_the_session_at_once_for_every_endpoint,
    logout_everywhere_ends_every_session_of_the_user,
    logout_takes_an_empty_body_or_an_object_with_a_boolean,
    a_wrong_current_password_changes_nothing,
    a_password_change_ends_every_session_and_only_the_new_password_logs_in,
    password_change_checks_its_fields_in_the_contract_s_order,
    the_sweep_removes_ended_sessions_and_keeps_live_ones,
    of_two_concurrent_password_changes_one_wins,
    an_ended_session_is_refused_before_its_input_is_checked,
);

/// The session's tokens of a fresh user.
async fn session_of(app: &TestApp, username: &str) -> (String, String) {
    app.register_user(username).await;
    app.login_session(username).await
}

/// Asserts that `token` is refused by every /data endpoint with INVALID_TOKEN.
async fn assert_access_refused(app: &TestApp, token: &str) {
    let answers = [
        app.store(token, "k", "v").await,
        app.retrieve(token, "k").await,
        app.update(token, "k", "v").await,
        app.delete(token, "k").await,
        app.list(token, "").await,
    ];
    for answer in answers {
        answer.assert_error(401, "INVALID_TOKEN", "Invalid access token provided.");
    }
}

fn assert_refresh_refused(answer: &Answer) {
    answer.assert_error(
        401,
        "INVALID_REFRESH_TOKEN",
        "Invalid refresh token provided.",
    );
}

/// The access and refresh tokens of a successful login or refresh.
fn tokens_of(answer: &Answer) -> (String, String) {
    let data = &answer.body["data"];
    (
        data["access_token"].as_str().unwrap().to_owned(),
        data["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// The `sid` claim of an access token.
fn session_id_of(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().expect("sid is a string").to_owned()
}

async fn a_login_gives_a_refresh_token_stored_only_as_its_hash(app: TestApp) {
    app.register_user("holder").await;
    let answer = app
        .token(json!({"username": "holder", "password": PASSWORD}))
        .await;
    assert_eq!(answer.status, 200);
    let data = &answer.body["data"];
    assert_eq!(data["refresh_expires_in"], 2_592_000);
    let refresh_token = data["refresh_token"].as_str().unwrap();
    // 256 random bits, base64url without padding.
    assert!(refresh_token.len() >= 43, "{refresh_token}");

    // The database holds its SHA-256, not the token.
    let stored = app.db.refresh_token_hashes().await;
    assert_eq!(stored.len(), 1);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, refresh_token.as_bytes());
    assert_eq!(stored[0], digest.as_ref());
}

async fn a_refresh_gives_new_tokens_of_the_same_session_and_uses_the_old_one_up(app: TestApp) {
    let (access, refresh) = session_of(&app, "refresher").await;
    let answer = app.refresh(&refresh).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["status"], "success");
    assert_eq!(
        answer.body["message"],
        "Access token refreshed successfully."
    );
    assert_eq!(answer.body["data"]["token_type"], "Bearer");
    assert_eq!(answer.body["data"]["expires_in"], 3600);
    assert_eq!(answer.body["data"]["refresh_expires_in"], 2_592_000);
    let (new_access, new_refresh) = tokens_of(&answer);
    assert_ne!(new_refresh, refresh);
    assert_eq!(session_id_of(&new_access), session_id_of(&access));

    // The old one is used up; presented again at once, it is refused and the session lives.
    assert_refresh_refused(&app.refresh(&refresh).await);
    assert_eq!(app.store(&new_access, "k", "v").await.status, 200);
    assert_eq!(app.store(&access, "k2", "v").await.status, 200);
    assert_eq!(app.refresh(&new_refresh).await.status, 200);
}

async fn refresh_refuses_missing_unknown_and_expired_tokens(app: TestApp) {
    let missing = "Missing fields. Please provide a refresh_token.";
    for body in [
        json!({}),
        json!({"refresh_token": null}),
        json!({"refresh_token": "  "}),
        json!({"refresh_token": 42}),
    ] {
        app.request(Method::POST, "/auth/refresh", None, Some(body))
            .await
            .assert_error(400, "MISSING_FIELDS", missing);
    }
    app.send_raw(Method::POST, "/auth/refresh", None, "[1]")
        .await
        .assert_code(400, "INVALID_REQUEST");
    assert_refresh_refused(&app.refresh("not-a-token-we-issued").await);

    let (access, _) = session_of(&app, "unknown").await;
    // A token is not a refresh token.
    assert_refresh_refused(&app.refresh(&access).await);
}

async fn ten_concurrent_refreshes_with_one_token_give_one_success_and_keep_the_session(
    app: TestApp,
) {
    let (access, refresh) = session_of(&app, "tabs").await;
    let answers = join_all((0..10).map(|_| app.refresh(&refresh))).await;
    let winners: Vec<&Answer> = answers
        .iter()
        .filter(|answer| answer.status == 200)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for answer in answers.iter().filter(|answer| answer.status != 200) {
        assert_refresh_refused(answer);
    }
    let (new_access, new_refresh) = tokens_of(winners[0]);
    assert_eq!(app.store(&access, "a", "v").await.status, 200);
    assert_eq!(app.store(&new_access, "b", "v").await.status, 200);
    assert_eq!(app.refresh(&new_refresh).await.status, 200);
}

async fn logout_ends_the_session_at_once_for_every_endpoint(app: TestApp) {
    let (access, refresh) = session_of(&app, "leaver").await;
    let (other_access, other_refresh) = app.login_session("leaver").await;
    assert_eq!(app.store(&access, "kept", "v").await.status, 200);

    let answer = app.logout(&access, None).await;
    answer.assert_success(json!({"status": "success", "message": "Logged out successfully."}));

    assert_access_refused(&app, &access).await;
    assert_refresh_refused(&app.refresh(&refresh).await);
    app.logout(&access, None)
        .await
        .assert_code(401, "INVALID_TOKEN");
    app.change_password(
        &access,
        json!({"current_password": PASSWORD, "new_password": "N3w!Passw0rd"}),
    )
    .await
    .assert_code(401, "INVALID_TOKEN");
    // The user's other session is untouched, and the entry is still there.
    assert_eq!(app.retrieve(&other_access, "kept").await.status, 200);
    assert_eq!(app.refresh(&other_refresh).await.status, 200);
}

async fn logout_everywhere_ends_every_session_of_the_user(app: TestApp) {
    let (first, first_refresh) = session_of(&app, "everywhere").await;
    let (second, second_refresh) = app.login_session("everywhere").await;
    let (bystander, _) = session_of(&app, "bystander").await;

    let answer = app.logout(&first, Some(json!({"everywhere": true}))).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);

    assert_access_refused(&app, &first).await;
    assert_access_refused(&app, &second).await;
    assert_refresh_refused(&app.refresh(&first_refresh).await);
    assert_refresh_refused(&app.refresh(&second_refresh).await);
    assert_eq!(app.store(&bystander, "k", "v").await.status, 200);
}

async fn logout_takes_an_empty_body_or_an_object_with_a_boolean(app: TestApp) {
    app.register_user("bodies").await;
    for body in [
        "",
        "  \n",
        "{}",
        r#"{"everywhere": null}"#,
        r#"{"everywhere": false}"#,
    ] {
        let (access, _) = app.login_session("bodies").await;
        let (other, _) = app.login_session("bodies").await;
        let answer = app
            .send_raw(Method::POST, "/auth/logout", Some(&access), body)
            .await;
        assert_eq!(answer.status, 200, "{body:?}: {:?}", answer.body);
        assert_eq!(app.store(&access, "k", "v").await.status, 401, "{body:?}");
        assert_eq!(
            app.retrieve(&other, "none").await.status,
            404,
            "{body:?} ends only the caller's session"
        );
    }
    let (access, _) = app.login_session("bodies").await;
    for body in [
        r#"{"everywhere": "yes"}"#,
        r#"{"everywhere": 1}"#,
        "[1]",
        "true",
        "nonsense",
    ] {
        app.send_raw(Method::POST, "/auth/logout", Some(&access), body)
            .await
            .assert_code(400, "INVALID_REQUEST");
    }
    // The body is not read before the token is checked.
    app.send_raw(Method::POST, "/auth/logout", None, "nonsense")
        .await
        .assert_code(401, "INVALID_TOKEN");
    assert_eq!(app.retrieve(&access, "none").await.status, 404);
}

async fn a_wrong_current_password_changes_nothing(app: TestApp) {
    let (access, refresh) = session_of(&app, "guesser").await;
    app.change_password(
        &access,
        json!({"current_password": "Wr0ng!Passw0rd", "new_password": "N3w!Passw0rd"}),
    )
    .await
    .assert_error(
        401,
        "INVALID_CREDENTIALS",
        "Invalid credentials. The provided username or password is incorrect.",
    );
    assert_eq!(app.retrieve(&access, "none").await.status, 404);
    assert_eq!(app.refresh(&refresh).await.status, 200);
    let answer = app
        .token(json!({"username": "guesser", "password": PASSWORD}))
        .await;
    assert_eq!(answer.status, 200);
}

async fn a_password_change_ends_every_session_and_only_the_new_password_logs_in(app: TestApp) {
    const NEW_PASSWORD: &str = "N3w!Passw0rd";
    let (access, refresh) = session_of(&app, "changer").await;
    let (other, other_refresh) = app.login_session("changer").await;
    let hash_before = app.db.users_named("changer").await[0].password_hash.clone();

    let answer = app
        .change_password(
            &access,
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    answer
        .assert_success(json!({"status": "success", "message": "Password changed successfully."}));

    assert_access_refused(&app, &access).await;
    assert_access_refused(&app, &other).await;
    assert_refresh_refused(&app.refresh(&refresh).await);
    assert_refresh_refused(&app.refresh(&other_refresh).await);
    let hash_after = app.db.users_named("changer").await[0].password_hash.clone();
    assert_ne!(hash_after, hash_before);
    assert!(hash_after.starts_with("$argon2id$"));
    app.token(json!({"username": "changer", "password": PASSWORD}))
        .await
        .assert_code(401, "INVALID_CREDENTIALS");
    assert_eq!(
        app.token(json!({"username": "changer", "password": NEW_PASSWORD}))
            .await
            .status,
        200
    );
}

async fn password_change_checks_its_fields_in_the_contract_s_order(app: TestApp) {
    let (access, _) = session_of(&app, "orderly").await;
    let missing = "Missing fields. Please provide both current_password and new_password.";
    for body in [
        json!({}),
        json!({"current_password": PASSWORD}),
        json!({"new_password": "N3w!Passw0rd"}),
        json!({"current_password": null, "new_password": "N3w!Passw0rd"}),
        json!({"current_password": " ", "new_password": "N3w!Passw0rd"}),
        json!({"current_password": 12345678, "new_password": "N3w!Passw0rd"}),
        json!({"current_password": "Wr0ng!Passw0rd", "new_password": ["x"]}),
    ] {
        app.change_password(&access, body.clone())
            .await
            .assert_error(400, "MISSING_FIELDS", missing);
    }
    // A new password that breaks the rules is refused before the current one is checked.
    app.change_password(
        &access,
        json!({"current_password": "Wr0ng!Passw0rd", "new_password": "short"}),
    )
    .await
    .assert_code(400, "INVALID_PASSWORD");
    app.send_raw(Method::POST, "/auth/password", Some(&access), "[1]")
        .await
        .assert_code(400, "INVALID_REQUEST");
    assert_eq!(app.retrieve(&access, "none").await.status, 404);
}

async fn of_two_concurrent_password_changes_one_wins(app: TestApp) {
    let (first, _) = session_of(&app, "racing").await;
    let (second, _) = app.login_session("racing").await;
    let changes = [(&first, "F1rst!Passw0rd"), (&second, "S3cond!Passw0rd")].map(|(token, new)| {
        app.change_password(
            token,
            json!({"current_password": PASSWORD, "new_password": new}),
        )
    });
    let answers = join_all(changes).await;

    // The second to commit finds its current password (or its session) gone: 401 either way,
    // and exactly one new password logs in.
    let winners: Vec<usize> = (0..2).filter(|&i| answers[i].status == 200).collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    assert_eq!(answers[1 - winners[0]].status, 401, "{answers:?}");
    let new_passwords = ["F1rst!Passw0rd", "S3cond!Passw0rd"];
    let logs_in =
        |password: &'static str| app.token(json!({"username": "racing", "password": password}));
    assert_eq!(logs_in(new_passwords[winners[0]]).await.status, 200);
    assert_eq!(logs_in(new_passwords[1 - winners[0]]).await.status, 401);
}

/// A request whose input (path key, query or body) is invalid: its method and path, its body
/// (sent as it is, with a JSON content type; `None`: no body), and the code of the answer a
/// live session gets.
struct BadInput {
    line: String,
    body: Option<String>,
    code: &'static str,
}

impl BadInput {
    fn new(line: &str, body: Option<&str>, code: &'static str) -> BadInput {
        BadInput {
            line: line.to_owned(),
            body: body.map(str::to_owned),
            code,
        }
    }

    async fn send(&self, app: &TestApp, token: &str) -> Answer {
        let (method, path) = self.line.split_once(' ').unwrap();
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        match &self.body {
            Some(body) => app.send_raw(method, path, Some(token), body.clone()).await,
            None => app.request(method, path, Some(token), None).await,
        }
    }

    /// The error body a live session gets.
    fn refusal(&self) -> Value {
        let message = match self.code {
            "MISSING_FIELDS" => {
                "Missing fields. Please provide both current_password and new_password."
            }
            code => message_of(code),
        };
        json!({"status": "error", "code": self.code, "message": message})
    }

    /// The request line, shortened.
    fn label(&self) -> String {
        let body = self.body.as_deref().unwrap_or("");
        format!("{:.50} {:.70}", self.line, body)
    }
}

/// One request of each kind of invalid input, on every endpoint that needs a token.
fn bad_inputs() -> Vec<BadInput> {
    let long_key = "a".repeat(256);
    let oversized = format!(r#"{{"keyN": "k", "valueN": "{}"}}"#, "x".repeat(1 << 20));
    vec![
        BadInput::new("POST /data/store", Some(""), "INVALID_REQUEST"),
        BadInput::new("POST /data/store", Some("{not json"), "INVALID_REQUEST"),
        BadInput::new("POST /data/store", Some(&oversized), "PAYLOAD_TOO_LARGE"),
        BadInput::new(
            "POST /data/store",
            Some(r#"{"valueN": "v"}"#),
            "INVALID_KEY",
        ),
        BadInput::new(
            "POST /data/store",
            Some(r#"{"keyN": "k"}"#),
            "INVALID_VALUE",
        ),
        BadInput::new(
            "POST /data/store",
            Some(r#"{"keyN": "k", "valueN": "v", "ttl_seconds": 0}"#),
            "INVALID_TTL",
        ),
        BadInput::new("GET /data/retrieve/%01", None, "INVALID_KEY"),
        BadInput::new("GET /data/retrieve/%FF", None, "INVALID_KEY"),
        BadInput::new(
            &format!("GET /data/retrieve/{long_key}"),
            None,
            "INVALID_KEY",
        ),
        BadInput::new(
            "PUT /data/update/%20",
            Some(r#"{"valueN": "v"}"#),
            "INVALID_KEY",
        ),
        BadInput::new("PUT /data/update/k", Some("[1]"), "INVALID_REQUEST"),
        BadInput::new(
            "PUT /data/update/k",
            Some(r#"{"valueN": ""}"#),
            "INVALID_VALUE",
        ),
        BadInput::new(
            "PUT /data/update/k",
            Some(r#"{"valueN": "v", "ttl_seconds": 1.5}"#),
            "INVALID_TTL",
        ),
        BadInput::new(
            &format!("DELETE /data/delete/{long_key}"),
            None,
            "INVALID_KEY",
        ),
        BadInput::new("GET /data/list?limit=0", None, "INVALID_QUERY"),
        BadInput::new("GET /data/list?prefix=%01", None, "INVALID_QUERY"),
        BadInput::new("GET /data/list?cursor=forged", None, "INVALID_QUERY"),
        BadInput::new("GET /data/list?limit=1&limit=1", None, "INVALID_QUERY"),
        BadInput::new("POST /auth/logout", Some("nonsense"), "INVALID_REQUEST"),
        BadInput::new(
            "POST /auth/logout",
            Some(r#"{"everywhere": "yes"}"#),
            "INVALID_REQUEST",
        ),
        BadInput::new("POST /auth/password", Some("{}"), "MISSING_FIELDS"),
        BadInput::new("POST /auth/password", Some("[1]"), "INVALID_REQUEST"),
        BadInput::new(
            "POST /auth/password",
            Some(r#"{"current_password": "Wr0ng!Passw0rd", "new_password": "short"}"#),
            "INVALID_PASSWORD",
        ),
    ]
}

async fn an_ended_session_is_refused_before_its_input_is_checked(app: TestApp) {
    let (access, _) = session_of(&app, "closing").await;
    let requests = bad_inputs();
    // With the session alive, each request is refused for its input, and none ends it.
    for request in &requests {
        let answer = request.send(&app, &access).await;
        let status = if request.code == "PAYLOAD_TOO_LARGE" {
            413
        } else {
            400
        };
        assert_eq!(
            (answer.status.as_u16(), &answer.body),
            (status, &request.refusal()),
            "{}",
            request.label()
        );
        assert!(!answer.headers.contains_key("www-authenticate"));
    }

    assert_eq!(app.logout(&access, None).await.status, 200);
    // Once it has ended, the token is what is wrong with each of them.
    let invalid_token = json!({"status": "error", "code": "INVALID_TOKEN",
                               "message": "Invalid access token provided."});
    let mut wrong = Vec::new();
    for request in &requests {
        let answer = request.send(&app, &access).await;
        let scheme = answer.headers.get("www-authenticate");
        if answer.status != 401
            || answer.body != invalid_token
            || scheme.is_none_or(|scheme| scheme != "Bearer")
        {
            wrong.push(format!(
                "{}: {} {} {scheme:?}",
                request.label(),
                answer.status,
                answer.body["code"]
            ));
        }
    }
    assert!(wrong.is_empty(), "not INVALID_TOKEN: {wrong:#?}");
}

async fn the_sweep_removes_ended_sessions_and_keeps_live_ones(app: TestApp) {
    let user_id = app.register_user("tidy").await;
    let (ended, _) = app.login_session("tidy").await;
    let (live, live_refresh) = app.login_session("tidy").await;
    let (_, refreshed) = tokens_of(&app.refresh(&live_refresh).await);
    assert_eq!(app.logout(&ended, None).await.status, 200);
    assert_eq!(app.db.session_rows(user_id).await, (2, 3));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let report =
        kv_shared::sweep::sweep_expired(&app.state.store, deadline, Duration::from_secs(900))
            .await
            .expect("the sweep runs");

    // The ended session and its token; the live one keeps its used and its new token until
    // they expire.
    assert_eq!(report.sessions_removed, 1);
    assert_eq!(app.db.session_rows(user_id).await, (1, 2));
    assert_access_refused(&app, &ended).await;
    assert_eq!(app.retrieve(&live, "none").await.status, 404);
    assert_eq!(app.refresh(&refreshed).await.status, 200);
}

/// Sessions whose used refresh tokens have a grace period of one second.
mod short_grace {
    use super::*;

    on_both_backends!(
        settings = crate::helpers::TestSettings {
            refresh_reuse_grace_seconds: 1,
            ..crate::helpers::TestSettings::default()
        } =>
        a_used_refresh_token_presented_again_ends_its_session,
    );

    async fn a_used_refresh_token_presented_again_ends_its_session(app: TestApp) {
        let (access, refresh) = session_of(&app, "thief").await;
        let (other_access, _) = app.login_session("thief").await;
        let (new_access, new_refresh) = tokens_of(&app.refresh(&refresh).await);

        sleep(Duration::from_millis(1100)).await;
        assert_refresh_refused(&app.refresh(&refresh).await);

        // The whole session ended: its newest refresh token and every access token of it.
        assert_refresh_refused(&app.refresh(&new_refresh).await);
        assert_access_refused(&app, &access).await;
        assert_access_refused(&app, &new_access).await;
        // Not the user's other session.
        assert_eq!(app.retrieve(&other_access, "none").await.status, 404);
    }
}

/// Sessions whose refresh tokens live one second.
mod short_lived {
    use super::*;

    on_both_backends!(
        settings = crate::helpers::TestSettings {
            refresh_lifetime_seconds: 1,
            ..crate::helpers::TestSettings::default()
        } =>
        an_expired_refresh_token_is_refused,
    );

    async fn an_expired_refresh_token_is_refused(app: TestApp) {
        let (access, refresh) = session_of(&app, "sleeper").await;
        sleep(Duration::from_millis(2100)).await;
        assert_refresh_refused(&app.refresh(&refresh).await);
        // The access token lives its own lifetime.
        assert_eq!(app.retrieve(&access, "none").await.status, 404);
    }
}
