//! The OpenAPI document of chat-service, at `/openapi.json`, browsable at `/docs/`.

use converge_shared::http::ServerErrors;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{attachments, chats, ops};

#[derive(OpenApi)]
#[openapi(
    info(title = "Converge chat-service", description = "Chats, ordered durable messages. Real time: the WebSocket at /ws (docs/protocol.md)."),
    paths(
        chats::create, chats::list, chats::get, chats::rename, chats::add_participants, chats::set_role, chats::remove_participant, chats::leave,
        chats::history, chats::search_messages, chats::send, chats::edit, chats::delete_message, chats::add_reaction,
        chats::remove_reaction, chats::mark_read, attachments::upload, attachments::original,
        attachments::thumbnail, converge_shared::http::health, ops::ready,
    ),
    modifiers(&Bearer, &ServerErrors),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.components.get_or_insert_with(Default::default).add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}
