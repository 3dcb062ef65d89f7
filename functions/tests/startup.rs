//! The function binary refuses to start on Lambda without a real JWT key, and says why.

use std::process::{Command, Output};

/// Runs the function as Lambda would start it, with `extra` variables and nothing else from
/// this environment. The Runtime API address is unreachable: a function that does start fails
/// later, when it asks for its first event.
fn start(extra: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_auth-token"))
        .env_clear()
        .env("AWS_LAMBDA_FUNCTION_NAME", "auth-token")
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("DATABASE_URL", "sqlite::memory:")
        .envs(extra.iter().copied())
        .output()
        .expect("the function binary runs")
}

fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn refuses_to_start_without_a_jwt_secret() {
    let output = start(&[]);
    assert!(!output.status.success());
    let text = printed(&output);
    assert!(text.contains("refusing to start"), "{text}");
    assert!(text.contains("no JWT secret"), "{text}");
}

#[test]
fn refuses_a_jwt_secret_shorter_than_32_bytes() {
    let output = start(&[("JWT_SECRET", "only-31-bytes-long-secret-value")]);
    assert!(!output.status.success());
    let text = printed(&output);
    assert!(text.contains("refusing to start"), "{text}");
    assert!(text.contains("31 bytes long; at least 32"), "{text}");
    assert!(
        !text.contains("only-31-bytes"),
        "the secret is not logged: {text}"
    );
}

#[test]
fn refuses_the_local_development_secret() {
    let output = start(&[(
        "JWT_SECRET",
        kv_shared::config::LOCAL_DEVELOPMENT_JWT_SECRET,
    )]);
    assert!(!output.status.success());
    assert!(printed(&output).contains("no JWT secret"));
}

#[test]
fn refuses_a_list_with_a_short_or_empty_key_naming_it_by_position() {
    let good = "a-real-secret-of-thirty-two-bytes!";
    for (keys, expected) in [
        (
            format!("{good},only-31-bytes-long-secret-value"),
            "JWT key 2 of 2 is 31 bytes long",
        ),
        (format!("{good},"), "JWT key 2 of 2 is empty"),
    ] {
        let output = start(&[("JWT_SECRET", &keys)]);
        assert!(!output.status.success());
        let text = printed(&output);
        assert!(text.contains("refusing to start"), "{text}");
        assert!(text.contains(expected), "{text}");
        assert!(
            !text.contains(good) && !text.contains("only-31-bytes"),
            "no key is logged: {text}"
        );
    }
}

#[test]
fn refuses_the_local_development_secret_anywhere_in_the_list() {
    let keys = format!(
        "a-real-secret-of-thirty-two-bytes!,{}",
        kv_shared::config::LOCAL_DEVELOPMENT_JWT_SECRET
    );
    let output = start(&[("JWT_SECRET", &keys)]);
    assert!(!output.status.success());
    let text = printed(&output);
    assert!(text.contains("no JWT secret"), "{text}");
    assert!(text.contains("JWT key 2 of 2"), "{text}");
}

#[test]
fn starts_with_several_real_keys() {
    let output = start(&[(
        "JWT_SECRET",
        "a-real-secret-of-thirty-two-bytes!, the-previous-secret-of-32-bytes!!",
    )]);
    let text = printed(&output);
    assert!(!text.contains("refusing to start"), "{text}");
}

#[test]
fn starts_with_a_real_secret() {
    let output = start(&[("JWT_SECRET", "a-real-secret-of-thirty-two-bytes!")]);
    // It got past configuration and failed only at the unreachable Runtime API.
    let text = printed(&output);
    assert!(!text.contains("refusing to start"), "{text}");
}
