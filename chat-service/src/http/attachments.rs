//! `/attachments`: uploading images and fetching them.

use actix_web::http::header::{self, CacheControl, CacheDirective, EntityTag, IfNoneMatch};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, get, post, web};
use converge_shared::api_error::ApiResult;
use converge_shared::auth::AuthUser;
use converge_shared::dto::AttachmentDto;
use converge_shared::error::ErrorEnvelope;
use futures_util::TryStreamExt;
use uuid::Uuid;

use crate::context::AppContext;
use crate::service::attachments::{self, Variant};

/// Upload an image (PNG, JPEG, GIF or WebP; the body is the file's bytes), to send in a message.
///
/// Its format is read from its bytes; the stored image has no metadata and is upright.
#[utoipa::path(tag = "attachments", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "image/*", description = "the image's bytes"),
    responses(
        (status = 201, body = AttachmentDto),
        (status = 413, description = "payload_too_large: over UPLOAD_MAX_BYTES", body = ErrorEnvelope),
        (status = 415, description = "unsupported_media_type: not PNG, JPEG, GIF or WebP", body = ErrorEnvelope),
        (status = 422, description = "invalid_image: unreadable, or over UPLOAD_MAX_PIXELS", body = ErrorEnvelope),
        (status = 429, description = "rate_limited: over UPLOADS_PER_MINUTE; see Retry-After", body = ErrorEnvelope),
    ))]
#[post("/attachments")]
pub async fn upload(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    request: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    // Before the body is read: a flood costs neither the bandwidth nor the decoding.
    ctx.uploads.admit(user.claims.sub)?;
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let bytes = attachments::read_upload(&ctx.config, declared, body).await?;
    let attachment = attachments::upload(&ctx, user.claims.sub, bytes).await?;
    Ok(HttpResponse::Created().json(attachment))
}

/// An image: yours, or one a message of your chats carries.
#[utoipa::path(tag = "attachments", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, content_type = "image/*", body = Vec<u8>), (status = 304), (status = 404, body = ErrorEnvelope)))]
#[get("/attachments/{id}")]
pub async fn original(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    id: web::Path<Uuid>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    serve(&ctx, user, id.into_inner(), Variant::Original, &request).await
}

/// An image scaled down to fit 320 × 320 pixels.
#[utoipa::path(tag = "attachments", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, content_type = "image/*", body = Vec<u8>), (status = 304), (status = 404, body = ErrorEnvelope)))]
#[get("/attachments/{id}/thumbnail")]
pub async fn thumbnail(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    id: web::Path<Uuid>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    serve(&ctx, user, id.into_inner(), Variant::Thumbnail, &request).await
}

async fn serve(
    ctx: &AppContext,
    user: AuthUser,
    id: Uuid,
    variant: Variant,
    request: &HttpRequest,
) -> ApiResult<HttpResponse> {
    let file = attachments::open(ctx, user.claims.sub, id, variant).await?;
    // An image never changes under its id: its tag is the id, and a browser may keep it for good
    // (privately: it is fetched with the user's token).
    let tag = EntityTag::new_strong(format!("{id}-{}", if variant == Variant::Original { "o" } else { "t" }));
    let not_modified = match request.get_header::<IfNoneMatch>() {
        Some(IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.strong_eq(&tag)),
        Some(IfNoneMatch::Any) => true,
        None => false,
    };
    let mut response = if not_modified { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header(header::ETag(tag))
        .insert_header(CacheControl(vec![CacheDirective::Private, CacheDirective::MaxAge(31_536_000)]))
        // Shown as an image, never sniffed into something a browser would run.
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox"));
    if not_modified {
        return Ok(response.finish());
    }
    Ok(response
        .insert_header((header::CONTENT_TYPE, file.content_type))
        .no_chunking(file.bytes)
        .streaming(file.body.map_err(std::io::Error::other)))
}
