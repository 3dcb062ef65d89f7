//! `GET /data/list`: the caller's keys in byte order, a page at a time, with signed cursors.

use std::collections::BTreeSet;

use futures::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp, encode, on_both_backends};

on_both_backends!(
    keys_are_listed_in_byte_order_with_tag_size_and_expiry,
    pages_follow_their_cursors_to_a_null_one,
    a_prefix_selects_the_keys_that_start_with_it,
    bad_query_parameters_are_refused,
    cursors_belong_to_their_user_and_prefix,
    expired_keys_and_other_users_keys_never_appear,
    pages_cover_every_key_exactly_once_while_keys_are_stored_and_deleted,
    list_needs_a_token,
);

/// The keys of a page, and its cursor.
fn page(answer: &Answer) -> (Vec<String>, Option<String>) {
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let data = &answer.body["data"];
    let keys = data["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|entry| entry["keyN"].as_str().unwrap().to_owned())
        .collect();
    (keys, data["next_cursor"].as_str().map(str::to_owned))
}

/// Every key from the first page on, following the cursors, `limit` at a time.
async fn list_all(app: &TestApp, token: &str, prefix: &str, limit: u32) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = format!("prefix={}&limit={limit}", encode(prefix));
        if let Some(cursor) = &cursor {
            query.push_str(&format!("&cursor={}", encode(cursor)));
        }
        let (page_keys, next) = page(&app.list(token, &query).await);
        assert!(page_keys.len() <= limit as usize);
        if next.is_some() {
            assert_eq!(
                page_keys.len(),
                limit as usize,
                "only the last page may be short"
            );
        }
        keys.extend(page_keys);
        match next {
            Some(next) => cursor = Some(next),
            None => return keys,
        }
    }
}

async fn keys_are_listed_in_byte_order_with_tag_size_and_expiry(app: TestApp) {
    let (_, token) = app.user_with_token("lister").await;
    let mut tags = std::collections::HashMap::new();
    for key in ["b", "a", "A", "é", "a/b c", "ab", "z z"] {
        tags.insert(key, app.store(&token, key, "ééé").await.etag());
    }
    let answer = app
        .request(
            Method::POST,
            "/data/store",
            Some(&token),
            Some(json!({"keyN": "ttl", "valueN": "12345", "ttl_seconds": 3600})),
        )
        .await;
    let ttl_tag = answer.etag();

    let answer = app.list(&token, "").await;
    assert_eq!(answer.status, 200);
    let keys: Vec<&Value> = answer.body["data"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let names: Vec<&str> = keys
        .iter()
        .map(|entry| entry["keyN"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A", "a", "a/b c", "ab", "b", "ttl", "z z", "é"]);
    assert_eq!(
        keys[0],
        &json!({"keyN": "A", "etag": tags["A"], "size": 6, "expires_at": null})
    );
    assert_eq!(keys[5]["etag"], json!(ttl_tag));
    assert_eq!(keys[5]["size"], 5);
    let expires_at = keys[5]["expires_at"].as_str().expect("an expiry");
    assert_eq!(
        expires_at.len(),
        "2026-12-01T18:00:00Z".len(),
        "{expires_at}"
    );
    assert!(
        expires_at.ends_with('Z') && expires_at.as_bytes()[10] == b'T',
        "{expires_at}"
    );
    assert_eq!(answer.body["data"]["next_cursor"], Value::Null);
    assert_eq!(
        answer.body.as_object().unwrap().len(),
        2,
        "status and data only"
    );
    // The listed tag is the retrieve's ETag.
    assert_eq!(
        keys[2]["etag"],
        json!(app.retrieve(&token, "a/b c").await.etag())
    );
}

async fn pages_follow_their_cursors_to_a_null_one(app: TestApp) {
    let (_, token) = app.user_with_token("pager").await;
    let (keys, cursor) = page(&app.list(&token, "").await);
    assert!(keys.is_empty() && cursor.is_none());
    let all: Vec<String> = (0..25).map(|index| format!("key{index:03}")).collect();
    for key in &all {
        assert_eq!(app.store(&token, key, "v").await.status, 200);
    }
    assert_eq!(list_all(&app, &token, "", 10).await, all);
    assert_eq!(list_all(&app, &token, "", 1).await, all);
    // A last page that is exactly full has no cursor either.
    assert_eq!(list_all(&app, &token, "", 5).await, all);
    let (keys, cursor) = page(&app.list(&token, "limit=25").await);
    assert_eq!((keys.len(), cursor), (25, None));
    // The default page is 100 keys, and the largest 1000.
    assert_eq!(page(&app.list(&token, "").await).0.len(), 25);
    assert_eq!(page(&app.list(&token, "limit=1000").await).0.len(), 25);
}

async fn a_prefix_selects_the_keys_that_start_with_it(app: TestApp) {
    let (_, token) = app.user_with_token("prefixer").await;
    for key in [
        "a/1",
        "a/2",
        "a0",
        "a",
        "b",
        "x y",
        "x+y",
        "é1",
        "é",
        "f\u{10FFFF}",
        "g",
    ] {
        assert_eq!(app.store(&token, key, "v").await.status, 200);
    }
    assert_eq!(list_all(&app, &token, "a/", 1).await, ["a/1", "a/2"]);
    assert_eq!(
        list_all(&app, &token, "a", 2).await,
        ["a", "a/1", "a/2", "a0"]
    );
    assert_eq!(list_all(&app, &token, "é", 10).await, ["é", "é1"]);
    assert_eq!(
        list_all(&app, &token, "f\u{10FFFF}", 10).await,
        ["f\u{10FFFF}"]
    );
    assert_eq!(
        list_all(&app, &token, "nothing", 10).await,
        Vec::<String>::new()
    );
    // `+` is a space, as in forms; `%2B` is a plus.
    assert_eq!(page(&app.list(&token, "prefix=x+").await).0, ["x y"]);
    assert_eq!(page(&app.list(&token, "prefix=x%2B").await).0, ["x+y"]);
    // An empty prefix is no prefix, and unknown parameters are ignored.
    assert_eq!(
        page(&app.list(&token, "prefix=&other=1&other=2").await)
            .0
            .len(),
        11
    );
    let (_, cursor) = page(&app.list(&token, "prefix=&limit=3").await);
    let resumed = page(
        &app.list(
            &token,
            &format!("limit=3&cursor={}", encode(&cursor.unwrap())),
        )
        .await,
    )
    .0;
    assert_eq!(resumed, ["a0", "b", "f\u{10FFFF}"]);
}

async fn bad_query_parameters_are_refused(app: TestApp) {
    let (_, token) = app.user_with_token("fuzzer").await;
    assert_eq!(app.store(&token, "k", "v").await.status, 200);
    let long = "p".repeat(256);
    let bad = [
        "limit=",
        "limit=0",
        "limit=1001",
        "limit=abc",
        "limit=1.5",
        "limit=-1",
        "limit=%2B5",
        "limit=99999999999999999999",
        "cursor=",
        "cursor=garbage",
        "prefix=a%0Ab",
        "prefix=%FF",
        "limit=1&limit=1",
        "prefix=a&prefix=a",
        "cursor=a&cursor=a",
    ];
    for query in bad {
        app.list(&token, query).await.assert_error(
            400,
            "INVALID_QUERY",
            "The query parameters are not valid.",
        );
    }
    app.list(&token, &format!("prefix={long}"))
        .await
        .assert_code(400, "INVALID_QUERY");
    assert_eq!(
        app.list(&token, &format!("prefix={}", "é".repeat(255)))
            .await
            .status,
        200
    );
}

async fn cursors_belong_to_their_user_and_prefix(app: TestApp) {
    let (_, token) = app.user_with_token("owner").await;
    let (_, other) = app.user_with_token("stranger").await;
    for key in ["a1", "a2", "a3", "b1"] {
        assert_eq!(app.store(&token, key, "v").await.status, 200);
        assert_eq!(app.store(&other, key, "v").await.status, 200);
    }
    let (_, cursor) = page(&app.list(&token, "prefix=a&limit=1").await);
    let cursor = encode(&cursor.expect("a next page"));
    assert_eq!(
        page(
            &app.list(&token, &format!("prefix=a&limit=1&cursor={cursor}"))
                .await
        )
        .0,
        ["a2"]
    );
    for query in [
        format!("prefix=b&cursor={cursor}"),
        format!("cursor={cursor}"),
        format!("prefix=a&cursor={cursor}x"),
        format!("prefix=a&cursor=x{cursor}"),
    ] {
        app.list(&token, &query)
            .await
            .assert_code(400, "INVALID_QUERY");
    }
    app.list(&other, &format!("prefix=a&cursor={cursor}"))
        .await
        .assert_code(400, "INVALID_QUERY");
}

async fn expired_keys_and_other_users_keys_never_appear(app: TestApp) {
    let (user_id, token) = app.user_with_token("mine").await;
    let (_, other) = app.user_with_token("theirs").await;
    for key in ["a", "b", "c", "d"] {
        assert_eq!(app.store(&token, key, "v").await.status, 200);
    }
    assert_eq!(app.store(&other, "other", "v").await.status, 200);
    app.db.expire_now(user_id, "b").await;
    app.db.expire_now(user_id, "c").await;
    // Pages stay full though expired rows sit between the keys.
    let (keys, cursor) = page(&app.list(&token, "limit=2").await);
    assert_eq!((keys, cursor), (vec!["a".to_owned(), "d".to_owned()], None));
    assert_eq!(page(&app.list(&other, "").await).0, ["other"]);
}

async fn pages_cover_every_key_exactly_once_while_keys_are_stored_and_deleted(app: TestApp) {
    let (_, token) = app.user_with_token("busy").await;
    let stable: Vec<String> = (0..120).map(|index| format!("k{index:03}")).collect();
    let doomed: Vec<String> = (0..120).map(|index| format!("k{index:03}d")).collect();
    let stores = stable
        .iter()
        .chain(&doomed)
        .map(|key| app.store(&token, key, "v"));
    for answer in join_all(stores).await {
        assert_eq!(answer.status, 200);
    }

    let writer = async {
        for (index, key) in doomed.iter().enumerate() {
            assert_eq!(app.delete(&token, key).await.status, 200);
            let new_key = format!("k{index:03}n");
            assert_eq!(app.store(&token, &new_key, "v").await.status, 200);
        }
    };
    let reader = list_all(&app, &token, "", 7);
    let ((), listed) = tokio::join!(writer, reader);

    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "no key twice: {listed:?}");
    assert!(
        listed.windows(2).all(|pair| pair[0] < pair[1]),
        "in order: {listed:?}"
    );
    for key in &stable {
        assert!(
            unique.contains(key),
            "{key} existed throughout and was listed"
        );
    }
    for key in &listed {
        assert!(key.starts_with('k'), "{key}");
    }
}

async fn list_needs_a_token(app: TestApp) {
    let answer = app.request(Method::GET, "/data/list", None, None).await;
    answer.assert_code(401, "INVALID_TOKEN");
    assert_eq!(answer.headers["www-authenticate"], "Bearer");
    // A bad query with a bad token is a token problem first.
    let answer = app
        .request(Method::GET, "/data/list?limit=0", None, None)
        .await;
    answer.assert_code(401, "INVALID_TOKEN");
}
