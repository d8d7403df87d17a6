//! Building and running chat-service: the same code path for production and tests.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use converge_migrations::{ServiceDb, connect, connect_with_generic_plans};
use converge_shared::auth::{Authenticator, JwksClient};
use converge_shared::http as errors;
use converge_shared::http::listen;
use converge_shared::rate_limit::PerKeyLimit;
use converge_shared::telemetry::observe_request;
use sea_orm::{DatabaseConnection, DbBackend};
use tokio::sync::mpsc;
use tracing_actix_web::TracingLogger;

use crate::config::Config;
use crate::context::AppContext;
use crate::hub::MessageSource;
use crate::hub::{self, Hub};
use crate::presence::{Presence, RedisPresence};
use crate::relay::local::LocalRelay;
use crate::relay::redis::{Keys, RedisRelay, SharedConnection};
use crate::relay::{Relay, SessionsHeard};
use crate::service::announcer::Announcer;
use crate::service::arrivals::Arrivals;
use crate::service::attachments::{self, Uploads};
use crate::service::messages::DbMessages;
use crate::service::receipts::{self, DeliveryReceipts};
use crate::service::writer::MessageWriter;
use crate::window::{HotWindow, NoWindow, RedisWindow, WindowedSource};
use crate::{graphql, http, ws};

/// Events buffered between the relay and the hub.
const INBOUND_BUFFER: usize = 16 * 1024;
/// The message writer's own connections on PostgreSQL: it commits one batch at a time.
const WRITER_CONNECTIONS: u32 = 2;

/// A bound, not yet running chat-service.
pub struct Application {
    server: Server,
    port: u16,
    context: AppContext,
    shutdown: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
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
        Self::build_with(config, db, Authenticator::jwks(jwks, Default::default())).await
    }

    /// Binds around a connected, migrated database and a token authenticator.
    pub async fn build_with(config: Config, db: DatabaseConnection, auth: Authenticator) -> anyhow::Result<Self> {
        converge_shared::telemetry::metrics_handle();
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_BUFFER);
        // Ended sessions: their tokens refused by `auth`, their connections closed by the hub.
        let sessions = SessionsHeard { ended: auth.ended_sessions().clone(), inbound: inbound_tx.clone() };
        sessions.clone().listen_in_process();
        let scale = Scale::start(&config, &db, inbound_tx, sessions)?;
        let hub = Hub::new(scale.relay.clone(), scale.source);
        let pump = hub::Pump::new(hub.clone(), inbound_rx);
        if let Some(mut reconnected) = scale.reconnected {
            let (hub, reads_shared_up_to) = (hub.clone(), config.read_receipts_max_chat_members);
            tokio::spawn(async move {
                while reconnected.recv().await.is_some() {
                    hub.catch_up_all(reads_shared_up_to).await;
                }
            });
        }
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let announcer = Announcer::spawn(scale.window.clone(), hub.relay().clone());
        // On PostgreSQL the writer's one statement gets connections that plan it once: planned at
        // every execution, it cost PostgreSQL more CPU than running it.
        let writer = match db.get_database_backend() {
            DbBackend::Postgres => {
                let url = config.database_url();
                MessageWriter::spawn_on_own_thread(
                    move || async move { connect_with_generic_plans(&url, WRITER_CONNECTIONS).await },
                    announcer,
                )
                .await
                .context("connecting the message writer to the database")?
            }
            _ => MessageWriter::spawn(db.clone(), announcer),
        };
        let uploads = Uploads::open(&config).context("opening the uploads store")?;
        let context = AppContext {
            receipts: DeliveryReceipts::default(),
            writer,
            arrivals: Arrivals::spawn(db.clone(), hub.clone()),
            db,
            hub,
            write_limits: Arc::new(PerKeyLimit::per_second(config.user_writes_per_second)),
            invite_limits: Arc::new(PerKeyLimit::per_minute(config.chat_invites_per_minute)),
            http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build()?,
            config: Arc::new(config),
            shutdown: shutdown_rx,
            window: scale.window,
            presence: scale.presence,
            uploads,
        };
        let receipt_interval = std::time::Duration::from_millis(context.config.delivery_receipt_ms.max(1));
        tokio::spawn(receipts::run(context.clone(), receipt_interval));
        tokio::spawn(attachments::sweep_periodically(context.clone()));
        let listener = listen(&context.config.host, context.config.chat_service_port, context.config.listen_backlog)
            .with_context(|| format!("binding {}:{}", context.config.host, context.config.chat_service_port))?;
        let port = listener.local_addr()?.port();
        let server = serve(listener, context.clone(), auth, pump)?;
        Ok(Self { server, port, context, shutdown: Arc::new(shutdown) })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn context(&self) -> &AppContext {
        &self.context
    }

    /// A handle that shuts this instance down gracefully, as SIGTERM does.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { notify: self.shutdown.clone(), server: self.server.handle() }
    }

    /// Serves until SIGTERM or SIGINT (or [`ShutdownHandle::shutdown`]), then shuts down gracefully.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        tracing::info!(port = self.port, "chat-service listening");
        let handle = self.shutdown_handle();
        let signals = tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: telling clients to reconnect elsewhere");
            handle.shutdown().await;
        });
        let result = self.server.await;
        signals.abort();
        result
    }
}

/// Stops an instance: connections are told to reconnect elsewhere (close 1012), new connections
/// are refused, in-flight requests finish (up to 10 s).
#[derive(Clone)]
pub struct ShutdownHandle {
    notify: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    server: actix_web::dev::ServerHandle,
}

impl ShutdownHandle {
    pub async fn shutdown(&self) {
        self.notify.send_replace(true);
        self.server.stop(true).await;
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn serve(listener: TcpListener, context: AppContext, auth: Authenticator, pump: hub::Pump) -> anyhow::Result<Server> {
    let max_body = context.config.max_body_bytes;
    let workers = context.config.http_workers;
    let max_connections = context.config.max_connections_per_worker.max(1);
    let auth = web::Data::new(auth);
    let schema = web::Data::new(graphql::build_schema(context.clone()));
    let data = web::Data::new(context);
    // Runs on each worker's thread as it starts (and restarts).
    let server = HttpServer::new(move || {
        pump.start_here();
        App::new()
            .app_data(data.clone())
            .app_data(auth.clone())
            .app_data(schema.clone())
            .configure(errors::configure_extractors(max_body))
            .wrap(from_fn(errors::method_not_allowed))
            .wrap(from_fn(observe_request))
            .wrap(TracingLogger::default())
            .configure(http::configure)
            .configure(graphql::configure)
            .route("/ws", web::get().to(ws::upgrade))
            .configure(errors::configure_fallback)
    });
    // Unset (0), actix's own default: a worker per CPU.
    let server = if workers == 0 { server } else { server.workers(workers) };
    let server = server
        .max_connections(max_connections)
        .shutdown_timeout(10)
        // Small frames (acks, deliveries) go out at once instead of waiting on Nagle's algorithm and the
        // peer's delayed ACK (~40 ms each; docs/benchmarks-history.md has the A/B).
        .tcp_nodelay(true)
        // Signals are handled in `run_until_stopped`, which tells WebSocket clients before stopping.
        .disable_signals()
        .listen(listener)?
        .run();
    Ok(server)
}

/// What differs between one instance and many: the relay, the hot window, presence.
struct Scale {
    relay: Arc<dyn Relay>,
    source: Arc<dyn MessageSource>,
    window: Arc<dyn HotWindow>,
    presence: Presence,
    /// Signals each (re)connection of the relay, after which the hub catches up from the database.
    reconnected: Option<mpsc::Receiver<()>>,
}

impl Scale {
    /// Redis when `REDIS_URL` is set, the in-process equivalents otherwise.
    fn start(
        config: &Config,
        db: &DatabaseConnection,
        inbound: mpsc::Sender<(crate::relay::Topic, crate::relay::ChatEvent)>,
        sessions: SessionsHeard,
    ) -> anyhow::Result<Self> {
        let database: Arc<dyn MessageSource> = Arc::new(DbMessages(db.clone()));
        let Some(url) = config.redis_url.as_deref().filter(|u| !u.trim().is_empty()) else {
            let relay: Arc<dyn Relay> = Arc::new(LocalRelay::new(inbound));
            let presence = Presence::start(db.clone(), relay.clone(), None, config.presence_max_chat_members);
            return Ok(Self { relay, source: database, window: Arc::new(NoWindow), presence, reconnected: None });
        };
        let instance = uuid::Uuid::new_v4();
        let keys = Keys::new(&config.redis_prefix);
        let pool = crate::relay::redis::pool(url)?;
        let (relay, reconnected) = RedisRelay::start(url, keys.clone(), pool.clone(), instance, inbound, sessions)?;
        let relay: Arc<dyn Relay> = Arc::new(relay);
        let window: Arc<dyn HotWindow> =
            Arc::new(RedisWindow::new(SharedConnection::new(pool.clone()), keys.clone(), config.chat_window_size));
        let ttl = std::time::Duration::from_secs(config.presence_ttl_secs.max(1));
        let presence = Presence::start(
            db.clone(),
            relay.clone(),
            Some(RedisPresence { shared: SharedConnection::new(pool.clone()), pool, keys, instance, ttl }),
            config.presence_max_chat_members,
        );
        tracing::info!(%instance, "relaying over Redis");
        Ok(Self {
            relay,
            source: Arc::new(WindowedSource { window: window.clone(), database }),
            window,
            presence,
            reconnected: Some(reconnected),
        })
    }
}
