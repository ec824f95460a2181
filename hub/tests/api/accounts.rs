//! Accounts and API tokens over the JSON API: what registration refuses, and that minting a
//! token needs the password itself.

use serde_json::json;

use crate::support::{basic, password, TestHub};

#[tokio::test]
async fn registration_refuses_bad_names_short_passwords_and_taken_names() {
    let hub = TestHub::start().await;
    let r = hub
        .post_json(
            "/api/v1/register",
            None,
            json!({"name": "alice", "password": "long-enough"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["name"], "alice");
    for (body, why) in [
        (
            json!({"name": "Alice!", "password": "long-enough"}),
            "lowercase",
        ),
        (json!({"name": "bob", "password": "short"}), "at least 8"),
        (json!({"name": "alice", "password": "long-enough"}), "taken"),
    ] {
        let r = hub.post_json("/api/v1/register", None, body).await;
        assert_eq!(r.status, 400, "{}", r.text());
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(why), "{error}");
    }
}

#[tokio::test]
async fn tokens_are_minted_with_the_password_only() {
    let hub = TestHub::start().await;
    hub.register("carol", &password("carol")).await;
    let ask = json!({"label": "ci", "scopes": ["pull", "push"]});
    let r = hub.post_json("/api/v1/tokens", None, ask.clone()).await;
    assert_eq!(r.status, 401);
    assert!(r.json()["error"].as_str().unwrap().contains("Basic auth"));
    let wrong = basic("carol", "not-the-password");
    let r = hub
        .post_json("/api/v1/tokens", Some(&wrong), ask.clone())
        .await;
    assert_eq!(r.status, 401);
    // A token cannot mint further tokens.
    let token = hub.token("carol", &["pull", "push"], &[]).await;
    assert!(token.starts_with("cehub_"), "{token}");
    let with_token = basic("carol", &token);
    let r = hub
        .post_json("/api/v1/tokens", Some(&with_token), ask)
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn token_requests_are_checked() {
    let hub = TestHub::start().await;
    hub.register("carol", &password("carol")).await;
    let auth = basic("carol", &password("carol"));
    for (body, why) in [
        (
            json!({"scopes": ["push"], "namespaces": ["dave/x"]}),
            "not inside your namespace",
        ),
        (json!({"scopes": []}), "pull or the push scope"),
        (
            json!({"scopes": ["pull"], "expires_in_days": 0}),
            "1 to 3650 days",
        ),
    ] {
        let r = hub.post_json("/api/v1/tokens", Some(&auth), body).await;
        assert_eq!(r.status, 400, "{}", r.text());
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(why), "{error}");
    }
    let ok = json!({"scopes": ["pull"], "namespaces": ["carol/tools"], "expires_in_days": 7});
    let r = hub.post_json("/api/v1/tokens", Some(&auth), ok).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let body = r.json();
    assert!(body["id"].as_str().is_some_and(|id| !id.is_empty()));
    let expires = body["expires_at"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((expires - now - 7 * 86_400).abs() < 60, "{body}");
}
