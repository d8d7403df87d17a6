//! `/chats`: chats, participants and messages over REST.

use actix_web::{HttpResponse, delete, get, patch, post, put, web};
use converge_shared::api_error::ApiResult;
use converge_shared::auth::AuthUser;
use converge_shared::dto::{
    AddParticipantsRequest, ChatDto, CreateChatRequest, EditMessageRequest, MarkReadRequest, MessageDto, MessagePage,
    MessagesQuery, RenameChatRequest, SearchQuery, SearchResults, SendMessageRequest, SetRoleRequest,
};
use converge_shared::error::ErrorEnvelope;
use uuid::Uuid;
use validator::Validate;

use crate::context::{AppContext, Caller};
use crate::service::{chats, edits, messages, search};

fn caller(user: AuthUser) -> Caller {
    Caller { user_id: user.claims.sub, name: user.claims.name, token: user.token }
}

/// Create a direct chat (returns the existing one if the pair has one) or a group.
#[utoipa::path(tag = "chats", security(("bearer" = [])), request_body = CreateChatRequest, responses(
    (status = 201, description = "created", body = ChatDto),
    (status = 200, description = "the existing direct chat", body = ChatDto),
    (status = 422, body = ErrorEnvelope),
    (status = 429, description = "rate_limited: over CHAT_INVITES_PER_MINUTE; see Retry-After", body = ErrorEnvelope),
))]
#[post("/chats")]
pub async fn create(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    body: web::Json<CreateChatRequest>,
) -> ApiResult<HttpResponse> {
    let (chat, created) = chats::create(&ctx, &caller(user), body.into_inner()).await?;
    Ok(if created { HttpResponse::Created().json(chat) } else { HttpResponse::Ok().json(chat) })
}

/// My chats, most recently active first, with the last message and unread count.
#[utoipa::path(tag = "chats", security(("bearer" = [])), responses((status = 200, body = Vec<ChatDto>)))]
#[get("/chats")]
pub async fn list(ctx: web::Data<AppContext>, user: AuthUser) -> ApiResult<web::Json<Vec<ChatDto>>> {
    Ok(web::Json(chats::list(&ctx, user.claims.sub).await?))
}

/// One of my chats.
#[utoipa::path(tag = "chats", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = ChatDto), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
))]
#[get("/chats/{id}")]
pub async fn get(ctx: web::Data<AppContext>, user: AuthUser, id: web::Path<Uuid>) -> ApiResult<web::Json<ChatDto>> {
    Ok(web::Json(chats::get(&ctx, user.claims.sub, id.into_inner()).await?))
}

/// Rename a group (owners and admins); its members get `conversation_updated`.
#[utoipa::path(tag = "chats", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = RenameChatRequest,
    responses((status = 200, body = ChatDto), (status = 403, body = ErrorEnvelope),
        (status = 409, description = "a direct chat", body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[patch("/chats/{id}")]
pub async fn rename(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<RenameChatRequest>,
) -> ApiResult<web::Json<ChatDto>> {
    Ok(web::Json(chats::rename(&ctx, &caller(user), id.into_inner(), &body.title).await?))
}

/// Set a member's role (the owner only); `owner` hands the group over and makes the caller an
/// admin. Members get `participant_role_changed`.
#[utoipa::path(tag = "chats", security(("bearer" = [])), params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    request_body = SetRoleRequest, responses((status = 200, body = ChatDto), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 409, description = "a direct chat", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
#[put("/chats/{id}/participants/{user_id}/role")]
pub async fn set_role(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<SetRoleRequest>,
) -> ApiResult<web::Json<ChatDto>> {
    let (chat_id, user_id) = path.into_inner();
    Ok(web::Json(chats::set_role(&ctx, &caller(user), chat_id, user_id, body.role).await?))
}

/// Add users to a group (owners and admins).
#[utoipa::path(tag = "chats", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = AddParticipantsRequest,
    responses((status = 200, body = ChatDto), (status = 403, body = ErrorEnvelope),
        (status = 429, description = "rate_limited: over CHAT_INVITES_PER_MINUTE; see Retry-After", body = ErrorEnvelope)))]
#[post("/chats/{id}/participants")]
pub async fn add_participants(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<AddParticipantsRequest>,
) -> ApiResult<web::Json<ChatDto>> {
    body.validate()?;
    let chat = chats::add_participants(&ctx, &caller(user), id.into_inner(), body.into_inner().user_ids).await?;
    Ok(web::Json(chat))
}

/// Remove a participant from a group (owners and admins; anyone may remove themselves).
#[utoipa::path(tag = "chats", security(("bearer" = [])), params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorEnvelope)))]
#[delete("/chats/{id}/participants/{user_id}")]
pub async fn remove_participant(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (chat_id, user_id) = path.into_inner();
    chats::remove_participant(&ctx, &caller(user), chat_id, user_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Leave a group.
#[utoipa::path(tag = "chats", security(("bearer" = [])), params(("id" = Uuid, Path)), responses((status = 204)))]
#[post("/chats/{id}/leave")]
pub async fn leave(ctx: web::Data<AppContext>, user: AuthUser, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let caller = caller(user);
    chats::remove_participant(&ctx, &caller, id.into_inner(), caller.user_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A page of history, ascending by seq: `after` pages forward, `before` backward, neither gives the newest.
#[utoipa::path(tag = "messages", security(("bearer" = [])), params(("id" = Uuid, Path), MessagesQuery),
    responses((status = 200, body = MessagePage), (status = 403, body = ErrorEnvelope)))]
#[get("/chats/{id}/messages")]
pub async fn history(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<MessagesQuery>,
) -> ApiResult<web::Json<MessagePage>> {
    Ok(web::Json(messages::page(&ctx, user.claims.sub, id.into_inner(), query.into_inner()).await?))
}

/// Send a message; a retry with the same `clientMsgId` returns the original.
#[utoipa::path(tag = "messages", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = SendMessageRequest,
    responses((status = 201, body = MessageDto), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, description = "rate_limited: over USER_WRITES_PER_SECOND; see Retry-After", body = ErrorEnvelope)))]
#[post("/chats/{id}/messages")]
pub async fn send(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<SendMessageRequest>,
) -> ApiResult<HttpResponse> {
    let message = messages::send(&ctx, user.claims.sub, id.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(message))
}

/// Edit one of my messages: its content is replaced, its seq stays; the chat gets `message_updated`.
#[utoipa::path(tag = "messages", security(("bearer" = [])), params(("id" = Uuid, Path), ("seq" = i64, Path)),
    request_body = EditMessageRequest, responses(
    (status = 200, description = "the message as it is now", body = MessageDto),
    (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 409, description = "message_deleted, or edit_conflict: the message no longer reads `replaces`", body = ErrorEnvelope),
    (status = 422, body = ErrorEnvelope),
    (status = 429, description = "rate_limited: over USER_WRITES_PER_SECOND; see Retry-After", body = ErrorEnvelope),
))]
#[patch("/chats/{id}/messages/{seq}")]
pub async fn edit(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<(Uuid, i64)>,
    body: web::Json<EditMessageRequest>,
) -> ApiResult<web::Json<MessageDto>> {
    let (chat_id, seq) = path.into_inner();
    Ok(web::Json(edits::edit(&ctx, user.claims.sub, chat_id, seq, body.into_inner()).await?))
}

/// Delete a message (mine, or any in a group I own or administer): its content and image go, its
/// seq stays; the chat gets `message_updated`. Deleting it again changes nothing.
#[utoipa::path(tag = "messages", security(("bearer" = [])), params(("id" = Uuid, Path), ("seq" = i64, Path)),
    responses(
    (status = 200, description = "what is left of the message", body = MessageDto),
    (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    (status = 429, description = "rate_limited: over USER_WRITES_PER_SECOND; see Retry-After", body = ErrorEnvelope),
))]
#[delete("/chats/{id}/messages/{seq}")]
pub async fn delete_message(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<(Uuid, i64)>,
) -> ApiResult<web::Json<MessageDto>> {
    let (chat_id, seq) = path.into_inner();
    Ok(web::Json(edits::delete(&ctx, user.claims.sub, chat_id, seq).await?))
}

/// Add my reaction `emoji` to a message (again: no change); the chat gets `message_updated`.
#[utoipa::path(tag = "messages", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("seq" = i64, Path), ("emoji" = String, Path, description = "one emoji, percent-encoded")),
    responses((status = 200, description = "the message as it is now", body = MessageDto),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "message_deleted", body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, description = "rate_limited: over USER_WRITES_PER_SECOND; see Retry-After", body = ErrorEnvelope)))]
#[put("/chats/{id}/messages/{seq}/reactions/{emoji}")]
pub async fn add_reaction(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<(Uuid, i64, String)>,
) -> ApiResult<web::Json<MessageDto>> {
    let (chat_id, seq, emoji) = path.into_inner();
    Ok(web::Json(edits::react(&ctx, user.claims.sub, chat_id, seq, &emoji, true).await?))
}

/// Take my reaction `emoji` back (none given: no change); the chat gets `message_updated`.
#[utoipa::path(tag = "messages", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("seq" = i64, Path), ("emoji" = String, Path, description = "one emoji, percent-encoded")),
    responses((status = 200, description = "the message as it is now", body = MessageDto),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "message_deleted", body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 429, description = "rate_limited: over USER_WRITES_PER_SECOND; see Retry-After", body = ErrorEnvelope)))]
#[delete("/chats/{id}/messages/{seq}/reactions/{emoji}")]
pub async fn remove_reaction(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<(Uuid, i64, String)>,
) -> ApiResult<web::Json<MessageDto>> {
    let (chat_id, seq, emoji) = path.into_inner();
    Ok(web::Json(edits::react(&ctx, user.claims.sub, chat_id, seq, &emoji, false).await?))
}

/// Find messages of my chats (or of one) by their text, newest first.
#[utoipa::path(tag = "messages", security(("bearer" = [])), params(SearchQuery),
    responses((status = 200, body = SearchResults), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[get("/messages/search")]
pub async fn search_messages(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    query: web::Query<SearchQuery>,
) -> ApiResult<web::Json<SearchResults>> {
    Ok(web::Json(search::messages(&ctx, user.claims.sub, query.into_inner()).await?))
}

/// Mark everything up to `seq` as read.
#[utoipa::path(tag = "messages", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = MarkReadRequest,
    responses((status = 204), (status = 422, description = "invalid_seq", body = ErrorEnvelope)))]
#[post("/chats/{id}/read")]
pub async fn mark_read(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<MarkReadRequest>,
) -> ApiResult<HttpResponse> {
    messages::mark_read(&ctx, user.claims.sub, id.into_inner(), body.seq).await?;
    Ok(HttpResponse::NoContent().finish())
}
