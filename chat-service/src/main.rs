use anyhow::Context;
use chat_service::{Application, Config};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = converge_shared::config::load().context("reading the configuration")?;
    converge_shared::telemetry::init_tracing(config.log_format, "info");
    Application::build(config).await?.run_until_stopped().await?;
    Ok(())
}
