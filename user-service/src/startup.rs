//! Building and running the server: the same code path for production and for tests.

use std::net::TcpListener;
use std::sync::Arc;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use converge_migrations::{ServiceDb, connect};
use converge_shared::auth::Authenticator;
use converge_shared::http as errors;
use converge_shared::http::listen;
use converge_shared::telemetry::observe_request;
use sea_orm::DatabaseConnection;
use tracing_actix_web::TracingLogger;

use crate::config::Config;
use crate::context::AppContext;
use crate::endings::SessionEndings;
use crate::graphql;
use crate::http;
use crate::keys::SigningKeys;
use crate::service::passwords::Passwords;
use crate::service::rate_limit::AuthRateLimits;

/// A bound, not yet running user-service.
pub struct Application {
    server: Server,
    port: u16,
    context: AppContext,
}

impl Application {
    /// Connects to the database, applies pending migrations, loads the signing keys and binds the port.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = connect(&config.database_url(), config.database_max_connections)
            .await
            .context("connecting to the database")?;
        ServiceDb::Users.migrate_up(&db).await.context("migrating the database")?;
        let keys = SigningKeys::load(&config)?;
        Self::build_with(config, db, keys).await
    }

    /// Binds the server around a connected, migrated database and loaded keys.
    pub async fn build_with(config: Config, db: DatabaseConnection, keys: SigningKeys) -> anyhow::Result<Self> {
        // Install the metrics recorder before the first request records anything.
        converge_shared::telemetry::metrics_handle();
        let context = AppContext {
            db,
            keys: Arc::new(keys),
            passwords: Arc::new(Passwords::new().await?),
            limits: Arc::new(AuthRateLimits::new(config.auth_rate_limit_per_ip, config.auth_rate_limit_per_account)),
            endings: Arc::new(SessionEndings::new(&config)?),
            config: Arc::new(config),
        };
        let listener = listen(&context.config.host, context.config.user_service_port, context.config.listen_backlog)
            .with_context(|| format!("binding {}:{}", context.config.host, context.config.user_service_port))?;
        let port = listener.local_addr()?.port();
        let server = serve(listener, context.clone())?;
        Ok(Self { server, port, context })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn context(&self) -> &AppContext {
        &self.context
    }

    /// Serves until SIGTERM or SIGINT, then finishes in-flight requests (up to 10 s) and returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        tracing::info!(port = self.port, "user-service listening");
        self.server.await
    }

    /// The server handle, to stop it from the outside.
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

fn serve(listener: TcpListener, context: AppContext) -> anyhow::Result<Server> {
    let schema = web::Data::new(graphql::build_schema(context.clone()));
    let max_body = context.config.max_body_bytes;
    let authenticator =
        web::Data::new(Authenticator::local(context.keys.verifier().clone(), context.endings.ended.clone()));
    let origins = checked_origins(&context.config)?;
    let data = web::Data::new(context);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(schema.clone())
            .app_data(authenticator.clone())
            .configure(errors::configure_extractors(max_body))
            .wrap(from_fn(errors::method_not_allowed))
            .wrap(from_fn(observe_request))
            .wrap(TracingLogger::default())
            .wrap(cors(&origins))
            .configure(http::configure)
            .service(
                web::resource("/graphql")
                    .route(web::post().to(graphql::graphql))
                    .route(web::get().to(graphql::graphiql)),
            )
            .configure(errors::configure_fallback)
    })
    .shutdown_timeout(10)
    // Small frames (acks, deliveries) go out at once instead of waiting on Nagle's algorithm and the
    // peer's delayed ACK (~40 ms each; docs/benchmarks-history.md has the A/B).
    .tcp_nodelay(true)
    .listen(listener)?
    .run();
    Ok(server)
}

/// Lets the web client (served by chat-service, another origin) call the API from a browser. No
/// credentials mode: tokens are sent explicitly in `Authorization` or in bodies, never as cookies.
fn cors(origins: &[String]) -> Cors {
    let cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([actix_web::http::header::AUTHORIZATION, actix_web::http::header::CONTENT_TYPE])
        .expose_headers(["x-request-id", "retry-after", "allow"])
        .max_age(600);
    if origins.iter().any(|o| o == "*") {
        return cors.send_wildcard().allow_any_origin();
    }
    origins.iter().fold(cors, |cors, origin| cors.allowed_origin(origin))
}

/// The configured origins, refused at start (not at the first request) when one is not an origin.
fn checked_origins(config: &Config) -> anyhow::Result<Vec<String>> {
    config
        .cors_allowed_origins()
        .into_iter()
        .map(|origin| {
            if origin == "*" {
                return Ok(origin.to_owned());
            }
            let uri: actix_web::http::Uri =
                origin.parse().with_context(|| format!("CORS_ALLOWED_ORIGINS: {origin:?}"))?;
            let is_origin =
                uri.scheme().is_some() && uri.host().is_some() && uri.path_and_query().is_none_or(|p| p == "/");
            anyhow::ensure!(is_origin, "CORS_ALLOWED_ORIGINS: {origin:?} is not scheme://host[:port]");
            Ok(origin.trim_end_matches('/').to_owned())
        })
        .collect()
}
