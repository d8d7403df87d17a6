//! CPU and memory of the processes under test, read from `/proc/<pid>/stat` and `status`.
//!
//! A watched pid counts together with its direct children, so PostgreSQL's postmaster stands for
//! all its backends. RSS of such a tree is Σ RssAnon + the largest RssFile + RssShmem: shared
//! buffers, mapped by every backend, are counted once.

use std::collections::BTreeMap;
use std::fs;
use std::time::Instant;

use serde_json::{Value, json};

/// Linux reports `/proc` times in USER_HZ, which is 100 on every architecture the kernel ABI allows.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone)]
pub struct Watched {
    pub name: String,
    pub pid: u32,
}

impl std::str::FromStr for Watched {
    type Err = String;

    /// `name=pid`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, pid) = s.split_once('=').ok_or("expected name=pid")?;
        Ok(Self { name: name.to_owned(), pid: pid.parse().map_err(|_| format!("{pid:?} is not a pid"))? })
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    ticks: u64,
    rss_kib: u64,
}

/// CPU ticks and RSS of each watched process (and of this one, as `bench`) at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    at: Instant,
    usage: BTreeMap<String, Usage>,
}

pub struct Procs {
    watched: Vec<Watched>,
}

impl Procs {
    pub fn new(mut watched: Vec<Watched>) -> Self {
        watched.push(Watched { name: "bench".into(), pid: std::process::id() });
        Self { watched }
    }

    pub fn sample(&self) -> Sample {
        let children = children_by_parent();
        let usage = self
            .watched
            .iter()
            .map(|w| {
                let mut tree = vec![w.pid];
                tree.extend(children.get(&w.pid).into_iter().flatten().copied());
                (w.name.clone(), tree_usage(&tree))
            })
            .collect();
        Sample { at: Instant::now(), usage }
    }

    /// Total RSS (KiB) of the watched processes whose name starts with `prefix`.
    pub fn rss_kib(sample: &Sample, prefix: &str) -> u64 {
        sample.usage.iter().filter(|(name, _)| name.starts_with(prefix)).map(|(_, u)| u.rss_kib).sum()
    }

    /// CPU seconds used by the watched processes whose name starts with `prefix` between two samples.
    pub fn cpu_seconds(from: &Sample, to: &Sample, prefix: &str) -> f64 {
        to.usage
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, u)| u.ticks.saturating_sub(from.usage.get(name).map_or(0, |f| f.ticks)) as f64)
            .sum::<f64>()
            / TICKS_PER_SECOND
    }

    /// `{name: {open, limit}}` of the watched processes whose name starts with `prefix`: the
    /// descriptors each has open and its (soft) limit on open files, read from /proc.
    pub fn open_files(&self, prefix: &str) -> Value {
        let mut out = serde_json::Map::new();
        for w in self.watched.iter().filter(|w| w.name.starts_with(prefix)) {
            let open = std::fs::read_dir(format!("/proc/{}/fd", w.pid)).ok().map(|d| d.count());
            let limit =
                std::fs::read_to_string(format!("/proc/{}/limits", w.pid)).ok().and_then(|l| soft_open_files(&l));
            out.insert(w.name.clone(), json!({ "open": open, "limit": limit }));
        }
        Value::Object(out)
    }

    /// `{name: {cpu_pct, rss_mib}}` between two samples (cpu_pct: 100 = one core busy).
    pub fn describe(from: &Sample, to: &Sample) -> Value {
        let seconds = to.at.duration_since(from.at).as_secs_f64().max(1e-9);
        let mut out = serde_json::Map::new();
        for (name, usage) in &to.usage {
            let cpu = Self::cpu_seconds(from, to, name) / seconds * 100.0;
            out.insert(
                name.clone(),
                json!({ "cpu_pct": round(cpu, 1), "rss_mib": round(usage.rss_kib as f64 / 1024.0, 1) }),
            );
        }
        Value::Object(out)
    }
}

/// Gives the freshly provisioned tables planner statistics, as autovacuum gives a running
/// database within a minute or so. Without them PostgreSQL guesses the tables are tiny and scans
/// `known_users` whole for every chat list (0.3 – 0.7 ms a time with 1 100 users) instead of
/// using its primary key, which would make connection start look slower than it is.
pub fn analyze(url: &str) {
    let analyzed = std::process::Command::new("psql").args([url, "-XAtqc", "ANALYZE"]).status();
    if !analyzed.is_ok_and(|s| s.success()) {
        eprintln!("could not ANALYZE {url}: connection start may measure sequential scans");
    }
}

/// PostgreSQL's running totals of one database, read with `psql` (no driver in the generator).
/// The WAL's are the server's (`pg_stat_wal` has no per-database rows); its times are counted only
/// where `track_wal_io_timing` is on, and are zero otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgCounters {
    pub commits: f64,
    pub rows_written: f64,
    pub wal_bytes: f64,
    /// Full-page images: the first change to a page after a checkpoint logs the whole page.
    pub wal_full_pages: f64,
    pub wal_writes: f64,
    pub wal_syncs: f64,
    /// Milliseconds spent writing and flushing the WAL.
    pub wal_write_ms: f64,
    pub wal_sync_ms: f64,
}

impl PgCounters {
    /// Reads the counters of `url`'s database; `None` when psql or the server does not answer.
    pub fn read(url: &str) -> Option<Self> {
        let sql = "SELECT d.xact_commit, d.tup_inserted + d.tup_updated + d.tup_deleted, w.wal_bytes, w.wal_fpi, \
                   w.wal_write, w.wal_sync, w.wal_write_time, w.wal_sync_time \
                   FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = current_database()";
        let output = std::process::Command::new("psql").args([url, "-XAtF", " ", "-c", sql]).output().ok()?;
        Self::parse(&String::from_utf8(output.stdout).ok()?)
    }

    fn parse(line: &str) -> Option<Self> {
        let mut fields = line.split_whitespace();
        let mut next = || fields.next()?.parse::<f64>().ok();
        Some(Self {
            commits: next()?,
            rows_written: next()?,
            wal_bytes: next()?,
            wal_full_pages: next()?,
            wal_writes: next()?,
            wal_syncs: next()?,
            wal_write_ms: next()?,
            wal_sync_ms: next()?,
        })
    }

    /// Per message between two readings: `{commits, wal_syncs, rows_written, wal_bytes,
    /// wal_full_pages}`, and the mean time of one WAL write and of one flush (`wal_write_ms_mean`,
    /// `wal_sync_ms_mean`; null where `track_wal_io_timing` is off).
    pub fn per_message(from: Option<Self>, to: Option<Self>, messages: u64) -> Value {
        let (Some(from), Some(to)) = (from, to) else { return Value::Null };
        let per = |a: f64, b: f64| round((b - a) / messages.max(1) as f64, 2);
        let mean = |ms: f64, count: f64| (ms > 0.0 && count > 0.0).then(|| round(ms / count, 3));
        json!({
            "commits": per(from.commits, to.commits),
            "wal_syncs": per(from.wal_syncs, to.wal_syncs),
            "rows_written": per(from.rows_written, to.rows_written),
            "wal_bytes": per(from.wal_bytes, to.wal_bytes).round(),
            "wal_full_pages": per(from.wal_full_pages, to.wal_full_pages),
            "wal_write_ms_mean": mean(to.wal_write_ms - from.wal_write_ms, to.wal_writes - from.wal_writes),
            "wal_sync_ms_mean": mean(to.wal_sync_ms - from.wal_sync_ms, to.wal_syncs - from.wal_syncs),
        })
    }
}

/// The soft "Max open files" of a /proc/PID/limits text.
pub fn soft_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

pub fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

fn children_by_parent() -> BTreeMap<u32, Vec<u32>> {
    let mut map: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let Ok(entries) = fs::read_dir("/proc") else { return map };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if let Some(stat) = read_stat(pid) {
            map.entry(stat.1).or_default().push(pid);
        }
    }
    map
}

/// (utime + stime ticks, parent pid) of a process.
fn read_stat(pid: u32) -> Option<(u64, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // Fields from "state" (3rd in proc(5)): ppid is the 4th, utime the 14th, stime the 15th.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime, ppid))
}

fn status_kib(pid: u32, keys: &[&str]) -> u64 {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/status")) else { return 0 };
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            keys.contains(&key).then(|| value.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())?
        })
        .sum()
}

fn tree_usage(pids: &[u32]) -> Usage {
    let mut usage = Usage::default();
    let mut shared_max = 0;
    for &pid in pids {
        usage.ticks += read_stat(pid).map_or(0, |s| s.0);
        usage.rss_kib += status_kib(pid, &["RssAnon"]);
        shared_max = shared_max.max(status_kib(pid, &["RssFile", "RssShmem"]));
    }
    usage.rss_kib += shared_max;
    usage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let procs = Procs::new(vec![]);
        let sample = procs.sample();
        assert!(Procs::rss_kib(&sample, "bench") > 0);
        assert!("pg=12".parse::<Watched>().is_ok());
        assert!("pg".parse::<Watched>().is_err());
    }

    #[test]
    fn postgres_counters_give_per_message_figures_and_mean_flush_times() {
        let from = PgCounters::parse("100 400 81920 5 10 10 5.0 20.0").unwrap();
        let to = PgCounters::parse("110 700 181920 55 30 30 9.0 80.0\n").unwrap();
        let per = PgCounters::per_message(Some(from), Some(to), 100);
        assert_eq!(per["commits"], 0.1);
        assert_eq!(per["rows_written"], 3.0);
        assert_eq!(per["wal_syncs"], 0.2);
        assert_eq!(per["wal_bytes"], 1000.0);
        assert_eq!(per["wal_full_pages"], 0.5);
        assert_eq!(per["wal_write_ms_mean"], 0.2, "4 ms over 20 writes");
        assert_eq!(per["wal_sync_ms_mean"], 3.0, "60 ms over 20 flushes");
        let untimed = PgCounters::parse("110 700 181920 55 30 30 0 0").unwrap();
        let without_timing = PgCounters::per_message(
            Some(PgCounters { wal_sync_ms: 0.0, wal_write_ms: 0.0, ..from }),
            Some(untimed),
            100,
        );
        assert_eq!(without_timing["wal_sync_ms_mean"], Value::Null, "no time counted: track_wal_io_timing is off");
        assert!(PgCounters::parse("").is_none());
    }
}
