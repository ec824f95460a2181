//! The store around the packages: the JSON API (its OpenAPI document, versions, users,
//! stars, follows, paging, CORS), profiles, follows and the feed, the owner's dashboard
//! (deprecate, edit), the admin page (feature, hide, disable), home and about.

use crate::search::three_packages;
use crate::support::{bpf_object, meta, TestHub};

#[tokio::test]
async fn every_path_of_the_openapi_document_is_served() {
    let hub = TestHub::start().await;
    three_packages(&hub).await;
    let doc = hub.request("GET", "/api/v1/openapi.json", &[], b"").await;
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 15, "{}", paths.len());
    for (path, ops) in paths {
        let concrete = path
            .replace("{owner}", "alice")
            .replace("{name}", "opensnoop")
            .replace("{version}", "0.1.0")
            .replace("{user}", "bob")
            .replace("{fingerprint}", "SHA256:00");
        for method in ops.as_object().unwrap().keys() {
            let r = hub
                .request(&method.to_uppercase(), &concrete, &[], b"")
                .await;
            // Unauthenticated writes are refused, reads answer; none is an unrouted 404
            // or 405.
            assert!(
                r.status != 405 && !(r.status == 404 && r.body.is_empty()),
                "{method} {concrete}: {} {}",
                r.status,
                r.text()
            );
            if method == "get" {
                assert_eq!(r.status, 200, "{concrete}: {}", r.text());
                assert_eq!(
                    r.header("access-control-allow-origin"),
                    Some("*"),
                    "{concrete}"
                );
            }
        }
    }
}

#[tokio::test]
async fn versions_users_stars_and_follows_over_the_api() {
    let hub = TestHub::start().await;
    three_packages(&hub).await;
    let v = hub
        .request(
            "GET",
            "/api/v1/packages/alice/opensnoop/versions/0.1.0",
            &[],
            b"",
        )
        .await
        .json();
    assert_eq!(v["format"], "cargo-ebpf");
    assert_eq!(
        v["plan"]["attach"][0]["point"],
        "tracepoint syscalls:sys_enter_openat"
    );
    let list = hub
        .request(
            "GET",
            "/api/v1/packages/alice/opensnoop/versions?per_page=1",
            &[],
            b"",
        )
        .await
        .json();
    assert_eq!(
        (
            list["total"].as_i64(),
            list["versions"][0]["version"].as_str()
        ),
        (Some(1), Some("0.1.0"))
    );
    let bad = hub
        .request("GET", "/api/v1/users/bob/followers?per_page=0", &[], b"")
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        hub.request("GET", "/api/v1/users/nobody", &[], b"")
            .await
            .status,
        404
    );

    // bob follows alice with his token; alice's followers list says so.
    let bob = crate::support::basic("bob", &hub.token("bob", &["pull"], &[]).await);
    let r = hub
        .request(
            "PUT",
            "/api/v1/users/alice/follow",
            &[("Authorization", &bob)],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        hub.request("PUT", "/api/v1/users/alice/follow", &[], b"")
            .await
            .status,
        401
    );
    let followers = hub
        .request("GET", "/api/v1/users/alice/followers", &[], b"")
        .await
        .json();
    assert_eq!(followers["users"], serde_json::json!(["bob"]));
    let alice = hub
        .request("GET", "/api/v1/users/alice", &[], b"")
        .await
        .json();
    assert_eq!(
        (alice["followers"].as_i64(), alice["packages"][0].as_str()),
        (Some(1), Some("alice/opensnoop"))
    );
    hub.state
        .db
        .toggle_star("bob", "carol/xdpdrop")
        .await
        .unwrap();
    let stars = hub
        .request("GET", "/api/v1/users/bob/stars", &[], b"")
        .await
        .json();
    assert_eq!(stars["packages"][0]["repository"], "carol/xdpdrop");
    let r = hub
        .request(
            "DELETE",
            "/api/v1/users/alice/follow",
            &[("Authorization", &bob)],
            b"",
        )
        .await;
    assert_eq!(r.json()["following"], false);
    let r = hub
        .request(
            "OPTIONS",
            "/api/v1/search",
            &[("Origin", "https://elsewhere.example")],
            b"",
        )
        .await;
    assert_eq!(
        (r.status, r.header("access-control-allow-origin")),
        (204, Some("*"))
    );
}

#[tokio::test]
async fn profiles_follows_and_the_feed_in_pages() {
    let hub = TestHub::start().await;
    three_packages(&hub).await;
    let bob = hub.browser("bob").await;
    let r = hub
        .post_form(
            &bob,
            "/settings/profile",
            "display_name=Bob+B.&bio=I+trace+things&links=https%3A%2F%2Fbob.example",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Profile saved."), "{}", r.text());
    let bad = hub
        .post_form(&bob, "/settings/profile", "links=javascript%3Aalert(1)")
        .await;
    assert!(
        bad.text().contains("is not an http(s) link"),
        "{}",
        bad.text()
    );
    let page = hub.request("GET", "/u/bob", &[], b"").await.text();
    assert!(
        page.contains("Bob B.") && page.contains("I trace things"),
        "{page}"
    );
    assert!(page.contains("href=\"https://bob.example\""), "{page}");
    let avatar = hub.request("GET", "/u/bob/avatar.svg", &[], b"").await;
    assert_eq!(avatar.header("content-type"), Some("image/svg+xml"));
    assert!(avatar.text().starts_with("<svg"), "{}", avatar.text());

    let r = hub.post_form(&bob, "/u/alice/follow", "follow=1").await;
    assert_eq!(r.status, 303, "{}", r.text());
    let alice_page = hub
        .request("GET", "/u/alice", &[("Cookie", &bob.0)], b"")
        .await
        .text();
    assert!(
        alice_page.contains("1 followers") && alice_page.contains(">Unfollow<"),
        "{alice_page}"
    );
    let followers = hub
        .request("GET", "/u/alice/followers", &[], b"")
        .await
        .text();
    assert!(followers.contains("href=\"/u/bob\""), "{followers}");
    let following = hub
        .request("GET", "/u/bob/following", &[], b"")
        .await
        .text();
    assert!(following.contains("href=\"/u/alice\""), "{following}");
    // alice publishes again: bob's home page and dashboard list it.
    let alice = crate::support::basic("alice", &hub.token("alice", &["push"], &[]).await);
    let m = meta("opensnoop", "0.3.0", "Trace open() calls", &["files"]);
    let r = hub
        .push_package(&alice, "alice/opensnoop", m, &bpf_object())
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let home = hub
        .request("GET", "/", &[("Cookie", &bob.0)], b"")
        .await
        .text();
    assert!(
        home.contains("href=\"/p/alice/opensnoop/v/0.3.0\""),
        "{home}"
    );
    // Password change: the current one first, then the new one twice.
    let wrong = hub
        .post_form(
            &bob,
            "/settings/password",
            "current_password=nope&new_password=new-password-1&new_password_again=new-password-1",
        )
        .await;
    assert!(
        wrong.text().contains("current password is wrong"),
        "{}",
        wrong.text()
    );
    let differ = hub
        .post_form(
            &bob,
            "/settings/password",
            "current_password=bob-password&new_password=new-password-1&new_password_again=other",
        )
        .await;
    assert!(differ.text().contains("differ"), "{}", differ.text());
    let done = hub.post_form(&bob, "/settings/password", "current_password=bob-password&new_password=new-password-1&new_password_again=new-password-1").await;
    assert!(done.text().contains("Password changed."), "{}", done.text());
    let body = serde_json::json!({"label": "x", "scopes": ["pull"]});
    let old = hub
        .post_json(
            "/api/v1/tokens",
            Some(&crate::support::basic("bob", "bob-password")),
            body.clone(),
        )
        .await;
    assert_eq!(old.status, 401, "{}", old.text());
    let new = hub
        .post_json(
            "/api/v1/tokens",
            Some(&crate::support::basic("bob", "new-password-1")),
            body,
        )
        .await;
    assert_eq!(new.status, 201, "{}", new.text());
    // Without the CSRF field a form is refused.
    let r = hub
        .request(
            "POST",
            "/u/alice/follow",
            &[
                ("Cookie", &bob.0),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            b"follow=0",
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn owners_deprecate_and_edit_admins_feature_hide_and_disable() {
    let hub = TestHub::start().await;
    three_packages(&hub).await;
    let alice = hub.browser("alice").await;
    let dash = hub
        .request("GET", "/dashboard", &[("Cookie", &alice.0)], b"")
        .await
        .text();
    assert!(dash.contains("id=\"manage-alice/opensnoop\""), "{dash}");
    let r = hub
        .post_form(
            &alice,
            "/dashboard/p/alice/opensnoop/deprecate",
            "message=Use+opensnoop2",
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let r = hub
        .post_form(
            &alice,
            "/dashboard/p/alice/opensnoop/edit",
            "description=Opens%2C+traced&keywords=files%2C+audit",
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let page = hub
        .request("GET", "/p/alice/opensnoop", &[], b"")
        .await
        .text();
    assert!(
        page.contains("Deprecated: Use opensnoop2") && page.contains("Opens, traced"),
        "{page}"
    );
    let found = hub
        .request("GET", "/api/v1/search?keyword=audit", &[], b"")
        .await
        .json();
    assert_eq!(found["packages"][0]["repository"], "alice/opensnoop");
    // Not hers.
    let r = hub
        .post_form(&alice, "/dashboard/p/bob/execsnoop/deprecate", "message=x")
        .await;
    assert_eq!(r.status, 403);

    // Admin: only with the role.
    let r = hub
        .post_form(
            &alice,
            "/admin/action",
            "target=carol/xdpdrop&action=feature",
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        hub.request("GET", "/admin", &[("Cookie", &alice.0)], b"")
            .await
            .status,
        403
    );
    hub.state
        .db
        .set_user_flag("alice", "is_admin", true)
        .await
        .unwrap();
    let admin = hub
        .request("GET", "/admin", &[("Cookie", &alice.0)], b"")
        .await
        .text();
    assert!(admin.contains("Feature carol/xdpdrop"), "{admin}");
    let r = hub
        .post_form(
            &alice,
            "/admin/action",
            "target=carol/xdpdrop&action=feature",
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let home = hub.request("GET", "/", &[], b"").await.text();
    let featured = &home[home.find("id=\"featured\"").expect("a featured section")..];
    assert!(
        featured[..featured.find("</section>").unwrap()].contains("carol/xdpdrop"),
        "{home}"
    );
    assert!(
        home.contains("3<span>packages</span>") && home.contains("3<span>publishers</span>"),
        "{home}"
    );
    let r = hub
        .post_form(&alice, "/admin/action", "target=bob/execsnoop&action=hide")
        .await;
    assert_eq!(r.status, 303);
    let found = hub
        .request("GET", "/api/v1/search?q=execsnoop", &[], b"")
        .await
        .json();
    assert_eq!(found["total"], 0);
    // A disabled user's session and tokens stop working.
    let carol_token = hub.token("carol", &["pull"], &[]).await;
    let carol = hub.browser("carol").await;
    let r = hub
        .post_form(&alice, "/admin/action", "target=carol&action=disable")
        .await;
    assert_eq!(r.status, 303);
    let tokens = hub
        .request("GET", "/tokens", &[("Cookie", &carol.0)], b"")
        .await;
    assert!(
        !tokens.text().contains("id=\"me\">carol<"),
        "{}",
        tokens.text()
    );
    let auth = crate::support::basic("carol", &carol_token);
    let r = hub
        .request(
            "PUT",
            "/api/v1/users/alice/follow",
            &[("Authorization", &auth)],
            b"",
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    let about = hub.request("GET", "/about", &[], b"").await.text();
    assert!(
        about.contains("href=\"mailto:hub-admins@example.com\""),
        "{about}"
    );
}
