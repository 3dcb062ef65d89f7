//! Entity tags: `ETag` on store, retrieve and update; `If-Match` on update and delete;
//! `If-None-Match` on retrieve.

use futures::future::join_all;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, encode, on_both_backends};

on_both_backends!(
    store_retrieve_and_update_carry_the_entry_s_tag,
    retrieve_honours_if_none_match_with_weak_comparison,
    update_honours_if_match_with_strong_comparison,
    delete_honours_if_match,
    a_key_deleted_and_stored_again_never_reuses_a_tag,
    of_twenty_concurrent_updates_with_one_if_match_exactly_one_wins,
    an_expired_key_answers_404_before_its_precondition,
);

async fn update_with(
    app: &TestApp,
    token: &str,
    key: &str,
    value: &str,
    if_match: &str,
) -> crate::helpers::Answer {
    app.send(
        Method::PUT,
        &format!("/data/update/{}", encode(key)),
        token,
        &[("if-match", if_match)],
        Some(json!({"valueN": value})),
    )
    .await
}

async fn delete_with(
    app: &TestApp,
    token: &str,
    key: &str,
    if_match: &str,
) -> crate::helpers::Answer {
    app.send(
        Method::DELETE,
        &format!("/data/delete/{}", encode(key)),
        token,
        &[("if-match", if_match)],
        None,
    )
    .await
}

async fn retrieve_with(
    app: &TestApp,
    token: &str,
    key: &str,
    if_none_match: &str,
) -> crate::helpers::Answer {
    app.send(
        Method::GET,
        &format!("/data/retrieve/{}", encode(key)),
        token,
        &[("if-none-match", if_none_match)],
        None,
    )
    .await
}

async fn store_retrieve_and_update_carry_the_entry_s_tag(app: TestApp) {
    let (_, token) = app.user_with_token("tagged").await;
    let stored = app.store(&token, "k", "one").await;
    // The body keeps its original shape: the tag travels in a header.
    stored.assert_success(json!({"status": "success", "message": "Data stored successfully."}));
    let first = stored.etag();

    let retrieved = app.retrieve(&token, "k").await;
    assert_eq!(retrieved.etag(), first);
    retrieved.assert_success(json!({"status": "success", "data": {"keyN": "k", "valueN": "one"}}));

    let updated = app.update(&token, "k", "two").await;
    updated.assert_success(json!({"status": "success", "message": "Data updated successfully."}));
    let second = updated.etag();
    assert_ne!(second, first, "a new value gets a new tag");
    assert_eq!(app.retrieve(&token, "k").await.etag(), second);

    // Changing only the expiry changes the tag too.
    let third = app
        .request(
            Method::PUT,
            "/data/update/k",
            Some(&token),
            Some(json!({"valueN": "two", "ttl_seconds": 600})),
        )
        .await
        .etag();
    assert_ne!(third, second);
    // Delete answers without a tag: there is no entry left to tag.
    assert!(app.delete(&token, "k").await.headers.get("etag").is_none());
}

async fn retrieve_honours_if_none_match_with_weak_comparison(app: TestApp) {
    let (_, token) = app.user_with_token("cacher").await;
    let tag = app.store(&token, "k", "value").await.etag();
    let weak = format!("W/{tag}");
    let listed = format!("\"other\", {tag}");
    for header in [tag.as_str(), weak.as_str(), listed.as_str(), "*"] {
        let answer = retrieve_with(&app, &token, "k", header).await;
        assert_eq!(answer.status, 304, "If-None-Match: {header}");
        assert_eq!(answer.etag(), tag);
    }
    for header in ["\"other\"", "W/\"other\"", "garbage"] {
        let answer = retrieve_with(&app, &token, "k", header).await;
        assert_eq!(answer.status, 200, "If-None-Match: {header}");
        assert_eq!(answer.body["data"]["valueN"], "value");
        assert_eq!(answer.etag(), tag);
    }
    // A missing key is missing, whatever the condition.
    retrieve_with(&app, &token, "absent", "*")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
}

async fn update_honours_if_match_with_strong_comparison(app: TestApp) {
    let (user_id, token) = app.user_with_token("careful").await;
    let tag = app.store(&token, "k", "original").await.etag();
    let weak = format!("W/{tag}");
    for stale in ["\"0123\"", weak.as_str(), "garbage"] {
        update_with(&app, &token, "k", "lost", stale)
            .await
            .assert_error(
                412,
                "PRECONDITION_FAILED",
                "The key has been changed since the given entity tag.",
            );
        assert_eq!(
            app.db.value_of(user_id, "k").await.as_deref(),
            Some("original")
        );
    }
    assert_eq!(
        app.retrieve(&token, "k").await.etag(),
        tag,
        "a refused update changes no tag"
    );

    let listed = format!("\"0123\", {tag}");
    let updated = update_with(&app, &token, "k", "second", &listed).await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    let second = updated.etag();
    // The first tag is stale now.
    update_with(&app, &token, "k", "lost", &tag)
        .await
        .assert_code(412, "PRECONDITION_FAILED");
    assert_eq!(
        update_with(&app, &token, "k", "third", "*").await.status,
        200
    );
    assert_ne!(app.retrieve(&token, "k").await.etag(), second);
    assert_eq!(
        app.db.value_of(user_id, "k").await.as_deref(),
        Some("third")
    );

    // 404 is checked before the precondition.
    update_with(&app, &token, "absent", "v", "*")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
    // And the body before both.
    let answer = app
        .send(
            Method::PUT,
            "/data/update/absent",
            &token,
            &[("if-match", "\"x\"")],
            Some(json!({"valueN": ""})),
        )
        .await;
    answer.assert_code(400, "INVALID_VALUE");
}

async fn delete_honours_if_match(app: TestApp) {
    let (user_id, token) = app.user_with_token("deleter").await;
    let tag = app.store(&token, "k", "value").await.etag();
    delete_with(&app, &token, "k", "\"stale\"")
        .await
        .assert_code(412, "PRECONDITION_FAILED");
    delete_with(&app, &token, "k", &format!("W/{tag}"))
        .await
        .assert_code(412, "PRECONDITION_FAILED");
    assert_eq!(
        app.db.value_of(user_id, "k").await.as_deref(),
        Some("value")
    );

    delete_with(&app, &token, "k", &tag)
        .await
        .assert_success(json!({"status": "success", "message": "Data deleted successfully."}));
    assert_eq!(app.db.value_of(user_id, "k").await, None);
    delete_with(&app, &token, "k", "*")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
}

async fn a_key_deleted_and_stored_again_never_reuses_a_tag(app: TestApp) {
    let (_, token) = app.user_with_token("recycler").await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..5 {
        let tag = app.store(&token, "k", "same value").await.etag();
        assert!(seen.insert(tag.clone()), "tag {tag} came back");
        assert_eq!(app.delete(&token, "k").await.status, 200);
    }
    let tag = app.store(&token, "k", "same value").await.etag();
    for old in &seen {
        assert_ne!(old, &tag);
        update_with(&app, &token, "k", "v", old)
            .await
            .assert_code(412, "PRECONDITION_FAILED");
    }
}

async fn of_twenty_concurrent_updates_with_one_if_match_exactly_one_wins(app: TestApp) {
    let (user_id, token) = app.user_with_token("racer").await;
    let tag = app.store(&token, "k", "start").await.etag();
    let values: Vec<String> = (0..20).map(|n| format!("value {n}")).collect();
    let answers = join_all(
        values
            .iter()
            .map(|value| update_with(&app, &token, "k", value, &tag)),
    )
    .await;
    let winners: Vec<&String> = answers
        .iter()
        .zip(&values)
        .filter(|(answer, _)| answer.status == 200)
        .map(|(_, value)| value)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for answer in answers.iter().filter(|answer| answer.status != 200) {
        answer.assert_code(412, "PRECONDITION_FAILED");
    }
    assert_eq!(
        app.db.value_of(user_id, "k").await.as_ref(),
        Some(winners[0])
    );
    let winner_tag = answers.iter().find(|a| a.status == 200).unwrap().etag();
    assert_eq!(app.retrieve(&token, "k").await.etag(), winner_tag);
}

async fn an_expired_key_answers_404_before_its_precondition(app: TestApp) {
    let (user_id, token) = app.user_with_token("expirer").await;
    let tag = app.store(&token, "k", "value").await.etag();
    app.db.expire_now(user_id, "k").await;
    update_with(&app, &token, "k", "v", &tag)
        .await
        .assert_code(404, "KEY_NOT_FOUND");
    delete_with(&app, &token, "k", "\"stale\"")
        .await
        .assert_code(404, "KEY_NOT_FOUND");
    retrieve_with(&app, &token, "k", &tag)
        .await
        .assert_code(404, "KEY_NOT_FOUND");
}
