//! `converge`: the whole stack in one process, on SQLite, with nothing to set up.
//!
//! The same services as the scaled deployment, started side by side: user-service on
//! `USER_SERVICE_PORT` (3000). Each reads its configuration from the environment as it would alone.

use anyhow::Context;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let users: user_service::Config = converge_shared::config::load().context("reading the configuration")?;
    converge_shared::telemetry::init_tracing(users.log_format, "info");
    let users = user_service::Application::build(users).await?;
    tracing::info!("Converge is up: user-service on http://localhost:{}", users.port());
    users.run_until_stopped().await?;
    Ok(())
}
