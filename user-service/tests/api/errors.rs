use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_error, on_both_backends};

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

    async fn unknown_routes_and_wrong_methods_get_the_error_envelope(backend) {
        let app = TestApp::spawn(backend).await;
        assert_error(app.client.get(app.url("/nope")).send().await.unwrap(), 404, "not_found").await;
        assert_error(app.client.get(app.url("/auth/login")).send().await.unwrap(), 404, "not_found").await;
    }

    async fn responses_carry_a_request_id(backend) {
        let app = TestApp::spawn(backend).await;
        let res = app.client.get(app.url("/health")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "request id {id}");
    }
}
