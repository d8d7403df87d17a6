//! What every service's HTTP door shares: the framework's own rejections (bad JSON, wrong content
//! type, unknown route…) answered with the error envelope, and the `/health` and `/metrics` routes.

use crate::api_error::ApiError;
use crate::error::ErrorCode;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, HttpResponse, ResponseError, get, web};

/// JSON bodies: size limit, content type and shape errors in our envelope.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default().limit(limit).error_handler(|err, _req| json_error(err).into())
}

fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::ContentType => {
            ApiError::new(ErrorCode::UnsupportedMediaType, "the body must be JSON (Content-Type: application/json)")
        }
        JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            ApiError::new(ErrorCode::PayloadTooLarge, format!("the body is larger than {limit} bytes"))
        }
        // A well-formed document of the wrong shape (missing field, wrong type, unknown field).
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::new(ErrorCode::ValidationFailed, e.to_string()),
        JsonPayloadError::Deserialize(e) => {
            ApiError::new(ErrorCode::BadRequest, format!("the body is not valid JSON: {e}"))
        }
        _ => ApiError::new(ErrorCode::BadRequest, "the body could not be read"),
    }
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req: &HttpRequest| {
        ApiError::new(ErrorCode::ValidationFailed, format!("invalid query string: {err}")).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req: &HttpRequest| {
        ApiError::new(ErrorCode::BadRequest, format!("invalid path: {err}")).into()
    })
}

/// Unknown routes, and known routes with a method they do not accept.
pub async fn not_found() -> HttpResponse {
    ApiError::new(ErrorCode::NotFound, "no such route").error_response()
}

/// Registers the extractor settings every service shares: JSON bodies up to `max_body` bytes, and
/// JSON, query and path rejections in the error envelope.
pub fn configure_extractors(max_body: usize) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg| {
        cfg.app_data(json_config(max_body))
            .app_data(web::PayloadConfig::new(max_body))
            .app_data(query_config())
            .app_data(path_config());
    }
}

/// Alive: the process answers.
#[utoipa::path(tag = "ops", responses((status = 200)))]
#[get("/health")]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Prometheus metrics of this process.
#[get("/metrics")]
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(crate::telemetry::metrics_handle().render())
}
