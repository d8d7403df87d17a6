use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, assert_error, assert_method_not_allowed, on_both_backends};

on_both_backends! {
    async fn malformed_bodies_get_the_error_envelope(backend) {
        let app = TestApp::spawn_with(backend, |c| c.max_body_bytes = 1024).await;
        let post_raw = |body: &'static str, content_type: &'static str| {
            app.client.post(app.url("/auth/login")).header("content-type", content_type).body(body).send()
        };
        assert_error(post_raw("{not json", "application/json").await.unwrap(), 400, "bad_request").await;
        assert_error(post_raw("login=a", "application/x-www-form-urlencoded").await.unwrap(), 415, "unsupported_media_type").await;
        assert_error(post_raw(r#"{"login": 5, "password": "x"}"#, "application/json").await.unwrap(), 422, "validation_failed").await;
        assert_error(post_raw(r#"{"password": "x"}"#, "application/json").await.unwrap(), 422, "validation_failed").await;
        assert_error(post_raw(r#"{"login": "a", "password": "x", "admin": true}"#, "application/json").await.unwrap(), 422, "validation_failed").await;

        let huge = json!({ "login": "a".repeat(4096), "password": "x" });
        assert_error(app.post("/auth/login", &huge).await, 413, "payload_too_large").await;
    }

    async fn unknown_routes_get_not_found_whatever_the_method(backend) {
        let app = TestApp::spawn(backend).await;
        assert_error(app.client.get(app.url("/nope")).send().await.unwrap(), 404, "not_found").await;
        assert_error(app.client.delete(app.url("/auth/login/nope")).send().await.unwrap(), 404, "not_found").await;
        assert_error(app.client.put(app.url("/users/me/nope")).send().await.unwrap(), 404, "not_found").await;
    }

    async fn a_known_route_asked_with_another_method_is_405_naming_the_methods_it_takes(backend) {
        let app = TestApp::spawn(backend).await;
        let send = |method: Method, path: &str| app.client.request(method, app.url(path)).send();
        assert_method_not_allowed(send(Method::DELETE, "/auth/login").await.unwrap(), &["POST"]).await;
        assert_method_not_allowed(send(Method::GET, "/auth/login").await.unwrap(), &["POST"]).await;
        // `/users/me` is also matched by `/users/{id}`: both routes' methods count.
        assert_method_not_allowed(send(Method::DELETE, "/users/me").await.unwrap(), &["GET", "PATCH"]).await;
        assert_method_not_allowed(send(Method::POST, "/apps/users/u1").await.unwrap(), &["GET", "PUT"]).await;
        assert_method_not_allowed(send(Method::PUT, "/graphql").await.unwrap(), &["GET", "POST"]).await;
        assert_method_not_allowed(send(Method::POST, "/health").await.unwrap(), &["GET"]).await;
        assert_method_not_allowed(send(Method::POST, "/openapi.json").await.unwrap(), &["GET"]).await;
    }

    async fn responses_carry_a_request_id(backend) {
        let app = TestApp::spawn(backend).await;
        let res = app.client.get(app.url("/health")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "request id {id}");
    }
}
