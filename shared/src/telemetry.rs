//! Logs and metrics, set up the same way in every service.
//!
//! Logs go through `tracing`; each HTTP request runs in a span carrying its `request_id`, so every
//! line logged while serving it names the request. Metrics go through the `metrics` facade into one
//! Prometheus recorder per process, rendered by each service's `/metrics` route.

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_actix_web::RequestId;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global log subscriber (filter from `RUST_LOG`, else `default_filter`). Later calls,
/// as when tests start several services in one process, keep the first subscriber.
pub fn init_tracing(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                )
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed already; ours then stays unused and
            // /metrics renders an empty page, which is visible and harmless.
            let _ = metrics::set_global_recorder(recorder);
            // A histogram keeps every sample until upkeep folds it into its buckets; without a
            // Prometheus scraping /metrics nothing else does, and memory would grow with traffic.
            let upkeep = handle.clone();
            let started = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
            if let Err(e) = started {
                tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histograms grow until scraped");
            }
            handle
        })
        .clone()
}

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Middleware: counts requests by route pattern and status, records their latency, and returns the
/// request id in `x-request-id` so a user can quote it. Wrap it inside `TracingLogger`.
pub async fn observe_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    // The pattern (`/users/{id}`), not the path, keeps the label set bounded.
    let route = req
        .match_pattern()
        .filter(|pattern| pattern != crate::http::UNMATCHED_PATTERN)
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = req.extensions().get::<RequestId>().map(|id| id.to_string());
    let mut res = next.call(req).await?;
    let status = res.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    if let Some(value) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        res.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(res)
}
