//! Routing errors in the envelope: a known route asked with another method is 405 naming the
//! methods it takes, an unknown path is 404, and each door still answers its own methods.

use reqwest::Method;

use crate::helpers::{Backend, TestStack, assert_error, assert_method_not_allowed, metric};

// Routing does not depend on the database: one backend is enough.
async fn stack() -> TestStack {
    TestStack::spawn(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_route_asked_with_another_method_is_405_naming_the_methods_it_takes() {
    let stack = stack().await;
    let chat = uuid::Uuid::now_v7();
    let send = |method: Method, path: String| stack.client.request(method, format!("{}{path}", stack.chat_url)).send();

    let cases: [(Method, String, &[&str]); 12] = [
        (Method::PUT, "/chats".into(), &["GET", "POST"]),
        (Method::DELETE, format!("/chats/{chat}"), &["GET", "PATCH"]),
        (Method::POST, format!("/chats/{chat}/messages/1"), &["DELETE", "PATCH"]),
        (Method::GET, format!("/chats/{chat}/messages/1/reactions/x"), &["DELETE", "PUT"]),
        (Method::GET, format!("/chats/{chat}/participants/{chat}/role"), &["PUT"]),
        (Method::GET, format!("/chats/{chat}/participants/{chat}"), &["DELETE"]),
        (Method::PATCH, format!("/chats/{chat}/messages"), &["GET", "POST"]),
        (Method::POST, "/ws".into(), &["GET"]),
        (Method::PUT, "/graphql".into(), &["GET", "POST"]),
        (Method::POST, "/metrics".into(), &["GET"]),
        // `/web/{path}` (the files, GET and HEAD) matches too.
        (Method::POST, "/web/config.json".into(), &["GET", "HEAD"]),
        (Method::DELETE, "/".into(), &["GET", "HEAD"]),
    ];
    for (method, path, allowed) in cases {
        assert_method_not_allowed(send(method, path).await.unwrap(), allowed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_path_is_404_whatever_the_method_and_counted_as_unmatched() {
    let stack = stack().await;
    let url = |path: &str| format!("{}{path}", stack.chat_url);
    let counted = r#"http_requests_total{method="DELETE",route="unmatched",status="404"}"#;
    let before = metric(&stack.client.get(url("/metrics")).send().await.unwrap().text().await.unwrap(), counted);

    assert_error(stack.client.get(url("/nope")).send().await.unwrap(), 404, "not_found").await;
    assert_error(stack.client.delete(url("/chats/x/nope")).send().await.unwrap(), 404, "not_found").await;
    assert_error(stack.client.put(url("/web/")).send().await.unwrap(), 404, "not_found").await;

    let after = metric(&stack.client.get(url("/metrics")).send().await.unwrap().text().await.unwrap(), counted);
    assert!(after > before, "{counted}: {before} → {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_doors_still_answer_their_own_methods() {
    let stack = stack().await;
    for path in ["/health", "/ready", "/metrics", "/openapi.json", "/docs/", "/graphql", "/web/config.json"] {
        let res = stack.client.get(format!("{}{path}", stack.chat_url)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "GET {path}");
    }
}
