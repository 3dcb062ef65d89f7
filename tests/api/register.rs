//! `POST /auth/register`.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, message_of, on_both_backends, registration};

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
    lengths_are_checked_on_the_values_as_stored,
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

/// 'İ' (U+0130) lowercases to two characters, "i\u{307}"; the Kelvin sign (U+212A, 3 bytes)
/// to the letter 'k' (1 byte); 'ẞ' (U+1E9E, 3 bytes) to 'ß' (2 bytes); '𝔄' is 4 bytes. Each
/// register field, at and just past its limit, with such characters: the answer is the success
/// or the contract's 400 (never a 500), and what the database holds is exactly the value as the
/// contract says it is stored (the email trimmed and lowercased, every other field as sent).
async fn lengths_are_checked_on_the_values_as_stored(app: TestApp) {
    const DOTTED_I: &str = "\u{130}";
    const KELVIN: &str = "\u{212a}";
    const SHARP_S: &str = "\u{1e9e}";
    const FRAKTUR_A: &str = "\u{1d504}";
    let domain = "@example.com"; // 12 characters

    // (field, value sent, the value stored, or the code of the refusal)
    let mut cases: Vec<(&str, String, Result<String, &str>)> = Vec::new();
    // Email: at most 254 characters once lowercased.
    let dotted = format!("{}{domain}", DOTTED_I.repeat(121)); // 133 sent, 254 stored
    cases.push((
        "email",
        dotted.clone(),
        Ok(format!("{}{domain}", "i\u{307}".repeat(121))),
    ));
    let dotted_over = format!("{}a{domain}", DOTTED_I.repeat(121)); // 134 sent, 255 stored
    cases.push(("email", dotted_over, Err("INVALID_EMAIL")));
    let dotted_mixed = format!("x{}{domain}", DOTTED_I.repeat(120)); // 133 sent, 253 stored
    cases.push((
        "email",
        format!(" \t{dotted_mixed}\n "),
        Ok(format!("x{}{domain}", "i\u{307}".repeat(120))),
    ));
    for (upper, lower) in [(KELVIN, "k"), (SHARP_S, "\u{df}")] {
        // Shorter in bytes once lowercased, as long in characters.
        cases.push((
            "email",
            format!("{}{domain}", upper.repeat(242)),
            Ok(format!("{}{domain}", lower.repeat(242))),
        ));
        cases.push((
            "email",
            format!("{}{domain}", upper.repeat(243)),
            Err("INVALID_EMAIL"),
        ));
    }
    cases.push((
        "email",
        format!("  {}{domain}\t", "a".repeat(242)),
        Ok(format!("{}{domain}", "a".repeat(242))),
    ));
    // Username: ASCII only, stored as sent; a character that lowercases to ASCII is no letter
    // of it.
    for name in [
        format!("{}{KELVIN}", "a".repeat(63)),
        format!("{DOTTED_I}bc"),
        format!("ab{SHARP_S}"),
    ] {
        cases.push(("username", name, Err("INVALID_USERNAME")));
    }
    cases.push(("username", "Kk".repeat(32), Ok("Kk".repeat(32))));
    // Password: 8 to 128 characters, hashed as sent.
    for upper in [DOTTED_I, KELVIN, SHARP_S] {
        let longest = format!("a1!{}", upper.repeat(125));
        cases.push(("password", longest.clone(), Ok(longest)));
        cases.push((
            "password",
            format!("a1!{}", upper.repeat(126)),
            Err("INVALID_PASSWORD"),
        ));
    }
    // Full name: at most 255 characters, stored as sent.
    for wide in [DOTTED_I, KELVIN, SHARP_S, FRAKTUR_A] {
        cases.push(("full_name", wide.repeat(255), Ok(wide.repeat(255))));
        cases.push(("full_name", wide.repeat(256), Err("INVALID_REQUEST")));
    }
    // Gender: at most 32 characters, stored as sent.
    for wide in [DOTTED_I, KELVIN, SHARP_S, FRAKTUR_A] {
        cases.push(("gender", wide.repeat(32), Ok(wide.repeat(32))));
        cases.push(("gender", wide.repeat(33), Err("GENDER_REQUIRED")));
    }

    let mut registered = 0;
    for (index, (field, value, expected)) in cases.into_iter().enumerate() {
        let username = if field == "username" {
            value.clone()
        } else {
            format!("walker_{index}")
        };
        let mut body = registration(&username);
        body["email"] = json!(format!("walker_{index}@example.com"));
        body[field] = json!(value);
        let answer = app.register(body.clone()).await;
        let label = format!(
            "case {index}: {field} of {} characters, {} bytes",
            value.chars().count(),
            value.len()
        );
        match expected {
            Err(code) => {
                let message = if field == "full_name" {
                    "Invalid request. full_name must be at most 255 characters."
                } else {
                    message_of(code)
                };
                assert_eq!(answer.status, 400, "{label}: {:?}", answer.body);
                answer.assert_error(400, code, message);
                assert_eq!(app.db.user_count().await, registered, "{label}");
            }
            Ok(stored) => {
                assert_eq!(answer.status, 200, "{label}: {:?}", answer.body);
                registered += 1;
                let users = app.db.users_named(&username).await;
                assert_eq!(users.len(), 1, "{label}");
                let user = &users[0];
                let held = match field {
                    "email" => &user.email,
                    "username" => &user.username,
                    "full_name" => &user.full_name,
                    "gender" => &user.gender,
                    _ => &user.password_hash,
                };
                if field == "password" {
                    // The hash is of the password exactly as sent: it logs in.
                    let login = app
                        .token(json!({"username": username, "password": stored}))
                        .await;
                    assert_eq!(login.status, 200, "{label}: {:?}", login.body);
                } else {
                    assert_eq!(held, &stored, "{label}");
                    assert_eq!(answer.body["data"][field], json!(stored), "{label}");
                }
            }
        }
    }
}
