//! The web client: the page at `/`, the files of `web/` under `/web/`, and `/web/config.json`, which
//! tells the page where user-service is.
//!
//! Every response carries a strict Content-Security-Policy: scripts and styles only from this
//! origin (no inline code), connections only to this origin and to user-service.

use std::path::PathBuf;

use actix_files::NamedFile;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};
use converge_shared::api_error::{ApiError, ApiResult};
use converge_shared::error::ErrorCode;

use crate::context::AppContext;

/// Mounts the web client. The `/web` scope owns that prefix; `/` is the page alone.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let page = web::resource("/").route(web::get().to(index)).route(web::head().to(index));
    let files = web::resource("/{path:.+}").route(web::get().to(asset)).route(web::head().to(asset));
    cfg.service(page.wrap(from_fn(security_headers))).service(
        web::scope("/web")
            .wrap(from_fn(security_headers))
            .route("/config.json", web::get().to(client_config))
            .service(files),
    );
}

/// The page; never cached, so a deployment's new assets are picked up at the next load.
async fn index(ctx: web::Data<AppContext>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let page = ctx.config.web_dir().join("index.html");
    let file = open(page.clone()).await.ok_or_else(|| {
        ApiError::new(ErrorCode::NotFound, format!("the web client is not installed here ({})", page.display()))
    })?;
    let mut res = file.use_etag(false).use_last_modified(false).into_response(&req);
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(res)
}

/// A file of `web/`, with its content type and conditional-request support; revalidated on each load.
async fn asset(ctx: web::Data<AppContext>, req: HttpRequest, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let not_found = || ApiError::new(ErrorCode::NotFound, "no such file");
    let file = safe_join(ctx.config.web_dir(), &path).ok_or_else(not_found)?;
    let file = open(file).await.ok_or_else(not_found)?;
    let mut res = file.into_response(&req);
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(res)
}

/// Opens a file off the async workers (opening and reading metadata block).
async fn open(path: PathBuf) -> Option<NamedFile> {
    web::block(move || NamedFile::open(path)).await.ok()?.ok()
}

/// What the page needs to know about this deployment.
async fn client_config(ctx: web::Data<AppContext>) -> HttpResponse {
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-cache")).json(serde_json::json!({
        "userServiceUrl": ctx.config.public_user_service_url(),
        "maxMessageChars": ctx.config.max_message_chars,
        "maxUploadBytes": ctx.config.upload_max_bytes,
    }))
}

/// `dir/path` when every segment of `path` is a plain name: no `..`, no hidden files, no
/// backslashes or empty segments, so a request can never leave `dir`.
fn safe_join(dir: PathBuf, path: &str) -> Option<PathBuf> {
    let plain = |s: &str| {
        !s.is_empty() && !s.starts_with('.') && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    path.split('/').all(plain).then(|| dir.join(path))
}

/// Adds the CSP (naming the configured user-service) and the other hardening headers.
async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let csp = req
        .app_data::<web::Data<AppContext>>()
        .map(|ctx| content_security_policy(ctx.config.public_user_service_url()));
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    if let Some(value) = csp.and_then(|csp| HeaderValue::from_str(&csp).ok()) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    Ok(res)
}

/// `connect-src 'self'` covers this origin's `ws:`/`wss:` (CSP level 3). Images may come from https
/// (avatars, later image messages); scripts never do.
fn content_security_policy(user_service_url: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data: blob:; \
         connect-src 'self' {}; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
        origin_of(user_service_url)
    )
}

/// `scheme://host[:port]` of a URL (what a CSP source names), without path; characters that could
/// end the directive are dropped, so configuration cannot widen the policy.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let clean = |s: &str| s.chars().filter(|c| !c.is_whitespace() && !";,'".contains(*c)).collect::<String>();
    format!("{}://{}", clean(scheme), clean(authority))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{origin_of, safe_join};

    #[test]
    fn origin_drops_path_and_directive_breakers() {
        assert_eq!(origin_of("https://users.example.com/api/"), "https://users.example.com");
        assert_eq!(origin_of("http://127.0.0.1:3000"), "http://127.0.0.1:3000");
        assert_eq!(origin_of("http://a.test; script-src *"), "http://a.testscript-src*");
    }

    #[test]
    fn asset_paths_stay_inside_the_directory() {
        let dir = PathBuf::from("/srv/web");
        assert_eq!(safe_join(dir.clone(), "js/app.js"), Some(PathBuf::from("/srv/web/js/app.js")));
        for bad in ["../Cargo.toml", "js/../../x", ".env", "js//app.js", "js\\..\\x", "/etc/passwd", "%2e%2e/x"] {
            assert_eq!(safe_join(dir.clone(), bad), None, "{bad}");
        }
    }
}
