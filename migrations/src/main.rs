//! `migrate`: apply, roll back, inspect or rebuild a Converge database.
//!
//! `migrate users up` uses `DATABASE_URL`, or the embedded SQLite file under `DATA_DIR` (`./data`).

use clap::{Parser, Subcommand};
use converge_migrations::{Command, ServiceDb, connect};

#[derive(Parser)]
#[command(name = "migrate", about = "Apply, roll back, inspect or rebuild a Converge database")]
struct Cli {
    /// Which service's database.
    #[arg(value_enum)]
    database: ServiceDb,
    #[command(subcommand)]
    action: Action,
    /// The database URL; defaults to the embedded SQLite file of that service.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Where the embedded SQLite files live.
    #[arg(long, env = "DATA_DIR", default_value = "./data", global = true)]
    data_dir: String,
}

#[derive(Subcommand)]
enum Action {
    /// Apply pending migrations.
    Up {
        #[arg(short = 'n', long)]
        num: Option<u32>,
    },
    /// Roll back applied migrations (the last one by default).
    Down {
        #[arg(short = 'n', long)]
        num: Option<u32>,
    },
    /// List applied and pending migrations.
    Status,
    /// Drop all tables and apply every migration again.
    Fresh,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_target(false).init();
    let cli = Cli::parse();
    let url = cli.database.url(cli.database_url.as_deref(), &cli.data_dir);
    let db = connect(&url, 2).await?;
    let command = match cli.action {
        Action::Up { num } => Command::Up(num),
        Action::Down { num } => Command::Down(num),
        Action::Status => Command::Status,
        Action::Fresh => Command::Fresh,
    };
    cli.database.run(&db, command).await?;
    println!("{:?}: {command:?} done", cli.database);
    Ok(())
}
