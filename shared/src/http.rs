//! What every service's HTTP door shares: the framework's own rejections (bad JSON, wrong content
//! type, unknown route, wrong method…) answered with the error envelope, and the `/health` and
//! `/metrics` routes.

use crate::api_error::ApiError;
use crate::error::ErrorCode;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, ResponseError, get, web};

/// Binds a service's listening socket with room for `backlog` connections not yet accepted.
///
/// std's `TcpListener::bind` queues 128. When every client of a restarted instance reconnects at
/// once, the kernel drops the SYNs beyond that and each of those clients waits a second for its
/// retransmit (`docs/benchmarks-history.md`: 100 – 124 `ListenOverflows` in a 1 000-client resume storm).
/// Linux caps the queue at `net.core.somaxconn` (4 096 by default since 5.4).
pub fn listen(host: &str, port: u16, backlog: u32) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::net::ToSocketAddrs;

    let mut last_error = None;
    // Each address the host names, in order, as std's `bind` tries them.
    for addr in (host, port).to_socket_addrs()? {
        let bound = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).and_then(|socket| {
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
            Ok(socket)
        });
        match bound {
            Ok(socket) => return Ok(socket.into()),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error
        .unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the host names no address")))
}

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

/// The pattern of the catch-all resource of [`configure_fallback`]; metrics label it `unmatched`.
pub const UNMATCHED_PATTERN: &str = "/{unmatched:.*}";

/// Registers what answers a request no route took; call it after every route.
///
/// The `#[get]`, `#[post]`… macros guard each resource by its method, so a known path asked with
/// another method falls through every resource, to a route-less resource that matches any path.
/// Actix answers it as any resource whose routes refuse the method: 405 with an `Allow` header
/// naming each method guard the router checked on the way, i.e. the methods of the routes whose
/// path matched; none checked means no route knows the path. [`method_not_allowed`] renders both.
/// The default service answers paths a scope (`/web`) owns but none of its routes matches.
pub fn configure_fallback(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(UNMATCHED_PATTERN)).default_service(web::to(not_found));
}

async fn not_found() -> HttpResponse {
    no_such_route().error_response()
}

fn no_such_route() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

/// Middleware: a 405 gets the error envelope (`method_not_allowed`) and an `Allow` header naming each
/// method once; a 405 that names no method (the catch-all of [`configure_fallback`]) is an unknown
/// path, a 404 `not_found`. Wrap it inside the metrics middleware, so that counts the final status.
pub async fn method_not_allowed(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let res = next.call(req).await?;
    if res.status() != StatusCode::METHOD_NOT_ALLOWED {
        return Ok(res.map_into_left_body());
    }
    let allowed = allowed_methods(res.headers());
    let response = if allowed.is_empty() {
        no_such_route().error_response()
    } else {
        let allow = allowed.join(", ");
        let message = format!("{} is not allowed on this route; use {allow}", res.request().method());
        let mut response = ApiError::new(ErrorCode::MethodNotAllowed, message).error_response();
        if let Ok(value) = HeaderValue::from_str(&allow) {
            response.headers_mut().insert(header::ALLOW, value);
        }
        response
    };
    Ok(res.into_response(response).map_into_right_body())
}

/// The methods an `Allow` header names, each once, in order (actix lists a method once per route).
fn allowed_methods(headers: &HeaderMap) -> Vec<&str> {
    let mut methods = Vec::new();
    let named = headers.get_all(header::ALLOW).filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
    for method in named.map(str::trim).filter(|m| !m.is_empty()) {
        if !methods.contains(&method) {
            methods.push(method);
        }
    }
    methods
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

#[cfg(test)]
mod listen_tests {
    use super::listen;

    /// A burst larger than std's 128 waits in the queue instead of losing SYNs: every connection
    /// completes its handshake before the listener accepts any, and each is then accepted.
    #[test]
    fn listener_holds_a_burst_beyond_128_before_accepting() {
        let listener = listen("127.0.0.1", 0, 512).expect("binds");
        let addr = listener.local_addr().expect("bound");
        let timeout = std::time::Duration::from_secs(5);
        let clients: Vec<_> = (0..400)
            .map(|i| {
                std::net::TcpStream::connect_timeout(&addr, timeout)
                    .unwrap_or_else(|e| panic!("connection {i} not queued (is net.core.somaxconn below 400?): {e}"))
            })
            .collect();
        let accepted: Vec<_> = (0..clients.len()).map(|_| listener.accept().expect("queued connection")).collect();
        let mut peers: Vec<_> = accepted.iter().map(|(_, peer)| *peer).collect();
        let mut locals: Vec<_> = clients.iter().map(|c| c.local_addr().expect("connected")).collect();
        peers.sort();
        locals.sort();
        assert_eq!(peers, locals, "each client accepted once");
    }
}

/// Adds to every operation of an OpenAPI document (but `/health`, which reads nothing) the answers
/// any request may get whatever its route: 500 `internal` and 503 `unavailable` (the database
/// cannot be reached; `Retry-After` says when to retry), both the error envelope. Declared once
/// here rather than on every handler, so no route's documentation forgets them.
pub struct ServerErrors;

impl utoipa::Modify for ServerErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Header, ObjectBuilder, Ref, ResponseBuilder, Type};
        let envelope = || ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorEnvelope"))).build();
        let internal = ResponseBuilder::new()
            .description("internal: a failure on the server's side; quote the x-request-id response header")
            .content("application/json", envelope())
            .build();
        let unavailable = ResponseBuilder::new()
            .description("unavailable: the database cannot be reached; retry after Retry-After seconds")
            .content("application/json", envelope())
            .header("Retry-After", Header::new(ObjectBuilder::new().schema_type(Type::Integer)))
            .build();
        let components = openapi.components.get_or_insert_with(Default::default);
        components.responses.insert("Internal".into(), internal.into());
        components.responses.insert("Unavailable".into(), unavailable.into());
        for (path, item) in openapi.paths.paths.iter_mut() {
            if path == "/health" {
                continue;
            }
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                responses.entry("500".into()).or_insert_with(|| Ref::from_response_name("Internal").into());
                responses.entry("503".into()).or_insert_with(|| Ref::from_response_name("Unavailable").into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::ALLOW;
    use actix_web::middleware::from_fn;
    use actix_web::{App, HttpResponse, get, post, test, web};

    use super::{configure_fallback, method_not_allowed};
    use crate::error::{ErrorCode, ErrorEnvelope};

    #[get("/things")]
    async fn list() -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    #[post("/things")]
    async fn create() -> HttpResponse {
        HttpResponse::Created().finish()
    }

    #[get("/things/{id}")]
    async fn one() -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    /// Answers `method path` through routes declared both ways: method macros and a resource.
    async fn answer(method: &str, path: &str) -> (u16, Option<String>, ErrorEnvelope) {
        let app = test::init_service(
            App::new()
                .wrap(from_fn(method_not_allowed))
                .service(list)
                .service(create)
                .service(one)
                .service(web::resource("/resource").get(HttpResponse::Ok).put(HttpResponse::Ok))
                .configure(configure_fallback),
        )
        .await;
        let method = method.parse().expect("a method");
        let res = test::call_service(&app, test::TestRequest::default().method(method).uri(path).to_request()).await;
        let allow = res.headers().get(ALLOW).map(|v| v.to_str().expect("ascii").to_owned());
        (res.status().as_u16(), allow, test::read_body_json(res).await)
    }

    // These pin actix's behaviour that `configure_fallback` relies on: its catch-all sees the
    // methods of every resource whose path matched.
    #[actix_web::test]
    async fn a_method_no_route_of_a_known_path_takes_is_405_naming_the_methods_once() {
        let (status, allow, body) = answer("DELETE", "/things").await;
        assert_eq!((status, allow.as_deref(), body.error.code), (405, Some("GET, POST"), ErrorCode::MethodNotAllowed));
        assert_eq!(body.error.message, "DELETE is not allowed on this route; use GET, POST");

        let (status, allow, _) = answer("PATCH", "/resource").await;
        assert_eq!((status, allow.as_deref()), (405, Some("GET, PUT")));
    }

    #[actix_web::test]
    async fn an_unknown_path_is_404_whatever_the_method() {
        for method in ["GET", "DELETE"] {
            let (status, allow, body) = answer(method, "/things/1/nope").await;
            assert_eq!((status, allow, body.error.code), (404, None, ErrorCode::NotFound), "{method}");
        }
    }
}
