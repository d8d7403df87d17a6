//! CORS: the web client, served by chat-service from another origin, may call the API; other
//! origins get no CORS grant.

use reqwest::{Method, StatusCode};

use crate::helpers::{Backend, TestApp};

const WEB_ORIGIN: &str = "http://localhost:3002";

async fn app_allowing(origins: &str) -> TestApp {
    let origins = origins.to_owned();
    TestApp::spawn_with(Backend::Sqlite, move |c| c.cors_allowed_origins = origins).await
}

fn preflight(app: &TestApp, origin: &str) -> reqwest::RequestBuilder {
    app.client
        .request(Method::OPTIONS, app.url("/auth/login"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,authorization")
}

#[tokio::test]
async fn preflight_from_an_allowed_origin_is_granted_without_credentials() {
    let app = app_allowing("http://localhost:3002, http://127.0.0.1:3002").await;

    let res = preflight(&app, WEB_ORIGIN).send().await.unwrap();

    assert_eq!(res.status(), StatusCode::OK);
    let header = |name: &str| res.headers().get(name).map(|v| v.to_str().unwrap().to_lowercase());
    assert_eq!(header("access-control-allow-origin").as_deref(), Some(WEB_ORIGIN));
    assert!(header("access-control-allow-methods").is_some_and(|m| m.contains("post")));
    let allowed_headers = header("access-control-allow-headers").unwrap_or_default();
    assert!(allowed_headers.contains("authorization") && allowed_headers.contains("content-type"), "{allowed_headers}");
    assert_eq!(header("access-control-allow-credentials"), None, "tokens never ride on cookies");
}

#[tokio::test]
async fn preflight_from_another_origin_gets_no_grant() {
    let app = app_allowing(WEB_ORIGIN).await;

    let res = preflight(&app, "https://evil.example").send().await.unwrap();

    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert_ne!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_actual_request_from_the_web_client_exposes_the_request_id() {
    let app = app_allowing(WEB_ORIGIN).await;

    let res = app.client.get(app.url("/health")).header("origin", WEB_ORIGIN).send().await.unwrap();

    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["access-control-allow-origin"], WEB_ORIGIN);
    let exposed = res.headers()["access-control-expose-headers"].to_str().unwrap().to_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
}

#[tokio::test]
async fn a_wrong_method_from_the_web_client_exposes_allow() {
    let app = app_allowing(WEB_ORIGIN).await;

    let res = app.client.delete(app.url("/auth/login")).header("origin", WEB_ORIGIN).send().await.unwrap();

    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["access-control-allow-origin"], WEB_ORIGIN);
    let exposed = res.headers()["access-control-expose-headers"].to_str().unwrap().to_lowercase();
    assert!(exposed.contains("allow"), "{exposed}");
}

#[tokio::test]
async fn a_wildcard_admits_any_origin() {
    let app = app_allowing("*").await;

    let res = preflight(&app, "https://app.example").send().await.unwrap();

    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
}
