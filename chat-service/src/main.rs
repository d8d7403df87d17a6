use anyhow::Context;
use chat_service::{Application, Config};
use clap::{Parser, Subcommand};

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Converge chat-service: chats, ordered durable messages and the WebSocket gateway.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP, GraphQL and the WebSocket gateway (the default).
    Serve,
    /// Print the GraphQL schema (SDL), as published in docs/chat-service.graphql.
    Sdl,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config: Config = converge_shared::config::load().context("reading the configuration")?;
            converge_shared::telemetry::init_tracing(config.log_format, "info");
            converge_shared::process::raise_open_files_limit();
            Application::build(config).await?.run_until_stopped().await?;
        }
        Command::Sdl => print!("{}", chat_service::graphql::sdl()),
    }
    Ok(())
}
