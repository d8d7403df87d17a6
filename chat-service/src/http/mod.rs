//! The REST door: thin handlers over [`crate::service`].

pub mod attachments;
pub mod chats;
pub mod openapi;
pub mod ops;
pub mod web_client;

use actix_web::web;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(chats::create)
        .service(chats::list)
        .service(chats::get)
        .service(chats::rename)
        .service(chats::add_participants)
        .service(chats::set_role)
        .service(chats::remove_participant)
        .service(chats::leave)
        .service(chats::history)
        .service(chats::send)
        .service(chats::search_messages)
        .service(chats::edit)
        .service(chats::delete_message)
        .service(chats::add_reaction)
        .service(chats::remove_reaction)
        .service(chats::mark_read)
        .service(attachments::upload)
        .service(attachments::original)
        .service(attachments::thumbnail)
        .service(converge_shared::http::health)
        .service(ops::ready)
        .service(converge_shared::http::metrics)
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi::ApiDoc::openapi()))
        .configure(web_client::configure);
}
