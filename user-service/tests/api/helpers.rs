//! `TestApp`: a real user-service on a random port, on a fresh PostgreSQL database or SQLite file,
//! driven over HTTP like any client.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use converge_migrations::{ServiceDb, connect};
pub use converge_testkit::{
    Backend, assert_error, assert_method_not_allowed, fresh_postgres_database, on_both_backends,
};
use ed25519_dalek::SigningKey;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use user_service::keys::{self, SigningKeys};
use user_service::{Application, Config};

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// The key the app signs with, so tests can forge tokens that only differ in one claim.
    pub signing_key: SigningKey,
    pub context: user_service::context::AppContext,
    _data_dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Starts an app whose config `tweak` adjusts (rate limits, token lifetimes…).
    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        converge_shared::telemetry::init_tracing(Default::default(), "warn");
        let data_dir = tempfile::tempdir().expect("a temp dir");
        let signing_key = keys::generate();
        let mut config = Config {
            host: "127.0.0.1".into(),
            user_service_port: 0,
            data_dir: data_dir.path().display().to_string(),
            database_max_connections: 5,
            auth_rate_limit_per_ip: 1000,
            auth_rate_limit_per_account: 1000,
            ..Config::default()
        };
        if let Backend::Postgres = backend {
            config.database_url = Some(fresh_postgres_database().await);
        }
        tweak(&mut config);
        let db = connect(&config.database_url(), config.database_max_connections).await.expect("connect");
        ServiceDb::Users.migrate_up(&db).await.expect("migrate");
        let keys = SigningKeys::new(signing_key.clone(), vec![]).expect("keys");
        let app = Application::build_with(config, db, keys).await.expect("the app builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let context = app.context().clone();
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Self { address, client, signing_key, context, _data_dir: data_dir }
    }

    /// A second replica of this app: the same database, signing key and settings (Redis too), a
    /// port of its own.
    pub async fn replica(&self) -> Self {
        let data_dir = tempfile::tempdir().expect("a temp dir");
        let config = Config { data_dir: data_dir.path().display().to_string(), ..(*self.context.config).clone() };
        let db = connect(&config.database_url(), config.database_max_connections).await.expect("connect");
        let keys = SigningKeys::new(self.signing_key.clone(), vec![]).expect("keys");
        let app = Application::build_with(config, db, keys).await.expect("the replica builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let context = app.context().clone();
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Self { address, client, signing_key: self.signing_key.clone(), context, _data_dir: data_dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request sent")
    }

    pub async fn post_authed(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).bearer_auth(token).json(body).send().await.expect("request sent")
    }

    pub async fn get_authed(&self, path: &str, token: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request sent")
    }

    /// Registers `username` with a valid password and returns the response body.
    pub async fn register(&self, username: &str) -> Value {
        let res = self.post("/auth/register", &register_body(username)).await;
        assert_eq!(res.status(), StatusCode::CREATED, "registering {username}");
        res.json().await.unwrap()
    }

    /// Registers and returns the access token.
    pub async fn token_for(&self, username: &str) -> String {
        self.register(username).await["accessToken"].as_str().unwrap().to_owned()
    }

    pub async fn login(&self, login: &str, password: &str) -> Response {
        self.post("/auth/login", &json!({ "login": login, "password": password })).await
    }

    /// `POST /users/me/password` as the holder of `token`.
    pub async fn change_password(&self, token: &str, current: &str, new: &str) -> Response {
        self.post_authed("/users/me/password", token, &json!({ "currentPassword": current, "newPassword": new })).await
    }

    /// `POST /auth/refresh` with `refresh_token`.
    pub async fn refresh(&self, refresh_token: &Value) -> Response {
        self.post("/auth/refresh", &json!({ "refreshToken": refresh_token })).await
    }

    /// Runs a GraphQL operation, with an access token when given.
    pub async fn graphql(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        let mut req = self.client.post(self.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.expect("request sent");
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }
}

pub const PASSWORD: &str = "correct horse battery";

pub fn register_body(username: &str) -> Value {
    json!({
        "username": username,
        "email": format!("{username}@example.com"),
        "displayName": format!("{username} Example"),
        "password": PASSWORD,
    })
}

/// How many times the tests of a race run it: a device's request is at the racing point only some
/// of the time, so one round alone would often pass without the race happening.
pub const RACE_ROUNDS: usize = 12;

/// What a second device keeps doing to stay signed in while a race test ends its session.
pub enum Device {
    /// Refreshing its session, from this refresh token on.
    Refreshing(Value),
    /// Logging in as this user with [`PASSWORD`], again and again.
    LoggingIn(String),
}

impl TestApp {
    /// Runs `end`, a request meant to end `device`'s session, while `device` keeps its session up,
    /// then stops the device and checks that `end` answered 204 and that the newest refresh token
    /// the device was given is refused. `end` starts after the device's first request and
    /// `round % 4` more round trips, so that over the rounds it lands at every point of the
    /// device's requests.
    pub async fn assert_ends_session_kept_up(&self, round: usize, device: Device, end: impl Future<Output = Response>) {
        let (started, running) = oneshot::channel();
        let stop = AtomicBool::new(false);
        let ender = async {
            running.await.unwrap();
            for _ in 0..round % 4 {
                self.client.get(self.url("/ready")).send().await.expect("request sent");
            }
            let status = end.await.status();
            stop.store(true, Ordering::SeqCst);
            status
        };
        let (newest, status) = tokio::join!(self.keep_session(device, started, &stop), ender);
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_error(self.refresh(&newest).await, 401, "invalid_refresh_token").await;
    }

    /// Runs `device` until `stop` is set or its request is refused; signals `started` after the
    /// first request. Returns the newest refresh token it was given.
    async fn keep_session(&self, device: Device, started: oneshot::Sender<()>, stop: &AtomicBool) -> Value {
        let mut newest = match &device {
            Device::Refreshing(token) => token.clone(),
            Device::LoggingIn(_) => Value::Null,
        };
        let mut started = Some(started);
        loop {
            let res = match &device {
                Device::Refreshing(_) => self.refresh(&newest).await,
                Device::LoggingIn(login) => self.login(login, PASSWORD).await,
            };
            if res.status() != StatusCode::OK {
                return newest;
            }
            newest = res.json::<Value>().await.unwrap()["refreshToken"].clone();
            if let Some(started) = started.take() {
                started.send(()).unwrap();
            }
            if stop.load(Ordering::SeqCst) {
                return newest;
            }
        }
    }
}
