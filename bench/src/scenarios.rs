//! The named workloads. Each provisions its own users and chats, so scenarios never share state.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::{Api, User};
use crate::fleet::{Completeness, ConnSpec, Fleet, ShardReport, histogram};
use crate::holders::{HolderArgs, Holders};
use crate::procs::{PgCounters, Procs, Sample, analyze, round, soft_open_files};
use crate::stages::ServerStages;
use crate::{Cli, Output, Scenario, note};

/// The longest a scenario waits for answers and deliveries after its sending stops: what has not
/// arrived by then counts as lost.
const MAX_DRAIN: Duration = Duration::from_secs(60);

#[derive(clap::Args)]
pub struct GridArgs {
    #[arg(long, default_value_t = 200)]
    groups: usize,
    #[arg(long, default_value_t = 10)]
    members: usize,
    /// Offered rates in messages/s, one step each.
    #[arg(
        long,
        env = "BENCH_GRID_RATES",
        value_delimiter = ',',
        default_value = "250,500,1000,1500,2000,2500,3000,4000,6000,8000,10000,12000,16000"
    )]
    rates: Vec<f64>,
    #[arg(long, default_value_t = 10.0)]
    step_secs: f64,
    /// Seconds at the first rate before the first step, checked but not measured: the first
    /// messages pay for query plans, caches and pooled connections being made.
    #[arg(long, default_value_t = 5.0)]
    warmup_secs: f64,
    /// A step is sustainable with p99 send→deliver at most this (and nothing lost or reordered).
    #[arg(long, default_value_t = 100.0)]
    p99_limit_ms: f64,
    /// Stop after this many broken steps (0: run every step).
    #[arg(long, default_value_t = 1)]
    stop_after_broken: usize,
    /// In which order the members take their turns to send.
    #[arg(long, value_enum, default_value_t = SendOrder::ChatByChat)]
    order: SendOrder,
}

/// The order of the grid's round-robin over its members.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOrder {
    /// Each chat's members one after the other, then the next chat's: a chat's members all send
    /// within a few milliseconds, from both instances, then it is quiet for a round.
    ChatByChat,
    /// Consecutive sends go to different chats (and alternate instances): each chat's messages are
    /// spread evenly over the round.
    Interleaved,
}

impl SendOrder {
    /// The scenario's name in the results: the two orders are two scenarios of the report.
    fn scenario(self) -> &'static str {
        match self {
            SendOrder::ChatByChat => "grid",
            SendOrder::Interleaved => "grid-interleaved",
        }
    }

    /// Every member's connection index once, in the order they send.
    fn senders(self, groups: usize, members: usize) -> Vec<usize> {
        match self {
            SendOrder::ChatByChat => (0..groups * members).collect(),
            // Round r visits every chat once; in chat c it is member (r + c) mod m's turn, so over
            // m rounds each member sends once, and within a round neighbouring chats' senders sit
            // on different instances (connections alternate between them).
            SendOrder::Interleaved => (0..groups * members)
                .map(|turn| {
                    let (round, chat) = (turn / groups, turn % groups);
                    chat * members + (round + chat) % members
                })
                .collect(),
        }
    }
}

#[derive(clap::Args)]
pub struct IdleArgs {
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Members per chat; every user is in two chats (one block of neighbours, one strided).
    #[arg(long, default_value_t = 10)]
    group_size: usize,
    /// RSS is sampled after each of this many equal batches of connections.
    #[arg(long, default_value_t = 10)]
    batches: usize,
    #[arg(long, default_value_t = 30.0)]
    hold_secs: f64,
}

#[derive(clap::Args)]
pub struct IdleMaxArgs {
    /// Connections opened per step (a multiple of the group size); RSS is sampled after each.
    #[arg(long, default_value_t = 5_000)]
    step: usize,
    /// Stop here even if the box allows more.
    #[arg(long, default_value_t = 200_000)]
    limit: usize,
    /// Members per chat; every user is in two chats of its step.
    #[arg(long, default_value_t = 10)]
    group_size: usize,
    /// Stop before the box's available memory falls below this many MiB.
    #[arg(long, default_value_t = 2048)]
    keep_free_mib: u64,
    #[arg(long, default_value_t = 30.0)]
    hold_secs: f64,
    /// Connections each generator process holds (the connections are spread over child
    /// processes); default: this process's limit on open files, less 100 for everything else.
    #[arg(long)]
    per_process: Option<usize>,
}

#[derive(clap::Args)]
pub struct LargeGroupArgs {
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Messages/s, sent round-robin by all members.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 30.0)]
    pub secs: f64,
}

#[derive(clap::Args)]
pub struct ResumeStormArgs {
    #[arg(long, default_value_t = 100)]
    chats: usize,
    /// Members per chat that disconnect and resume (each chat also has one sender that stays).
    #[arg(long, default_value_t = 10)]
    members: usize,
    /// Messages sent to each chat while its members are away.
    #[arg(long, default_value_t = 100)]
    messages: u64,
    /// Messages/s of each sender (chat-service allows 50 frames/s per connection and, by default,
    /// 50 writes/s per user).
    #[arg(long, default_value_t = 40.0)]
    sender_rate: f64,
}

struct Ctx<'a> {
    cli: &'a Cli,
    api: Api,
    procs: Procs,
    run_id: String,
}

impl Ctx<'_> {
    fn ws_url(&self, instance: usize) -> String {
        let base = &self.cli.chat_services[instance % self.cli.chat_services.len()];
        let base = base.trim_end_matches('/');
        let base = base.strip_prefix("http").map_or_else(|| base.to_owned(), |rest| format!("ws{rest}"));
        format!("{base}/ws")
    }

    fn pg_counters(&self) -> Option<PgCounters> {
        self.cli.pg_stats_url.as_deref().and_then(PgCounters::read)
    }

    async fn server_stages(&self) -> Option<ServerStages> {
        ServerStages::read(self.api.http(), &self.cli.chat_services).await
    }

    fn instances(&self) -> usize {
        self.cli.chat_services.len().max(1)
    }

    /// A connection for user `i` (spread over the instances by index).
    fn spec(&self, i: usize, user: &User, chats: Vec<(Uuid, u32)>, sends_in: Option<usize>) -> ConnSpec {
        let instance = i % self.instances();
        ConnSpec { token: user.token.clone(), url: self.ws_url(instance), instance: instance as u8, chats, sends_in }
    }

    async fn users(&self, scenario: &str, count: usize) -> Result<Vec<User>> {
        let started = Instant::now();
        let users = self.api.users(&format!("{}-{scenario}", self.run_id), count, 32).await?;
        note(format!("{scenario}: {count} users in {:.1}s", started.elapsed().as_secs_f64()));
        Ok(users)
    }

    async fn groups(&self, scenario: &str, members: Vec<Vec<&User>>) -> Result<Vec<Uuid>> {
        let started = Instant::now();
        let count = members.len();
        let chats = self.api.groups(members, 8).await?;
        note(format!("{scenario}: {count} chats in {:.1}s", started.elapsed().as_secs_f64()));
        if let Some(url) = &self.cli.pg_stats_url {
            analyze(url);
        }
        Ok(chats)
    }

    async fn connect(&self, fleet: &mut Fleet, scenario: &str, specs: Vec<ConnSpec>) -> Result<f64> {
        let started = Instant::now();
        let count = specs.len();
        fleet.connect(specs, self.cli.connect_concurrency).await?;
        let seconds = started.elapsed().as_secs_f64();
        note(format!("{scenario}: {count} connections in {seconds:.1}s"));
        Ok(seconds)
    }
}

pub async fn run(cli: &Cli, out: &mut Output) -> Result<()> {
    if cli.api_key.is_empty() {
        bail!("an app API key is needed (--api-key or BENCH_API_KEY; `user-service apps create bench` prints one)");
    }
    let chat_service = cli.chat_services.first().context("no chat-service URL")?;
    let ctx = Ctx {
        cli,
        api: Api::new(&cli.user_service, chat_service, &cli.api_key)?,
        procs: Procs::new(cli.procs.clone()),
        run_id: cli.run_id.clone().unwrap_or_else(|| Uuid::new_v4().simple().to_string()[..8].to_owned()),
    };
    match &cli.scenario {
        Scenario::Grid(args) => grid(&ctx, args, out).await,
        Scenario::Idle(args) => idle(&ctx, args, out).await,
        Scenario::IdleMax(args) => idle_max(&ctx, args, out).await,
        Scenario::LargeGroup(args) => large_group(&ctx, args, out).await,
        Scenario::ResumeStorm(args) => resume_storm(&ctx, args, out).await,
        Scenario::FanoutFloor(_)
        | Scenario::ResumeFloor(_)
        | Scenario::IdleFloor(_)
        | Scenario::FloorServer(_)
        | Scenario::Hold => {
            bail!("not a scenario against Converge")
        }
    }
}

/// `{count, p50_ms, p90_ms, p99_ms, max_ms}` of a µs histogram.
pub fn summary(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| round(us as f64 / 1000.0, 3);
    if h.is_empty() {
        return json!({ "count": 0 });
    }
    json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p90_ms": ms(h.value_at_quantile(0.90)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "max_ms": ms(h.max()),
    })
}

fn counts(map: &HashMap<String, u64>) -> Value {
    json!(map)
}

/// The machine's load right now (1-minute average), to record next to the results.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

async fn grid(ctx: &Ctx<'_>, args: &GridArgs, out: &mut Output) -> Result<()> {
    let name = args.order.scenario();
    let users = ctx.users(name, args.groups * args.members).await?;
    let members: Vec<Vec<&User>> = users.chunks(args.members).map(|c| c.iter().collect()).collect();
    let chats = ctx.groups(name, members).await?;
    let specs = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let chat = i / args.members;
            ctx.spec(i, user, vec![(chats[chat], chat as u32)], Some(0))
        })
        .collect();
    let mut fleet = Fleet::new(ctx.cli.shards, false, ctx.cli.pacer);
    let connect_s = ctx.connect(&mut fleet, name, specs).await?;
    out.emit(&json!({
        "scenario": name, "phase": "setup", "groups": args.groups, "members": args.members,
        "connections": users.len(), "instances": ctx.instances(), "connect_s": round(connect_s, 2),
    }))?;

    let senders = args.order.senders(args.groups, args.members);
    let mut targets: HashMap<u32, i64> = HashMap::new();
    let (mut lost_before, mut dups_before, mut order_before) = (0, 0, 0);
    if let (Some(&rate), true) = (args.rates.first(), args.warmup_secs > 0.0) {
        fleet.report().await?;
        fleet.send(&senders, rate, Duration::from_secs_f64(args.warmup_secs), None).await?;
        let (report, complete, _, _) = settle(ctx, &fleet, &mut targets).await?;
        (lost_before, dups_before, order_before) = (complete.lost, report.duplicates, report.order_violations);
        out.emit(&json!({
            "scenario": name, "phase": "warmup", "offered_rate": rate, "secs": args.warmup_secs,
            "sent": report.sent, "acked": report.acked, "deliveries": report.deliveries,
            "lost": complete.lost, "duplicates": report.duplicates, "order_violations": report.order_violations,
            "deliver": summary(&report.deliver),
        }))?;
    }
    let mut best: Option<f64> = None;
    let mut broken = 0;
    for (step, &rate) in args.rates.iter().enumerate() {
        fleet.report().await?;
        let before = ctx.procs.sample();
        let pg_before = ctx.pg_counters();
        let stages_before = ctx.server_stages().await;
        let load_before = load_average();
        let step_time = Duration::from_secs_f64(args.step_secs);
        fleet.send(&senders, rate, step_time, None).await?;
        let (report, complete, drain_s, after) = settle(ctx, &fleet, &mut targets).await?;
        let settled = ctx.procs.sample();
        let pg_after = ctx.pg_counters();
        let stages_after = ctx.server_stages().await;
        let lost = complete.lost.saturating_sub(lost_before);
        let duplicates = report.duplicates - dups_before;
        let order_violations = report.order_violations - order_before;
        (lost_before, dups_before, order_before) = (complete.lost, report.duplicates, report.order_violations);

        let p99_ms = if report.deliver.is_empty() {
            f64::INFINITY
        } else {
            report.deliver.value_at_quantile(0.99) as f64 / 1000.0
        };
        let achieved = report.acked as f64 / args.step_secs;
        let sustainable = p99_ms <= args.p99_limit_ms
            && lost == 0
            && duplicates == 0
            && order_violations == 0
            && report.send_failures == 0
            && report.errors.is_empty()
            && report.closes.is_empty()
            && achieved >= 0.95 * rate;
        let line = json!({
            "scenario": name, "step": step, "offered_rate": rate, "step_s": args.step_secs,
            "sent": report.sent, "acked": report.acked, "achieved_rate": round(achieved, 1), "drain_s": round(drain_s, 2),
            "send_failures": report.send_failures, "errors": counts(&report.errors), "closes": counts(&report.closes), "reconnects": report.reconnects,
            "deliveries": report.deliveries, "expected_deliveries": report.acked * args.members as u64,
            "other_frames": report.other_frames,
            "deliveries_per_s": round(report.deliveries as f64 / args.step_secs, 1),
            "lost": lost, "duplicates": duplicates, "order_violations": order_violations,
            "deliver": summary(&report.deliver), "deliver_cross_instance": summary(&report.deliver_cross),
            // The same, up to the client's socket: without the generator's own wait to read them.
            "deliver_at_socket": summary(&report.deliver_at_socket),
            "deliver_cross_instance_at_socket": summary(&report.deliver_cross_at_socket),
            "ack": summary(&report.ack),
            "before_stamp": summary(&report.before_stamp), "stamp_to_ack": summary(&report.stamp_to_ack),
            "send_lateness": summary(&report.send_lateness),
            "procs": Procs::describe(&before, &after),
            "bench_cpu_us_per_delivery": cpu_per_delivery(&before, &settled, &report),
            "postgres_per_message": PgCounters::per_message(pg_before, pg_after, report.acked),
            "server_stages": ServerStages::between(stages_before, stages_after),
            "load_before": load_before, "load_after": load_average(),
            "sustainable": sustainable,
        });
        out.emit(&line)?;
        note(format!(
            "{name} {rate}/s: acked {:.0}/s, p99 {p99_ms:.1} ms, lost {lost}, dups {duplicates}, order {order_violations} → {}",
            achieved,
            if sustainable { "ok" } else { "BROKEN" }
        ));
        if sustainable {
            best = Some(best.map_or(rate, |b: f64| b.max(rate)));
        } else {
            broken += 1;
            if broken == args.stop_after_broken {
                break;
            }
        }
    }
    fleet.shutdown().await;
    out.emit(&json!({
        "scenario": name, "phase": "summary", "max_sustainable_rate": best,
        "p99_limit_ms": args.p99_limit_ms, "instances": ctx.instances(),
    }))
}

/// Once sending stops: waits until every send has its answer, samples the processes (the end of
/// the measured window), then waits until every acknowledged message has reached every member,
/// each for at most [`MAX_DRAIN`]. `targets` (per chat, the highest acknowledged seq) grows with
/// the acks seen. Returns the merged report, the completeness against `targets`, the seconds from
/// the last answer until every member had everything, and the sample.
async fn settle(
    ctx: &Ctx<'_>,
    fleet: &Fleet,
    targets: &mut HashMap<u32, i64>,
) -> Result<(ShardReport, Completeness, f64, Sample)> {
    if tokio::time::timeout(MAX_DRAIN, fleet.answered()).await.is_err() {
        note("some sends got no answer within the drain limit");
    }
    let sample = ctx.procs.sample();
    let started = Instant::now();
    let mut report = fleet.report().await?;
    for (chat, seq) in &report.acked_max {
        let max = targets.entry(*chat).or_insert(*seq);
        *max = (*max).max(*seq);
    }
    let everyone: Vec<usize> = (0..fleet.specs.len()).collect();
    let watches = fleet.watch_caught_up(&everyone, targets).await?;
    if tokio::time::timeout(MAX_DRAIN, futures_util::future::join_all(watches)).await.is_err() {
        note("some members were still missing messages at the drain limit");
    }
    let complete = fleet.completeness(targets).await?;
    let more = fleet.report().await?;
    let (dups, order) = (more.duplicates, more.order_violations);
    report.merge(more);
    // Those two are running totals, not increments.
    (report.duplicates, report.order_violations) = (dups, order);
    Ok((report, complete, started.elapsed().as_secs_f64(), sample))
}

fn cpu_per_delivery(before: &Sample, after: &Sample, report: &ShardReport) -> Value {
    if report.deliveries == 0 {
        return Value::Null;
    }
    let seconds = Procs::cpu_seconds(before, after, "bench");
    json!(round(seconds * 1e6 / report.deliveries as f64, 2))
}

async fn idle(ctx: &Ctx<'_>, args: &IdleArgs, out: &mut Output) -> Result<()> {
    let n = args.connections;
    let g = args.group_size.max(2);
    if n / g == 0 {
        bail!("need at least one full group");
    }
    let users = ctx.users("idle", n).await?;
    let (chats, of_user) = two_chats_each(ctx, "idle", &users, g, 0).await?;
    let mut fleet = Fleet::new(ctx.cli.shards, false, ctx.cli.pacer);
    let baseline = ctx.procs.sample();
    let base_rss = Procs::rss_kib(&baseline, "chat");
    out.emit(&json!({ "scenario": "idle", "phase": "ramp", "connections": 0, "server_rss_kib": base_rss }))?;
    let mut points = vec![(0.0, base_rss as f64)];
    let batch = n.div_ceil(args.batches.max(1));
    let mut specs: Vec<ConnSpec> = users
        .iter()
        .enumerate()
        .filter(|(i, _)| !of_user[*i].is_empty())
        .map(|(i, user)| ctx.spec(i, user, of_user[i].clone(), None))
        .collect();
    let total = specs.len();
    let mut connected = 0;
    while !specs.is_empty() {
        let rest = specs.split_off(batch.min(specs.len()));
        let this = std::mem::replace(&mut specs, rest);
        connected += this.len();
        ctx.connect(&mut fleet, "idle", this).await?;
        ramp_point(ctx, "idle", connected, &mut points, out).await?;
    }
    note(format!("idle: holding {connected} connections for {}s", args.hold_secs));
    tokio::time::sleep(Duration::from_secs_f64(args.hold_secs)).await;
    let held = ctx.procs.sample();
    let report = fleet.report().await?;
    let rss_held = Procs::rss_kib(&held, "chat");
    let slope = slope(&points);
    let per_conn_held = (rss_held as f64 - base_rss as f64) * 1024.0 / total.max(1) as f64;
    let ready_bytes = fleet.ready_bytes_mean();
    fleet.shutdown().await;
    out.emit(&json!({
        "scenario": "idle", "phase": "summary", "connections": total, "chats": chats.len(),
        "chats_per_connection": 2, "hold_s": args.hold_secs, "ready_bytes_mean": round(ready_bytes, 0),
        "server_rss_baseline_kib": base_rss, "server_rss_held_kib": rss_held,
        "rss_slope_bytes_per_connection": round(slope * 1024.0, 0),
        "rss_after_hold_bytes_per_connection": round(per_conn_held, 0),
        "closes_during_hold": counts(&report.closes), "errors": counts(&report.errors),
        "procs": Procs::describe(&baseline, &held),
    }))
}

/// Groups of `g` over `users`, every user in two of them: one of neighbours (0..g, g..2g, …), one
/// strided across them all. Returns the chats and, per user, its chats numbered from `first_number`
/// (users past the last full group are in none).
async fn two_chats_each(
    ctx: &Ctx<'_>,
    scenario: &str,
    users: &[User],
    g: usize,
    first_number: u32,
) -> Result<(Vec<Uuid>, Vec<Vec<(Uuid, u32)>>)> {
    let per_layout = users.len() / g;
    let mut member_lists: Vec<Vec<&User>> = users.chunks_exact(g).map(|c| c.iter().collect()).collect();
    member_lists.extend((0..per_layout).map(|c| (0..g).map(|k| &users[c + k * per_layout]).collect()));
    let chats = ctx.groups(scenario, member_lists).await?;
    let mut of_user: Vec<Vec<(Uuid, u32)>> = vec![Vec::new(); users.len()];
    for c in 0..per_layout {
        for k in 0..g {
            of_user[c * g + k].push((chats[c], first_number + c as u32));
            let b = per_layout + c;
            of_user[c + k * per_layout].push((chats[b], first_number + b as u32));
        }
    }
    Ok((chats, of_user))
}

/// Opens idle connections step by step, each step's users in two chats of their own, until a
/// connection cannot be opened (the servers' open files or the loopback's ports), memory runs low,
/// or `limit`. The connections are held by child processes ([`Holders`]), so the generator's own
/// limit on open files is not the one found.
async fn idle_max(ctx: &Ctx<'_>, args: &IdleMaxArgs, out: &mut Output) -> Result<()> {
    let g = args.group_size.max(2);
    let step = (args.step / g).max(1) * g;
    let own_limit = open_files_limit();
    let per_process = args.per_process.or(own_limit.map(|l| (l as usize).saturating_sub(100))).unwrap_or(1000);
    let cli = ctx.cli;
    let holder_args = HolderArgs { shards: cli.shards, connect_concurrency: cli.connect_concurrency, pacer: cli.pacer };
    let mut holders = Holders::new(holder_args, per_process);
    let baseline = ctx.procs.sample();
    let base_rss = Procs::rss_kib(&baseline, "chat");
    out.emit(&json!({ "scenario": "idle-max", "phase": "ramp", "connections": 0, "server_rss_kib": base_rss }))?;
    let mut points = vec![(0.0, base_rss as f64)];
    let (mut held, mut attempted, mut chats) = (0, 0, 0u32);
    let stopped_by = loop {
        if held >= args.limit {
            break format!("the limit of {} connections", args.limit);
        }
        if let Some(free) = available_mib()
            && free < args.keep_free_mib
        {
            break format!("memory: {free} MiB available");
        }
        let name = format!("idle-max-{}", points.len());
        let users = ctx.users(&name, ((args.limit - held).min(step) / g).max(1) * g).await?;
        let (made, of_user) = two_chats_each(ctx, &name, &users, g, chats).await?;
        chats += made.len() as u32;
        let specs = users.iter().zip(of_user).enumerate().map(|(i, (user, of))| ctx.spec(held + i, user, of, None));
        let started = Instant::now();
        let connected = holders.connect_as_many(specs.collect()).await?;
        held += connected.opened;
        attempted += connected.attempted;
        note(format!(
            "{name}: {} connections in {:.1}s, {held} held by {} processes",
            connected.opened,
            started.elapsed().as_secs_f64(),
            holders.processes()
        ));
        ramp_point(ctx, "idle-max", held, &mut points, out).await?;
        if let Some(failure) = connected.failure {
            break failure;
        }
    };
    note(format!("idle-max: stopped by {stopped_by}; holding {held} connections for {}s", args.hold_secs));
    tokio::time::sleep(Duration::from_secs_f64(args.hold_secs)).await;
    let after_hold = ctx.procs.sample();
    let report = holders.report().await?;
    let rss_held = Procs::rss_kib(&after_hold, "chat");
    let processes = holders.processes();
    // At the servers' limit the last connections wait in the listen backlog until they time out:
    // this says whose descriptors ran out.
    let server_open_files = ctx.procs.open_files("chat");
    holders.shutdown().await;
    out.emit(&json!({
        "scenario": "idle-max", "phase": "summary", "connections": held, "attempted": attempted,
        "stopped_by": stopped_by, "open_files_limit": own_limit, "generator_processes": processes,
        "connections_per_generator_process": per_process, "server_open_files": server_open_files,
        "hold_s": args.hold_secs,
        "server_rss_baseline_kib": base_rss, "server_rss_held_kib": rss_held,
        "rss_slope_bytes_per_connection": round(slope(&points) * 1024.0, 0),
        "rss_after_hold_bytes_per_connection": round((rss_held as f64 - base_rss as f64) * 1024.0 / held.max(1) as f64, 0),
        "closes_during_hold": counts(&report.closes), "errors": counts(&report.errors),
        "procs": Procs::describe(&baseline, &after_hold),
    }))
}

/// The servers' RSS with `connections` open, once the last of them has settled (2 s): a point of
/// the ramp, kept for the slope and written out.
async fn ramp_point(
    ctx: &Ctx<'_>,
    scenario: &str,
    connections: usize,
    points: &mut Vec<(f64, f64)>,
    out: &mut Output,
) -> Result<()> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sample = ctx.procs.sample();
    let rss = Procs::rss_kib(&sample, "chat");
    points.push((connections as f64, rss as f64));
    out.emit(&json!({
        "scenario": scenario, "phase": "ramp", "connections": connections, "server_rss_kib": rss,
        "bench_rss_kib": Procs::rss_kib(&sample, "bench"),
    }))
}

/// The box's available memory (`MemAvailable`), in MiB.
fn available_mib() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib / 1024)
}

/// This process's soft limit on open files (each connection is one).
fn open_files_limit() -> Option<u64> {
    soft_open_files(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// Least-squares slope of y over x.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) =
        points.iter().fold((0.0, 0.0), |(num, den), (x, y)| (num + (x - mx) * (y - my), den + (x - mx) * (x - mx)));
    if den == 0.0 { 0.0 } else { num / den }
}

async fn large_group(ctx: &Ctx<'_>, args: &LargeGroupArgs, out: &mut Output) -> Result<()> {
    let users = ctx.users("large", args.members).await?;
    let chat = ctx.groups("large", vec![users.iter().collect()]).await?[0];
    let specs = users.iter().enumerate().map(|(i, u)| ctx.spec(i, u, vec![(chat, 0)], Some(0))).collect();
    let mut fleet = Fleet::new(ctx.cli.shards, true, ctx.cli.pacer);
    let connect_s = ctx.connect(&mut fleet, "large-group", specs).await?;
    // Were presence shared in a group this size, each member coming online would be announced
    // to all the others: about a million frames, counted here.
    let presence_frames = fleet.report().await?.other_frames.get("presence").copied().unwrap_or(0);
    let before = ctx.procs.sample();
    let pg_before = ctx.pg_counters();
    let stages_before = ctx.server_stages().await;
    let senders: Vec<usize> = (0..users.len()).collect();
    fleet.send(&senders, args.rate, Duration::from_secs_f64(args.secs), None).await?;
    let mut targets = HashMap::new();
    let (report, complete, drain_s, after) = settle(ctx, &fleet, &mut targets).await?;
    let settled = ctx.procs.sample();
    let pg_after = ctx.pg_counters();
    let stages_after = ctx.server_stages().await;
    let (mut last, mut last_at_socket, mut last_after_stamp) = (histogram(), histogram(), histogram());
    let mut incomplete = 0;
    for (key, message) in &report.last_recipient {
        if message.recipients as usize >= users.len() {
            last.saturating_record(message.slowest);
            last_at_socket.saturating_record(message.slowest_at_socket);
            if let Some(before) = report.stamped.get(key) {
                last_after_stamp.saturating_record(message.slowest.saturating_sub(*before));
            }
        } else {
            incomplete += 1;
        }
    }
    fleet.shutdown().await;
    out.emit(&json!({
        "scenario": "large-group", "members": args.members, "instances": ctx.instances(),
        "rate": args.rate, "duration_s": args.secs, "connect_s": round(connect_s, 2), "drain_s": round(drain_s, 2),
        "presence_frames_coming_online": presence_frames,
        "sent": report.sent, "acked": report.acked, "errors": counts(&report.errors), "closes": counts(&report.closes), "reconnects": report.reconnects,
        "deliveries": report.deliveries, "expected_deliveries": report.acked * args.members as u64,
        "other_frames": report.other_frames,
        "last_recipient": summary(&last), "messages_not_reaching_everyone": incomplete,
        // Until the last member's socket had it: the generator reads its thousand sockets one after
        // another, a wait of its own that a client on its own machine would not have.
        "last_recipient_at_socket": summary(&last_at_socket),
        "deliver": summary(&report.deliver), "deliver_at_socket": summary(&report.deliver_at_socket),
        "ack": summary(&report.ack),
        // Where the time goes, split at the server's stamp on each message (its writer's pick-up):
        // schedule → stamp (client, socket, connection, writer's queue), stamp → ack, stamp → last recipient.
        "before_stamp": summary(&report.before_stamp), "stamp_to_ack": summary(&report.stamp_to_ack),
        "stamp_to_last_recipient": summary(&last_after_stamp),
        "send_lateness": summary(&report.send_lateness),
        "lost": complete.lost, "duplicates": report.duplicates, "order_violations": report.order_violations,
        "procs": Procs::describe(&before, &after),
        "bench_cpu_us_per_delivery": cpu_per_delivery(&before, &settled, &report),
        "postgres_per_message": PgCounters::per_message(pg_before, pg_after, report.acked),
        "server_stages": ServerStages::between(stages_before, stages_after),
        "load_after": load_average(),
    }))
}

async fn resume_storm(ctx: &Ctx<'_>, args: &ResumeStormArgs, out: &mut Output) -> Result<()> {
    let (chats_n, m) = (args.chats, args.members);
    // Users 0..chats·m are the members who go away; the last `chats` users are the senders.
    let users = ctx.users("storm", chats_n * (m + 1)).await?;
    let senders_at = chats_n * m;
    let member_lists: Vec<Vec<&User>> = (0..chats_n)
        .map(|c| std::iter::once(&users[senders_at + c]).chain(&users[c * m..(c + 1) * m]).collect())
        .collect();
    let chats = ctx.groups("storm", member_lists).await?;
    let specs = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let c = if i < senders_at { i / m } else { i - senders_at };
            let sends = (i >= senders_at).then_some(0);
            ctx.spec(i, user, vec![(chats[c], c as u32)], sends)
        })
        .collect();
    let mut fleet = Fleet::new(ctx.cli.shards, false, ctx.cli.pacer);
    ctx.connect(&mut fleet, "storm", specs).await?;
    let away: Vec<usize> = (0..senders_at).collect();
    // Returns once the server has closed each of them: their backlog is what follows.
    let resume_points = fleet.disconnect(&away).await?;

    let senders: Vec<usize> = (senders_at..users.len()).collect();
    let expected = chats_n as u64 * args.messages;
    fleet.report().await?;
    let send_started = Instant::now();
    fleet.send(&senders, args.sender_rate * chats_n as f64, Duration::from_secs(3600), Some(args.messages)).await?;
    let answered = tokio::time::timeout(Duration::from_secs(300), fleet.answered()).await;
    let mut sending = SendTotals::default();
    sending.add(fleet.report().await?);
    if answered.is_err() || sending.acked < expected || sending.failures > 0 {
        bail!("{} of {expected} messages acknowledged; errors {:?}", sending.acked, sending.errors);
    }
    let send_s = send_started.elapsed().as_secs_f64();
    // A sender's own copy of its last messages can trail their acks: once every sender has its
    // copies, the next report counts the returning clients' deliveries alone.
    for echoes in fleet.watch_caught_up(&senders, &sending.acked_max).await? {
        tokio::time::timeout(Duration::from_secs(60), echoes).await.context("senders' own copies")??;
    }
    fleet.report().await?;
    note(format!("storm: {expected} messages stored in {send_s:.1}s; {} clients reconnect", away.len()));

    let before = ctx.procs.sample();
    let watches = fleet.watch_caught_up(&away, &sending.acked_max).await?;
    let started = Instant::now();
    let fleet_ref = &fleet;
    let reconnects = futures_util::future::join_all(
        resume_points.into_iter().map(|(conn, points)| async move { fleet_ref.reconnect(conn, points).await }),
    )
    .await;
    let reconnect_failures = reconnects.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = reconnects.iter().find(|r| r.is_err()) {
        note(format!("storm: a reconnect failed: {e:#}"));
    }
    let connected_s = started.elapsed().as_secs_f64();
    let mut times = histogram();
    let mut timed_out = false;
    for watch in watches {
        match tokio::time::timeout(Duration::from_secs(120), watch).await {
            Ok(Ok(h)) => {
                let _ = times.add(&h);
            }
            _ => timed_out = true,
        }
    }
    let all_caught_up_s = started.elapsed().as_secs_f64();
    let after = ctx.procs.sample();
    let report = fleet.report().await?;
    let complete = fleet.completeness(&sending.acked_max).await?;
    fleet.shutdown().await;
    out.emit(&json!({
        "scenario": "resume-storm", "clients": away.len(), "chats": chats_n, "messages_per_chat": args.messages,
        "instances": ctx.instances(), "send_s": round(send_s, 2),
        "reconnect_failures": reconnect_failures, "all_reconnected_s": round(connected_s, 3),
        "all_caught_up_s": if timed_out { Value::Null } else { json!(round(all_caught_up_s, 3)) },
        "caught_up": summary(&times),
        "backlog_deliveries": report.deliveries, "expected_backlog_deliveries": away.len() as u64 * args.messages,
        "lost": complete.lost, "behind": complete.behind,
        "duplicates": report.duplicates, "order_violations": report.order_violations,
        "errors": counts(&report.errors),
        "procs": Procs::describe(&before, &after),
        "load_after": load_average(),
    }))
}

/// Sums the reports of the sending phase of the resume storm.
#[derive(Default)]
struct SendTotals {
    acked: u64,
    failures: u64,
    errors: HashMap<String, u64>,
    acked_max: HashMap<u32, i64>,
}

impl SendTotals {
    fn add(&mut self, report: ShardReport) {
        self.acked += report.acked;
        self.failures += report.send_failures + report.errors.values().sum::<u64>();
        for (code, n) in report.errors {
            *self.errors.entry(code).or_default() += n;
        }
        for (chat, seq) in report.acked_max {
            let max = self.acked_max.entry(chat).or_insert(seq);
            *max = (*max).max(seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line() {
        assert_eq!(slope(&[(0.0, 10.0), (1.0, 14.0), (2.0, 18.0)]), 4.0);
        assert_eq!(slope(&[(1.0, 3.0)]), 0.0);
    }

    #[test]
    fn every_member_sends_once_a_round_in_either_order() {
        for order in [SendOrder::ChatByChat, SendOrder::Interleaved] {
            let mut senders = order.senders(200, 10);
            senders.sort_unstable();
            assert_eq!(senders, (0..2000).collect::<Vec<_>>(), "{order:?}");
        }
    }

    #[test]
    fn interleaved_sends_change_chat_at_every_turn_and_instance_within_a_round() {
        let senders = SendOrder::Interleaved.senders(200, 10);
        for pair in senders.windows(2) {
            assert_ne!(pair[0] / 10, pair[1] / 10, "same chat twice in a row: {pair:?}");
        }
        for round in senders.chunks(200) {
            for pair in round.windows(2) {
                assert_ne!(pair[0] % 2, pair[1] % 2, "same instance twice in a row: {pair:?}");
            }
        }
        let chat_by_chat = SendOrder::ChatByChat.senders(200, 10);
        assert_eq!(chat_by_chat[..10].iter().map(|c| c / 10).collect::<Vec<_>>(), [0; 10]);
    }
}
