//! chat-service's own account of where a message's time goes: the stage histograms each instance
//! exports on `/metrics`, read before and after a measured window and differenced, so that every
//! grid step and the large group carry the server's side of the same window as the generator's.
//!
//! The buckets are the ones chat-service exports for Prometheus (0.5, 1, 2.5, 5, 10, 25 ms, …), so
//! a quantile is reported as the bucket it falls in (`p50_le_ms`: at most that); the mean is exact.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::procs::round;

/// The histograms read, and the names they are reported under, in a message's order.
const STAGES: [(&str, &str); 5] = [
    // The writer's statement and commit of one batch.
    ("message_batch_seconds", "batch"),
    // Of which the statement's round trip to PostgreSQL: execution, the commit's WAL flush and
    // the rows back (the rest is this process building the parameters and reading the rows).
    ("message_batch_statement_seconds", "statement"),
    // The committed batch written to the hot window and published to the relay.
    ("announce_seconds", "announce"),
    // The writer's stamp → the hub of the receiving instance fanning the message out.
    ("fanout_latency_seconds", "stamp_to_hub"),
    // The hub's fan-out → the connection handing the frame to the WebSocket.
    ("delivery_wait_seconds", "hub_to_socket"),
];

#[derive(Debug, Clone, Default, PartialEq)]
struct Histogram {
    /// Cumulative counts by upper bound (seconds), as Prometheus gives them.
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl Histogram {
    fn add(&mut self, other: &Histogram) {
        if self.buckets.is_empty() {
            self.buckets = other.buckets.clone();
        } else {
            for ((_, mine), (_, theirs)) in self.buckets.iter_mut().zip(&other.buckets) {
                *mine += theirs;
            }
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    fn minus(&self, earlier: &Histogram) -> Histogram {
        let buckets = self
            .buckets
            .iter()
            .map(|(le, count)| {
                let before = earlier.buckets.iter().find(|(b, _)| b == le).map_or(0.0, |(_, c)| *c);
                (*le, count - before)
            })
            .collect();
        Histogram { buckets, sum: self.sum - earlier.sum, count: self.count - earlier.count }
    }

    /// The upper bound (ms) of the bucket holding quantile `q`; `None` past the last finite bound.
    fn quantile_at_most_ms(&self, q: f64) -> Option<f64> {
        let wanted = q * self.count;
        self.buckets.iter().find(|(le, count)| *count >= wanted && le.is_finite()).map(|(le, _)| round(le * 1000.0, 3))
    }

    fn describe(&self) -> Value {
        if self.count <= 0.0 {
            return json!({ "count": 0 });
        }
        json!({
            "count": self.count,
            "mean_ms": round(self.sum / self.count * 1000.0, 3),
            "p50_le_ms": self.quantile_at_most_ms(0.5),
            "p90_le_ms": self.quantile_at_most_ms(0.9),
            "p99_le_ms": self.quantile_at_most_ms(0.99),
        })
    }
}

/// The stage histograms of every instance, summed.
#[derive(Debug, Clone, Default)]
pub struct ServerStages(BTreeMap<&'static str, Histogram>);

impl ServerStages {
    /// Reads every instance's `/metrics`; `None` when one does not answer (the line then says so).
    pub async fn read(http: &reqwest::Client, chat_services: &[String]) -> Option<Self> {
        let mut stages = Self::default();
        for base in chat_services {
            let url = format!("{}/metrics", base.trim_end_matches('/'));
            let text = http.get(url).send().await.ok()?.error_for_status().ok()?.text().await.ok()?;
            stages.add(&parse(&text));
        }
        Some(stages)
    }

    fn add(&mut self, other: &ServerStages) {
        for (name, histogram) in &other.0 {
            self.0.entry(name).or_default().add(histogram);
        }
    }

    /// What happened between two readings: `{batch, statement, announce, stamp_to_hub, hub_to_socket}`, each
    /// `{count, mean_ms, p50_le_ms, p90_le_ms, p99_le_ms}`.
    pub fn between(from: Option<Self>, to: Option<Self>) -> Value {
        let (Some(from), Some(to)) = (from, to) else { return Value::Null };
        let mut out = serde_json::Map::new();
        for (metric, label) in STAGES {
            let Some(after) = to.0.get(metric) else { continue };
            let before = from.0.get(metric).cloned().unwrap_or_default();
            out.insert(label.to_owned(), after.minus(&before).describe());
        }
        Value::Object(out)
    }
}

/// The stage histograms of one Prometheus text page (other metrics are skipped).
fn parse(text: &str) -> ServerStages {
    let mut stages = ServerStages::default();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        for (metric, _) in STAGES {
            let Some(rest) = series.strip_prefix(metric) else { continue };
            let histogram = stages.0.entry(metric).or_default();
            if let Some(le) = rest.strip_prefix("_bucket{le=\"").and_then(|r| r.strip_suffix("\"}")) {
                let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::NAN) };
                histogram.buckets.push((le, value));
            } else if rest == "_sum" {
                histogram.sum = value;
            } else if rest == "_count" {
                histogram.count = value;
            }
        }
    }
    stages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(batches: [u64; 3], sum: f64) -> String {
        format!(
            "# TYPE message_batch_seconds histogram\n\
             message_batch_seconds_bucket{{le=\"0.001\"}} {}\n\
             message_batch_seconds_bucket{{le=\"0.0025\"}} {}\n\
             message_batch_seconds_bucket{{le=\"+Inf\"}} {}\n\
             message_batch_seconds_sum {sum}\n\
             message_batch_seconds_count {}\n\
             ws_connections 12\n",
            batches[0], batches[1], batches[2], batches[2]
        )
    }

    #[test]
    fn a_window_reports_what_happened_in_it_on_every_instance() {
        let before = parse(&page([10, 10, 10], 0.005));
        // 30 more batches on one instance: 0 under 1 ms, 29 under 2.5 ms, 1 above; 60 ms in all.
        let mut after = parse(&page([10, 39, 40], 0.065));
        after.add(&parse(&page([0, 0, 0], 0.0)));
        let stages = ServerStages::between(Some(before), Some(after));
        let batch = &stages["batch"];
        assert_eq!(batch["count"], 30.0);
        assert_eq!(batch["mean_ms"], 2.0);
        assert_eq!(batch["p50_le_ms"], 2.5);
        assert_eq!(batch["p99_le_ms"], Value::Null, "the slowest batch is past the last finite bucket");
        assert!(stages.get("announce").is_none(), "an instance that never announced reports no stage");
    }

    #[test]
    fn an_instance_that_did_not_answer_gives_no_stages() {
        assert_eq!(ServerStages::between(None, Some(ServerStages::default())), Value::Null);
    }
}
