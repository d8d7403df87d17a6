//! Building and running chat-service: the same code path for production and tests.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use converge_migrations::{ServiceDb, connect};
use converge_shared::auth::{Authenticator, JwksClient};
use converge_shared::http as errors;
use converge_shared::telemetry::observe_request;
use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;
use tracing_actix_web::TracingLogger;

use crate::config::Config;
use crate::context::AppContext;
use crate::hub::{self, Hub};
use crate::relay::local::LocalRelay;
use crate::service::messages::DbMessages;
use crate::{http, ws};

/// Events buffered between the relay and the hub.
const INBOUND_BUFFER: usize = 16 * 1024;

/// A bound, not yet running chat-service.
pub struct Application {
    server: Server,
    port: u16,
    context: AppContext,
}

impl Application {
    /// Connects to and migrates the database, then binds.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = connect(&config.database_url(), config.database_max_connections)
            .await
            .context("connecting to the database")?;
        ServiceDb::Chat.migrate_up(&db).await.context("migrating the database")?;
        let jwks = JwksClient::new(config.jwks_url());
        if let Err(e) = jwks.refresh().await {
            // Not fatal: user-service may start after us; the first token with an unknown key fetches again.
            tracing::warn!(error = format!("{e:#}"), "user-service's JWKS is not reachable yet");
        }
        Self::build_with(config, db, Authenticator::Jwks(jwks)).await
    }

    /// Binds around a connected, migrated database and a token authenticator.
    pub async fn build_with(config: Config, db: DatabaseConnection, auth: Authenticator) -> anyhow::Result<Self> {
        converge_shared::telemetry::metrics_handle();
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_BUFFER);
        let relay = Arc::new(LocalRelay::new(inbound_tx));
        let hub = Hub::new(relay, Arc::new(DbMessages(db.clone())));
        tokio::spawn(hub::pump(hub.clone(), inbound_rx));
        let context = AppContext {
            db,
            hub,
            http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build()?,
            config: Arc::new(config),
        };
        let listener = TcpListener::bind((context.config.host.as_str(), context.config.chat_service_port))
            .with_context(|| format!("binding {}:{}", context.config.host, context.config.chat_service_port))?;
        let port = listener.local_addr()?.port();
        let server = serve(listener, context.clone(), auth)?;
        Ok(Self { server, port, context })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn context(&self) -> &AppContext {
        &self.context
    }

    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        tracing::info!(port = self.port, "chat-service listening");
        self.server.await
    }
}

fn serve(listener: TcpListener, context: AppContext, auth: Authenticator) -> anyhow::Result<Server> {
    let max_body = context.config.max_body_bytes;
    let auth = web::Data::new(auth);
    let data = web::Data::new(context);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(auth.clone())
            .app_data(errors::json_config(max_body))
            .app_data(web::PayloadConfig::new(max_body))
            .app_data(errors::query_config())
            .app_data(errors::path_config())
            .wrap(from_fn(observe_request))
            .wrap(TracingLogger::default())
            .configure(http::configure)
            .route("/ws", web::get().to(ws::upgrade))
            .default_service(web::to(errors::not_found))
    })
    .shutdown_timeout(10)
    .listen(listener)?
    .run();
    Ok(server)
}
