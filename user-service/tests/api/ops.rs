use reqwest::StatusCode;
use serde_json::Value;

use converge_testkit::{PgLink, postgres_admin_url};

use crate::helpers::{Backend, PASSWORD, TestApp, assert_error, on_both_backends};

/// PostgreSQL becomes unreachable, then comes back. Meanwhile sign-in, a read and the readiness
/// check answer 503 / `unavailable` (worth retrying, unlike `internal`); afterwards the same
/// sign-in works, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgresql_is_unreachable_requests_answer_unavailable_and_work_after() {
    let link = PgLink::start(&postgres_admin_url()).await;
    let app = TestApp::spawn_with(Backend::Postgres, |config| {
        config.database_url = config.database_url.as_deref().map(|url| link.url(url));
    })
    .await;
    let token = app.token_for("ana").await;

    link.set_down(true);
    let login = app.login("ana", PASSWORD).await;
    assert_eq!(login.headers().get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));
    assert_error(login, 503, "unavailable").await;
    assert_error(app.get_authed("/users/me", &token).await, 503, "unavailable").await;
    assert_error(app.client.get(app.url("/ready")).send().await.unwrap(), 503, "unavailable").await;

    link.set_down(false);
    assert_eq!(app.login("ana", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(app.get_authed("/users/me", &token).await.status(), StatusCode::OK);
}

on_both_backends! {
    async fn health_and_readiness_answer(backend) {
        let app = TestApp::spawn(backend).await;
        let health: Value = app.client.get(app.url("/health")).send().await.unwrap().json().await.unwrap();
        assert_eq!(health["status"], "ok");
        let ready = app.client.get(app.url("/ready")).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
        assert_eq!(ready.json::<Value>().await.unwrap()["database"], "up");
    }

    async fn metrics_count_requests_by_route_and_status(backend) {
        let app = TestApp::spawn(backend).await;
        app.register("ana").await;
        let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("http_requests_total") && l.contains(r#"route="/auth/register""#) && l.contains(r#"status="201""#))
            .unwrap_or_else(|| panic!("no register counter in:\n{text}"));
        let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(count >= 1.0);
        assert!(text.contains("http_request_duration_seconds_bucket"));
    }

    async fn openapi_document_and_browsable_ui_are_served(backend) {
        let app = TestApp::spawn(backend).await;
        let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
        for path in ["/auth/register", "/auth/login", "/auth/refresh", "/users", "/users/{id}", "/apps/users/{external_id}"] {
            assert!(doc["paths"][path].is_object(), "{path} documented");
        }
        converge_testkit::assert_server_errors_documented(&doc);
        let ui = app.client.get(app.url("/docs/")).send().await.unwrap();
        assert_eq!(ui.status(), StatusCode::OK);
        assert!(ui.text().await.unwrap().contains("swagger"), "the UI page is served from the binary");
        let graphiql = app.client.get(app.url("/graphql")).send().await.unwrap();
        assert_eq!(graphiql.status(), StatusCode::OK);
        assert!(graphiql.text().await.unwrap().to_lowercase().contains("graphiql"));
    }
}
