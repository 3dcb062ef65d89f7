//! `POST /auth/register`.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, on_both_backends, registration};

on_both_backends!(
    registers_a_user_and_stores_only_an_argon2id_hash,
    age_is_optional,
    missing_fields_are_listed_in_the_contracts_order,
    invalid_usernames_are_refused,
    invalid_emails_are_refused,
    weak_passwords_are_refused,
    long_full_names_are_refused,
    invalid_ages_are_refused,
    gender_is_required,
    checks_run_in_the_contracts_order,
    fields_of_the_wrong_type_are_invalid_requests,
    taken_usernames_are_refused_case_insensitively,
    taken_emails_are_refused_case_insensitively,
);

async fn registers_a_user_and_stores_only_an_argon2id_hash(app: TestApp) {
    let answer = app
        .register(json!({
            "username": "Example_User",
            "email": "  John.Doe@Example.COM ",
            "password": PASSWORD,
            "full_name": "John Doe",
            "age": 30,
            "gender": "male",
            "unknown": "ignored"
        }))
        .await;

    let stored = app.db.users_named("example_user").await;
    assert_eq!(stored.len(), 1);
    let user = &stored[0];
    answer.assert_success(json!({
        "status": "success",
        "message": "User successfully registered!",
        "data": {
            "user_id": user.id.to_string(),
            "username": "Example_User",
            "email": "john.doe@example.com",
            "full_name": "John Doe",
            "age": 30,
            "gender": "male"
        }
    }));
    assert_eq!(user.username, "Example_User");
    assert_eq!(user.email, "john.doe@example.com");
    assert_eq!(user.full_name, "John Doe");
    assert_eq!(user.age, Some(30));
    assert_eq!(user.gender, "male");
    assert!(
        user.password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        user.password_hash
    );
    assert!(!user.password_hash.contains(PASSWORD));
    assert!(!answer.body.to_string().contains("argon2"));
}

async fn age_is_optional(app: TestApp) {
    for (username, age) in [("no_age", None), ("null_age", Some(Value::Null))] {
        let mut body = registration(username);
        match age {
            Some(age) => body["age"] = age,
            None => {
                body.as_object_mut().unwrap().remove("age");
            }
        }
        let answer = app.register(body).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        assert_eq!(answer.body["data"]["age"], Value::Null);
        assert_eq!(app.db.users_named(username).await[0].age, None);
    }
}

async fn missing_fields_are_listed_in_the_contracts_order(app: TestApp) {
    let cases = [
        (json!({}), "username, email, password, full_name"),
        (
            json!({"username": "  ", "email": null, "password": PASSWORD, "full_name": "X", "gender": "f"}),
            "username, email",
        ),
        (
            json!({"username": "someone", "email": "a@b.co", "password": "", "gender": "f"}),
            "password, full_name",
        ),
        (
            json!({"username": "someone", "email": "a@b.co", "password": PASSWORD, "full_name": "\t"}),
            "full_name",
        ),
    ];
    for (body, missing) in cases {
        app.register(body).await.assert_error(
            400,
            "INVALID_REQUEST",
            &format!("Invalid request. Please provide all required fields: {missing}."),
        );
    }
    assert_eq!(app.db.user_count().await, 0);
}

/// A valid registration with one field replaced.
fn with(field: &str, value: Value) -> Value {
    let mut body = registration("valid_user");
    body[field] = value;
    body
}

async fn invalid_usernames_are_refused(app: TestApp) {
    for username in [
        "ab",
        " abc",
        "abc ",
        "a b c",
        "user@name",
        "námé",
        &"x".repeat(65),
    ] {
        app.register(with("username", json!(username)))
            .await
            .assert_code(400, "INVALID_USERNAME");
    }
    for username in ["abc", "a.b-c_d", &"x".repeat(64)] {
        let mut body = registration("ignored");
        body["username"] = json!(username);
        body["email"] = json!(format!("{}@example.com", username.len()));
        assert_eq!(app.register(body).await.status, 200, "{username}");
    }
}

async fn invalid_emails_are_refused(app: TestApp) {
    let too_long = format!("{}@example.com", "a".repeat(243));
    for email in [
        "plain",
        "a@b",
        "@b.com",
        "a@.com",
        "a@@b.com",
        "a b@c.com",
        "a@b.com.",
        too_long.as_str(),
    ] {
        app.register(with("email", json!(email)))
            .await
            .assert_code(400, "INVALID_EMAIL");
    }
}

async fn weak_passwords_are_refused(app: TestApp) {
    let too_long = format!("Aa1!{}", "x".repeat(125));
    for password in [
        "Sh0rt!",
        "alllower1!",
        "ALLUPPER1!",
        "NoDigits!!",
        "NoSpecial11",
        too_long.as_str(),
    ] {
        app.register(with("password", json!(password)))
            .await
            .assert_code(400, "INVALID_PASSWORD");
    }
}

async fn long_full_names_are_refused(app: TestApp) {
    app.register(with("full_name", json!("é".repeat(256))))
        .await
        .assert_error(
            400,
            "INVALID_REQUEST",
            "Invalid request. full_name must be at most 255 characters.",
        );
    let answer = app
        .register(with("full_name", json!("é".repeat(255))))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(
        app.db.users_named("valid_user").await[0].full_name,
        "é".repeat(255)
    );
}

async fn invalid_ages_are_refused(app: TestApp) {
    let ages = [
        "0",
        "151",
        "-1",
        "30.0",
        "3e1",
        "\"30\"",
        "true",
        "[30]",
        "1000000000000000000000",
    ];
    for age in ages {
        // Sent as text, so that 30.0 and 3e1 reach the server as written.
        let text = registration("valid_user")
            .to_string()
            .replace("\"age\":30", &format!("\"age\":{age}"));
        assert!(text.contains(age));
        app.send_raw(reqwest::Method::POST, "/auth/register", None, text)
            .await
            .assert_code(400, "INVALID_AGE");
    }
    for age in [1, 150] {
        let mut body = registration(&format!("age_{age}"));
        body["age"] = json!(age);
        assert_eq!(app.register(body).await.body["data"]["age"], json!(age));
    }
}

async fn gender_is_required(app: TestApp) {
    for gender in [Value::Null, json!(""), json!("   "), json!("x".repeat(33))] {
        app.register(with("gender", gender))
            .await
            .assert_code(400, "GENDER_REQUIRED");
    }
    let mut body = registration("no_gender");
    body.as_object_mut().unwrap().remove("gender");
    app.register(body).await.assert_code(400, "GENDER_REQUIRED");
    let answer = app.register(with("gender", json!("x".repeat(32)))).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
}

async fn checks_run_in_the_contracts_order(app: TestApp) {
    let everything_wrong = json!({
        "username": "a b", "email": "nope", "password": "weak", "full_name": "é".repeat(256),
        "age": 0, "gender": ""
    });
    let mut body = everything_wrong.clone();
    let expected = [
        ("username", "INVALID_USERNAME", json!("good_name")),
        ("email", "INVALID_EMAIL", json!("good@example.com")),
        ("password", "INVALID_PASSWORD", json!(PASSWORD)),
        ("full_name", "INVALID_REQUEST", json!("Good Name")),
        ("age", "INVALID_AGE", json!(44)),
        ("gender", "GENDER_REQUIRED", json!("female")),
    ];
    for (field, code, fix) in expected {
        let answer = app.register(body.clone()).await;
        assert_eq!(answer.status, 400, "{field}");
        assert_eq!(answer.body["code"], code, "{field}: {:?}", answer.body);
        body[field] = fix;
    }
    assert_eq!(app.register(body).await.status, 200);
}

async fn fields_of_the_wrong_type_are_invalid_requests(app: TestApp) {
    for field in ["username", "email", "password", "full_name", "gender"] {
        app.register(with(field, json!(5)))
            .await
            .assert_code(400, "INVALID_REQUEST");
        app.register(with(field, json!({"nested": true})))
            .await
            .assert_code(400, "INVALID_REQUEST");
    }
    for body in ["not json", "[1, 2]", "\"text\"", "null", "{\"username\": "] {
        app.send_raw(reqwest::Method::POST, "/auth/register", None, body)
            .await
            .assert_code(400, "INVALID_REQUEST");
    }
    assert_eq!(app.db.user_count().await, 0);
}

async fn taken_usernames_are_refused_case_insensitively(app: TestApp) {
    app.register_user("Alice").await;
    let mut body = registration("aLiCe");
    body["email"] = json!("other@example.com");
    app.register(body).await.assert_code(409, "USERNAME_EXISTS");
    // Username is checked before email when both are taken.
    app.register(registration("ALICE"))
        .await
        .assert_code(409, "USERNAME_EXISTS");
    assert_eq!(app.db.user_count().await, 1);
}

async fn taken_emails_are_refused_case_insensitively(app: TestApp) {
    app.register_user("bob").await;
    let mut body = registration("robert");
    body["email"] = json!(" BOB@Example.com");
    app.register(body).await.assert_code(409, "EMAIL_EXISTS");
    assert_eq!(app.db.user_count().await, 1);
}
