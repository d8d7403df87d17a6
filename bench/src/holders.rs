//! Idle connections held by child processes.
//!
//! Every connection is a descriptor, and a process may hold only as many as its limit on open
//! files: 20 000 on the VM of the published runs, where the generator cannot raise it. Alone, the
//! generator would stop there, before the servers do. `idle-max` hands its connections to as many
//! `converge-bench hold` children as it takes, each filled up to `per_process`; a child speaks JSON
//! lines on stdin (commands) and stdout (answers), and ends when its stdin closes.

use std::collections::HashMap;
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::fleet::{ConnSpec, Connected, Fleet, add_counts};
use crate::pacer::PacerKind;

/// What a holder is told to do.
#[derive(Serialize, Deserialize)]
enum Command {
    /// Open these connections ([`Fleet::connect_as_many`]); answered with [`Connected`].
    Connect(Vec<ConnSpec>),
    /// Answered with [`Held`].
    Report,
}

/// How a holder's connections fared since they opened.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Held {
    pub closes: HashMap<String, u64>,
    pub errors: HashMap<String, u64>,
}

impl Held {
    fn add(&mut self, other: Held) {
        add_counts(&mut self.closes, other.closes);
        add_counts(&mut self.errors, other.errors);
    }
}

/// How each holder is started.
pub struct HolderArgs {
    pub shards: usize,
    pub connect_concurrency: usize,
    pub pacer: PacerKind,
}

/// The holder processes of a run, filled one after another.
pub struct Holders {
    args: HolderArgs,
    per_process: usize,
    holders: Vec<Holder>,
}

struct Holder {
    child: Child,
    commands: ChildStdin,
    answers: Lines<BufReader<ChildStdout>>,
    held: usize,
}

impl Holders {
    pub fn new(args: HolderArgs, per_process: usize) -> Self {
        Self { args, per_process: per_process.max(1), holders: Vec::new() }
    }

    pub fn processes(&self) -> usize {
        self.holders.len()
    }

    /// Opens `specs` over the holders, starting new ones as the others fill, all at once; stops at
    /// each holder's first failure. Adds up what they did.
    pub async fn connect_as_many(&mut self, mut specs: Vec<ConnSpec>) -> Result<Connected> {
        let (mut asked, mut handed) = (Vec::new(), Vec::new());
        while !specs.is_empty() {
            if self.holders.last().is_none_or(|h| h.held >= self.per_process) {
                self.holders.push(Holder::start(&self.args).await?);
            }
            let index = self.holders.len() - 1;
            let room = self.per_process - self.holders[index].held;
            let rest = specs.split_off(room.min(specs.len()));
            let share = std::mem::replace(&mut specs, rest);
            // Counted as held while it is handed over, so the next share goes to the next holder.
            self.holders[index].held += share.len();
            handed.push((index, share.len()));
            asked.resize_with(self.holders.len(), || None);
            asked[index] = Some(Command::Connect(share));
        }
        asked.resize_with(self.holders.len(), || None);
        let answers = self.ask_each(asked).await?;
        let mut total = Connected::default();
        for (index, count) in handed {
            let answer = answers[index].as_deref().context("a holder asked to connect answered")?;
            let connected: Connected = serde_json::from_str(answer)?;
            let holder = &mut self.holders[index];
            holder.held = holder.held - count + connected.opened;
            total.opened += connected.opened;
            total.attempted += connected.attempted;
            total.failure = total.failure.or(connected.failure);
        }
        Ok(total)
    }

    /// Closes and errors over every holder's connections.
    pub async fn report(&mut self) -> Result<Held> {
        let asked = self.holders.iter().map(|_| Some(Command::Report)).collect();
        let mut held = Held::default();
        for answer in self.ask_each(asked).await?.into_iter().flatten() {
            held.add(serde_json::from_str(&answer)?);
        }
        Ok(held)
    }

    /// Closes every holder's commands and waits for it to close its connections and end.
    pub async fn shutdown(self) {
        for mut holder in self.holders {
            drop(holder.commands);
            let _ = holder.child.wait().await;
        }
    }

    /// Sends each holder its command, if it has one (`asked[i]` is holder i's), and waits for
    /// every answer: per holder, its answer if it was asked something.
    async fn ask_each(&mut self, asked: Vec<Option<Command>>) -> Result<Vec<Option<String>>> {
        let asking = self.holders.iter_mut().zip(asked).map(|(holder, command)| async move {
            match command {
                Some(command) => holder.ask(&command).await.map(Some),
                None => Ok(None),
            }
        });
        join_all(asking).await.into_iter().collect()
    }
}

impl Holder {
    async fn start(args: &HolderArgs) -> Result<Self> {
        let exe = std::env::current_exe().context("the generator's own executable")?;
        let pacer = clap::ValueEnum::to_possible_value(&args.pacer).context("a pacer name")?;
        let mut child = tokio::process::Command::new(exe)
            .args(["--shards", &args.shards.to_string()])
            .args(["--connect-concurrency", &args.connect_concurrency.to_string()])
            .args(["--pacer", pacer.get_name(), "hold"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting a holder process")?;
        let commands = child.stdin.take().context("the holder's stdin")?;
        let answers = BufReader::new(child.stdout.take().context("the holder's stdout")?).lines();
        Ok(Self { child, commands, answers, held: 0 })
    }

    async fn ask(&mut self, command: &Command) -> Result<String> {
        let mut line = serde_json::to_string(command)?;
        line.push('\n');
        self.commands.write_all(line.as_bytes()).await?;
        self.commands.flush().await?;
        match self.answers.next_line().await? {
            Some(answer) => Ok(answer),
            None => bail!("a holder process ended: {:?}", self.child.try_wait()),
        }
    }
}

/// The child's side: holds connections as told until its stdin closes.
pub async fn hold(shards: usize, connect_concurrency: usize, pacer: PacerKind) -> Result<()> {
    let mut fleet = Fleet::new(shards, false, pacer);
    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    let mut answers = tokio::io::stdout();
    while let Some(line) = commands.next_line().await? {
        let answer = match serde_json::from_str(&line)? {
            Command::Connect(specs) => serde_json::to_string(&fleet.connect_as_many(specs, connect_concurrency).await)?,
            Command::Report => {
                let report = fleet.report().await?;
                serde_json::to_string(&Held { closes: report.closes, errors: report.errors })?
            }
        };
        answers.write_all(format!("{answer}\n").as_bytes()).await?;
        answers.flush().await?;
    }
    fleet.shutdown().await;
    Ok(())
}
