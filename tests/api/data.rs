//! `/data/*`: storing, reading, updating and deleting one's own entries.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, encode, on_both_backends};

on_both_backends!(
    an_entry_lives_through_store_retrieve_update_delete,
    keys_belong_to_their_user,
    keys_are_compared_byte_for_byte,
    a_key_in_the_path_is_one_percent_encoded_segment,
    storing_an_existing_key_is_a_conflict,
    invalid_keys_are_refused_when_storing,
    invalid_values_are_refused,
    the_largest_value_and_key_are_kept_intact,
    missing_keys_are_not_found,
    invalid_keys_in_the_path_are_refused,
    update_checks_key_then_value_then_existence,
    updating_to_the_same_value_succeeds,
    unknown_fields_are_ignored,
);

async fn an_entry_lives_through_store_retrieve_update_delete(app: TestApp) {
    let (user_id, token) = app.user_with_token("owner").await;

    app.store(&token, "unique_key", "data_value")
        .await
        .assert_success(json!({"status": "success", "message": "Data stored successfully."}));
    assert_eq!(
        app.db.value_of(user_id, "unique_key").await.as_deref(),
        Some("data_value")
    );

    app.retrieve(&token, "unique_key")
        .await
        .assert_success(json!({
            "status": "success",
            "data": {"keyN": "unique_key", "valueN": "data_value"}
        }));

    app.update(&token, "unique_key", "new_data_value")
        .await
        .assert_success(json!({"status": "success", "message": "Data updated successfully."}));
    assert_eq!(
        app.db.value_of(user_id, "unique_key").await.as_deref(),
        Some("new_data_value")
    );
    assert_eq!(
        app.retrieve(&token, "unique_key").await.body["data"]["valueN"],
        "new_data_value"
    );

    app.delete(&token, "unique_key")
        .await
        .assert_success(json!({"status": "success", "message": "Data deleted successfully."}));
    assert_eq!(app.db.value_of(user_id, "unique_key").await, None);
    app.retrieve(&token, "unique_key")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
    app.delete(&token, "unique_key")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
}

async fn keys_belong_to_their_user(app: TestApp) {
    let (alice, alice_token) = app.user_with_token("alice").await;
    let (bob, bob_token) = app.user_with_token("bob").await;

    assert_eq!(app.store(&alice_token, "k", "alice's").await.status, 200);
    // Bob cannot see, change or delete Alice's entry...
    app.retrieve(&bob_token, "k")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
    app.update(&bob_token, "k", "bob was here")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
    app.delete(&bob_token, "k")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
    // ...but holds a `k` of his own.
    assert_eq!(app.store(&bob_token, "k", "bob's").await.status, 200);
    assert_eq!(
        app.db.value_of(alice, "k").await.as_deref(),
        Some("alice's")
    );
    assert_eq!(app.db.value_of(bob, "k").await.as_deref(), Some("bob's"));

    assert_eq!(app.delete(&bob_token, "k").await.status, 200);
    assert_eq!(
        app.retrieve(&alice_token, "k").await.body["data"]["valueN"],
        "alice's"
    );
}

async fn keys_are_compared_byte_for_byte(app: TestApp) {
    let (user_id, token) = app.user_with_token("bytes").await;
    let keys = ["foo", "Foo", "FOO", "foo ", " foo", "fóo", "fo\u{301}o"];
    for (index, key) in keys.iter().enumerate() {
        let answer = app.store(&token, key, &index.to_string()).await;
        assert_eq!(answer.status, 200, "{key:?}: {:?}", answer.body);
    }
    assert_eq!(app.db.entry_count(user_id).await, keys.len() as i64);
    for (index, key) in keys.iter().enumerate() {
        assert_eq!(
            app.retrieve(&token, key).await.body["data"]["valueN"],
            index.to_string(),
            "{key:?}"
        );
    }
}

async fn a_key_in_the_path_is_one_percent_encoded_segment(app: TestApp) {
    let (user_id, token) = app.user_with_token("paths").await;
    // (Not "." or "..": the test client's URL parser would resolve those segments away.)
    for key in ["a/b c", "100%", "?query#frag", "ключ ✓", "a+b", ".x", "..."] {
        assert_eq!(app.store(&token, key, key).await.status, 200, "{key}");
        assert_eq!(app.db.value_of(user_id, key).await.as_deref(), Some(key));
        app.retrieve(&token, key).await.assert_success(json!({
            "status": "success",
            "data": {"keyN": key, "valueN": key}
        }));
    }
    let answer = app
        .request(Method::GET, "/data/retrieve/a%2Fb%20c", Some(&token), None)
        .await;
    assert_eq!(answer.body["data"]["keyN"], "a/b c");
    // Two segments are another path.
    app.request(Method::GET, "/data/retrieve/a/b", Some(&token), None)
        .await
        .assert_code(404, "NOT_FOUND");
    app.request(Method::DELETE, "/data/delete/a/b%20c", Some(&token), None)
        .await
        .assert_code(404, "NOT_FOUND");
}

async fn storing_an_existing_key_is_a_conflict(app: TestApp) {
    let (user_id, token) = app.user_with_token("conflicts").await;
    assert_eq!(app.store(&token, "k", "first").await.status, 200);
    app.store(&token, "k", "second")
        .await
        .assert_code(409, "KEY_EXISTS");
    assert_eq!(
        app.db.value_of(user_id, "k").await.as_deref(),
        Some("first")
    );
}

async fn invalid_keys_are_refused_when_storing(app: TestApp) {
    let (user_id, token) = app.user_with_token("bad_keys").await;
    let bodies = [
        json!({"valueN": "v"}),
        json!({"keyN": null, "valueN": "v"}),
        json!({"keyN": 5, "valueN": "v"}),
        json!({"keyN": ["k"], "valueN": "v"}),
        json!({"keyN": "", "valueN": "v"}),
        json!({"keyN": "   ", "valueN": "v"}),
        json!({"keyN": "tab\there", "valueN": "v"}),
        json!({"keyN": "nul\u{0}", "valueN": "v"}),
        json!({"keyN": "k".repeat(256), "valueN": "v"}),
        // keyN is checked before valueN.
        json!({"keyN": 5, "valueN": 5}),
    ];
    for body in bodies {
        app.request(Method::POST, "/data/store", Some(&token), Some(body))
            .await
            .assert_code(400, "INVALID_KEY");
    }
    assert_eq!(app.db.entry_count(user_id).await, 0);
}

async fn invalid_values_are_refused(app: TestApp) {
    let (user_id, token) = app.user_with_token("bad_values").await;
    let bodies = [
        json!({"keyN": "k"}),
        json!({"keyN": "k", "valueN": null}),
        json!({"keyN": "k", "valueN": 5}),
        json!({"keyN": "k", "valueN": {"a": 1}}),
        json!({"keyN": "k", "valueN": ""}),
        json!({"keyN": "k", "valueN": "x".repeat(65_536)}),
        json!({"keyN": "k", "valueN": "€".repeat(21_846)}),
    ];
    for body in bodies {
        app.request(Method::POST, "/data/store", Some(&token), Some(body))
            .await
            .assert_code(400, "INVALID_VALUE");
    }
    assert_eq!(app.db.entry_count(user_id).await, 0);
}

async fn the_largest_value_and_key_are_kept_intact(app: TestApp) {
    let (user_id, token) = app.user_with_token("large").await;
    let value = format!("{}é", "v".repeat(65_533));
    assert_eq!(value.len(), 65_535);
    let key = "ключ".repeat(63) + "key";
    assert_eq!(key.chars().count(), 255);
    let answer = app.store(&token, &key, &value).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(
        app.db.value_of(user_id, &key).await.as_deref(),
        Some(value.as_str())
    );
    let answer = app.retrieve(&token, &key).await;
    assert_eq!(answer.body["data"]["valueN"], value.as_str());
    assert_eq!(answer.body["data"]["keyN"], key.as_str());
}

async fn missing_keys_are_not_found(app: TestApp) {
    let (_, token) = app.user_with_token("nothing").await;
    app.retrieve(&token, "absent")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
    app.update(&token, "absent", "v")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
    app.delete(&token, "absent")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
}

async fn invalid_keys_in_the_path_are_refused(app: TestApp) {
    let (_, token) = app.user_with_token("bad_paths").await;
    let long = "k".repeat(256);
    for segment in ["%20%20", "%09", "a%0Ab", "%FF", "%C3%28", long.as_str()] {
        for (method, path) in [
            (Method::GET, format!("/data/retrieve/{segment}")),
            (Method::DELETE, format!("/data/delete/{segment}")),
        ] {
            app.request(method, &path, Some(&token), None)
                .await
                .assert_code(400, "INVALID_KEY");
        }
        app.request(
            Method::PUT,
            &format!("/data/update/{segment}"),
            Some(&token),
            Some(json!({"valueN": "v"})),
        )
        .await
        .assert_code(400, "INVALID_KEY");
    }
}

async fn update_checks_key_then_value_then_existence(app: TestApp) {
    let (user_id, token) = app.user_with_token("order").await;
    let update = |key: &str, body: serde_json::Value| {
        let path = format!("/data/update/{}", encode(key));
        let token = token.clone();
        let app = &app;
        async move {
            app.request(Method::PUT, &path, Some(&token), Some(body))
                .await
        }
    };
    update("   ", json!({"valueN": 5}))
        .await
        .assert_code(400, "INVALID_KEY");
    update("absent", json!({"valueN": ""}))
        .await
        .assert_code(400, "INVALID_VALUE");
    update("absent", json!({}))
        .await
        .assert_code(400, "INVALID_VALUE");
    update("absent", json!({"valueN": "v"}))
        .await
        .assert_code(404, "KEY_NOT_FOUND");
    assert_eq!(app.store(&token, "present", "old").await.status, 200);
    update("present", json!({"valueN": "x".repeat(65_536)}))
        .await
        .assert_code(400, "INVALID_VALUE");
    assert_eq!(
        app.db.value_of(user_id, "present").await.as_deref(),
        Some("old")
    );
    app.send_raw(Method::PUT, "/data/update/present", Some(&token), "[\"v\"]")
        .await
        .assert_code(400, "INVALID_REQUEST");
    // The key is checked before the body is read at all.
    app.send_raw(Method::PUT, "/data/update/%20", Some(&token), "not json")
        .await
        .assert_code(400, "INVALID_KEY");
}

async fn updating_to_the_same_value_succeeds(app: TestApp) {
    let (_, token) = app.user_with_token("same").await;
    assert_eq!(app.store(&token, "k", "v").await.status, 200);
    for _ in 0..2 {
        app.update(&token, "k", "v")
            .await
            .assert_success(json!({"status": "success", "message": "Data updated successfully."}));
    }
}

async fn unknown_fields_are_ignored(app: TestApp) {
    let (user_id, token) = app.user_with_token("extra").await;
    let answer = app
        .request(
            Method::POST,
            "/data/store",
            Some(&token),
            Some(json!({"keyN": "k", "valueN": "v", "user_id": 999, "extra": [1]})),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(app.db.value_of(user_id, "k").await.as_deref(), Some("v"));
}
