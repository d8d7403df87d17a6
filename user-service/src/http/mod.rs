//! The REST door: thin handlers that parse, call [`crate::service`], and answer JSON.

pub mod apps;
pub mod auth;
pub mod extract;
pub mod openapi;
pub mod ops;
pub mod users;

use actix_web::web;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

/// Registers every REST route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(auth::register)
        .service(auth::login)
        .service(auth::refresh)
        .service(auth::logout)
        .service(auth::logout_all)
        .service(users::list)
        .service(users::me)
        .service(users::update_me)
        .service(users::change_password)
        .service(users::deactivate_me)
        .service(users::get)
        .service(apps::upsert)
        .service(apps::get)
        .service(converge_shared::http::health)
        .service(ops::ready)
        .service(converge_shared::http::metrics)
        .service(ops::jwks)
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi::ApiDoc::openapi()));
}
