use anyhow::Context;
use clap::{Parser, Subcommand};
use converge_migrations::{ServiceDb, connect};
use user_service::{Application, Config};

#[derive(Parser)]
#[command(name = "user-service", about = "Converge accounts, tokens and external identities")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Manage integrating apps.
    Apps {
        #[command(subcommand)]
        command: AppsCommand,
    },
    /// Print a new Ed25519 signing key (PEM), for JWT_PRIVATE_KEY.
    Keygen,
    /// Print the GraphQL schema (SDL).
    Sdl,
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Create an app and print its API key (shown only this once).
    Create { name: String },
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config: Config = converge_shared::config::load().context("reading the configuration")?;
    let command = cli.command.unwrap_or(Command::Serve);
    // The printing commands' stdout is their output (`sdl > docs/user-service.graphql`): no logs.
    if matches!(command, Command::Serve | Command::Apps { .. }) {
        converge_shared::telemetry::init_tracing(config.log_format, "info");
    }
    match command {
        Command::Serve => {
            converge_shared::process::raise_open_files_limit();
            Application::build(config).await?.run_until_stopped().await?
        }
        Command::Apps { command: AppsCommand::Create { name } } => {
            let db = connect(&config.database_url(), 2).await?;
            ServiceDb::Users.migrate_up(&db).await?;
            let (app, key) = user_service::service::apps::create(&db, &name).await?;
            println!("app id:  {}\napi key: {key}\nKeep the key secret; it is not shown again.", app.id);
        }
        Command::Keygen => print!("{}", user_service::keys::to_pem(&user_service::keys::generate())?),
        Command::Sdl => print!("{}", user_service::graphql::sdl()),
        Command::Openapi => {
            use utoipa::OpenApi;
            println!("{}", user_service::http::openapi::ApiDoc::openapi().to_pretty_json()?);
        }
    }
    Ok(())
}
