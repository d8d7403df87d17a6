//! What every Converge integration test needs: the backend it runs on, a fresh PostgreSQL
//! database per test so no test sees another's rows, assertions on the error envelope, and a link
//! to PostgreSQL that a test can break ([`PgLink`]), and a look at this process's sockets
//! ([`tcp_nodelay_of_sockets`]).

mod pglink;
mod sockets;

pub use pglink::{Cut, PgLink};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
pub use sockets::tcp_nodelay_of_sockets;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// The PostgreSQL server tests create their databases on (`TEST_DATABASE_URL`, a URL with rights to
/// `CREATE DATABASE`; `scripts/test` sets it).
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty database with a unique name and returns its URL. Names start with
/// `CONVERGE_TEST_DB_PREFIX` (default `converge_test_`): `scripts/test` gives each run its own
/// prefix and drops exactly its run's databases, so runs side by side do not pull databases from
/// under each other.
pub async fn fresh_postgres_database() -> String {
    let admin_url = postgres_admin_url();
    let admin = Database::connect(&admin_url).await.expect("PostgreSQL is reachable at TEST_DATABASE_URL");
    let prefix = std::env::var("CONVERGE_TEST_DB_PREFIX").unwrap_or_else(|_| "converge_test_".into());
    let name = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("CREATE DATABASE");
    let (base, _) = admin_url.rsplit_once('/').expect("a database URL ends in /dbname");
    format!("{base}/{name}")
}

/// Declares each test twice, in modules `postgres` and `sqlite`, binding the backend to the name
/// given in parentheses.
#[macro_export]
macro_rules! on_both_backends {
    ($(async fn $name:ident($backend:ident) $body:block)*) => {
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let $backend = $crate::Backend::Postgres;
                $body
            })*
        }
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let $backend = $crate::Backend::Sqlite;
                $body
            })*
        }
    };
}

/// A user registered through user-service's public API, with their access token.
#[derive(Debug, Clone)]
pub struct User {
    pub id: uuid::Uuid,
    pub token: String,
}

/// Registers `username` (display name `display_name`) on the user-service at `users_url`.
pub async fn register(client: &reqwest::Client, users_url: &str, username: &str, display_name: &str) -> User {
    let body = json!({
        "username": username,
        "email": format!("{username}@example.com"),
        "displayName": display_name,
        "password": "correct horse battery",
    });
    let res = client.post(format!("{users_url}/auth/register")).json(&body).send().await.expect("user-service answers");
    assert_eq!(res.status().as_u16(), 201, "registering {username}");
    let body: Value = res.json().await.expect("a JSON body");
    User {
        id: body["user"]["id"].as_str().and_then(|id| id.parse().ok()).expect("the new user's id"),
        token: body["accessToken"].as_str().expect("an access token").to_owned(),
    }
}

/// The value of `series` (a metric name with its labels, as `/metrics` prints them) in a
/// Prometheus text, 0 when absent. Metrics are process-wide: compare before and after.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter_map(|line| line.strip_prefix(series))
        .filter_map(|rest| rest.strip_prefix(' '))
        .filter_map(|value| value.trim().parse::<f64>().ok())
        .sum()
}

/// Asserts the status and the error envelope's code, and returns the envelope.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "status");
    let body: Value = res.json().await.expect("an error body is JSON");
    assert_eq!(body["error"]["code"], code, "error code in {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "a message in {body}");
    body
}

/// Asserts that an OpenAPI document gives every operation but `/health` a 500 and a 503 answer,
/// the shared ones (`Internal`, `Unavailable` with its `Retry-After`) where the route declares none.
pub fn assert_server_errors_documented(doc: &Value) {
    let unavailable = &doc["components"]["responses"]["Unavailable"];
    assert_eq!(unavailable["headers"]["Retry-After"]["schema"]["type"], "integer", "{unavailable}");
    let mut shared = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let responses = &operation["responses"];
            if path == "/health" {
                assert!(responses.get("503").is_none(), "/health reads nothing: {responses}");
                continue;
            }
            assert!(responses["500"].is_object() && responses["503"].is_object(), "{method} {path}: {responses}");
            if responses["503"]["$ref"] == "#/components/responses/Unavailable" {
                shared += 1;
            }
        }
    }
    assert!(shared > 0, "the routes without a 503 of their own get the shared one");
}

/// Asserts a 405 `method_not_allowed` whose `Allow` header names exactly `allowed`, in any order.
pub async fn assert_method_not_allowed(res: reqwest::Response, allowed: &[&str]) {
    let url = res.url().clone();
    let allow = res.headers().get("allow").map(|v| v.to_str().expect("an ASCII Allow").to_owned());
    let mut named: Vec<&str> = allow.as_deref().unwrap_or_default().split(", ").collect();
    let mut expected = allowed.to_vec();
    named.sort_unstable();
    expected.sort_unstable();
    assert_eq!(named, expected, "Allow of {url}: {allow:?}");
    assert_error(res, 405, "method_not_allowed").await;
}
