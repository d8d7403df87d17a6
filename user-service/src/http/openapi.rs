//! The OpenAPI document of user-service, served at `/openapi.json` and browsable at `/docs/`.

use converge_shared::http::ServerErrors;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{apps, auth, ops, users};

#[derive(OpenApi)]
#[openapi(
    info(title = "Converge user-service", description = "Accounts, tokens and external identities."),
    paths(
        auth::register, auth::login, auth::refresh, auth::logout, auth::logout_all,
        users::list, users::me, users::update_me, users::change_password, users::deactivate_me, users::get,
        apps::upsert, apps::get,
        converge_shared::http::health, ops::ready, ops::jwks,
    ),
    modifiers(&SecuritySchemes, &ServerErrors),
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))));
    }
}
