//! converge-bench: drives Converge through its public APIs and prints one JSON line per step.
//!
//! # Layout
//! - `checker`: per-chat seq checks (gap-free, in order, exactly once).
//! - `api`: provisioning users (app API) and group chats (REST).
//! - `fleet`: connections multiplexed over a few shard tasks; open-loop sending; measurements.
//! - `holders`: idle connections spread over child processes, past one process's open-files limit.
//! - `pacer`: wakes a shard when its next send is due, to the microsecond.
//! - `procs`: CPU and RSS of the processes under test.
//! - `scenarios`: the named workloads.

mod api;
mod arrival;
mod checker;
mod fleet;
mod floor;
mod holders;
mod pacer;
mod procs;
mod scenarios;
mod stages;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::procs::Watched;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "converge-bench", about = "Load generator and benchmark scenarios for Converge")]
pub struct Cli {
    /// user-service base URL.
    #[arg(long, env = "BENCH_USER_SERVICE", default_value = "http://127.0.0.1:3000", global = true)]
    user_service: String,
    /// chat-service base URLs (comma-separated); connections are spread over them round-robin.
    #[arg(
        long,
        env = "BENCH_CHAT_SERVICES",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:3002",
        global = true
    )]
    chat_services: Vec<String>,
    /// An app API key of user-service (`user-service apps create bench`), used to provision users.
    #[arg(long, env = "BENCH_API_KEY", default_value = "", global = true)]
    api_key: String,
    /// Processes to report CPU and RSS of, as name=pid (a pid counts with its direct children).
    #[arg(long = "proc", global = true)]
    procs: Vec<Watched>,
    /// PostgreSQL URL of the database under test: commits, WAL syncs and rows written per message
    /// are reported (read with psql).
    #[arg(long, env = "BENCH_PG_STATS_URL", global = true)]
    pg_stats_url: Option<String>,
    /// Also append the JSON lines to this file.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Prefix of provisioned external user ids; unique per run by default.
    #[arg(long, global = true)]
    run_id: Option<String>,
    /// Tasks multiplexing the connections.
    #[arg(long, default_value_t = 4, global = true)]
    shards: usize,
    /// Runtime threads: 1 (the default) runs everything on one thread, with no cross-thread wake-ups,
    /// so the generator takes as little CPU from the system under test as it can.
    #[arg(long, default_value_t = 1, global = true)]
    threads: usize,
    /// What wakes a shard for its next send: a timerfd, to tens of microseconds, or tokio's
    /// timer, which rounds every wake-up up to the next millisecond.
    #[arg(long, env = "BENCH_PACER", value_enum, default_value_t = pacer::PacerKind::Precise, global = true)]
    pacer: pacer::PacerKind,
    /// Connections opened at a time.
    #[arg(long, default_value_t = 64, global = true)]
    connect_concurrency: usize,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
pub enum Scenario {
    /// Groups × members, every member sends; the offered rate steps up until a step breaks.
    Grid(scenarios::GridArgs),
    /// Many authenticated idle connections: server RSS per connection.
    Idle(scenarios::IdleArgs),
    /// Idle connections opened step by step until the box allows no more (ports, files, memory).
    IdleMax(scenarios::IdleMaxArgs),
    /// One big group at a fixed rate: time until the last recipient has each message.
    LargeGroup(scenarios::LargeGroupArgs),
    /// Clients disconnect, messages pile up, all reconnect at once with resume.
    ResumeStorm(scenarios::ResumeStormArgs),
    /// The large group's floors: a bare WebSocket server writing each frame to every member (no
    /// chat-service involved), on tokio-tungstenite and on actix-ws (chat-service's framework).
    FanoutFloor(floor::FanoutFloorArgs),
    /// The machine's floor for the resume storm: clients connect at once to a bare WebSocket
    /// server that sends each its missed frames straight away (no chat-service involved).
    ResumeFloor(floor::ResumeFloorArgs),
    /// The framework's floor for idle connections: RSS per connection held open by a bare
    /// actix-ws server (chat-service's framework) and a bare tokio-tungstenite one.
    IdleFloor(floor::IdleFloorArgs),
    /// The server half of the floors, started by them as its own process.
    #[command(hide = true)]
    FloorServer(floor::FloorServerArgs),
    /// Holds idle connections for `idle-max`, which starts it as a child process and tells it what
    /// to open over stdin.
    #[command(hide = true)]
    Hold,
}

/// Where results go: stdout, and the `--out` file if given.
pub struct Output {
    file: Option<std::fs::File>,
}

impl Output {
    pub fn emit(&mut self, line: &Value) -> Result<()> {
        let text = serde_json::to_string(line)?;
        println!("{text}");
        if let Some(file) = self.file.as_mut() {
            writeln!(file, "{text}")?;
        }
        Ok(())
    }
}

/// Progress notes, on stderr so stdout stays JSON lines.
pub fn note(text: impl std::fmt::Display) {
    let elapsed = fleet::origin().elapsed().as_secs_f64();
    eprintln!("[{elapsed:7.1}s] {text}");
}

fn main() -> Result<()> {
    fleet::origin();
    let cli = Cli::parse();
    if let Scenario::FloorServer(args) = cli.scenario {
        return floor::serve(args);
    }
    let mut runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(cli.threads);
        builder
    };
    runtime.enable_all().build()?.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let file = match &cli.out {
        Some(path) => Some(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
        None => None,
    };
    let mut out = Output { file };
    match &cli.scenario {
        Scenario::FanoutFloor(args) => floor::fanout_floor(args, cli.pacer, &mut out).await,
        Scenario::ResumeFloor(args) => floor::resume_floor(args, &mut out).await,
        Scenario::IdleFloor(args) => floor::idle_floor(args, &mut out).await,
        Scenario::Hold => holders::hold(cli.shards, cli.connect_concurrency, cli.pacer).await,
        _ => scenarios::run(&cli, &mut out).await,
    }
}
