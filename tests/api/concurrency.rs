//! Concurrent requests: the database's constraints decide, and nothing is lost.

use futures::future::join_all;
use serde_json::json;

use crate::helpers::{TestApp, on_both_backends, registration};

on_both_backends!(
    concurrent_registrations_of_one_name_give_one_success,
    concurrent_stores_of_one_key_give_one_success,
    hundreds_of_concurrent_stores_are_all_kept,
);

async fn concurrent_registrations_of_one_name_give_one_success(app: TestApp) {
    let attempts = (0..20).map(|attempt| {
        let mut body = registration("contested");
        // Different emails, so only the username can conflict.
        body["email"] = json!(format!("contested{attempt}@example.com"));
        app.register(body)
    });
    let answers = join_all(attempts).await;

    let successes = answers.iter().filter(|answer| answer.status == 200).count();
    assert_eq!(successes, 1, "{answers:?}");
    for answer in answers.iter().filter(|answer| answer.status != 200) {
        answer.assert_code(409, "USERNAME_EXISTS");
    }
    assert_eq!(app.db.users_named("contested").await.len(), 1);
}

async fn concurrent_stores_of_one_key_give_one_success(app: TestApp) {
    let (user_id, token) = app.user_with_token("racer").await;
    let values: Vec<String> = (0..20).map(|attempt| format!("value {attempt}")).collect();
    let answers = join_all(
        values
            .iter()
            .map(|value| app.store(&token, "contested", value)),
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
        answer.assert_code(409, "KEY_EXISTS");
    }
    assert_eq!(
        app.db.value_of(user_id, "contested").await.as_ref(),
        Some(winners[0])
    );
}

async fn hundreds_of_concurrent_stores_are_all_kept(app: TestApp) {
    const CLIENTS: usize = 4;
    const KEYS_PER_CLIENT: usize = 100;
    let mut users = Vec::new();
    for client in 0..CLIENTS {
        users.push(app.user_with_token(&format!("client{client}")).await);
    }

    // Each client has its own connection pool and sends all its stores at once.
    let clients = users.iter().map(|(_, token)| {
        let http = reqwest::Client::new();
        let address = app.address.clone();
        async move {
            let stores = (0..KEYS_PER_CLIENT).map(|index| {
                http.post(format!("{address}/data/store"))
                    .bearer_auth(token)
                    .json(&json!({"keyN": format!("key-{index}"), "valueN": format!("value-{index}")}))
                    .send()
            });
            join_all(stores).await
        }
    });
    for responses in join_all(clients).await {
        for response in responses {
            assert_eq!(response.expect("an answer").status(), 200);
        }
    }

    for (user_id, token) in &users {
        assert_eq!(app.db.entry_count(*user_id).await, KEYS_PER_CLIENT as i64);
        for index in 0..KEYS_PER_CLIENT {
            let answer = app.retrieve(token, &format!("key-{index}")).await;
            assert_eq!(answer.body["data"]["valueN"], format!("value-{index}"));
        }
    }
}
