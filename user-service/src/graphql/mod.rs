//! The GraphQL door at `/graphql` (GraphiQL on GET). Resolvers call the same service functions as REST.

mod schema;

use actix_web::{HttpRequest, HttpResponse, web};
use async_graphql::http::GraphiQLSource;
use async_graphql::{EmptySubscription, Schema};
use async_graphql_actix_web::GraphQLResponse;
use converge_shared::token::AccessClaims;

pub use schema::{Mutation, Query};

use crate::context::AppContext;
use crate::http::extract::{bearer_claims, client_ip};
use converge_shared::api_error::ApiError;

pub type UserSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema with limits that keep a single query from costing the server much.
pub fn build_schema(ctx: AppContext) -> UserSchema {
    Schema::build(Query, Mutation, EmptySubscription).data(ctx).limit_depth(8).limit_complexity(500).finish()
}

/// The caller as the resolvers see it.
pub(crate) struct Caller {
    /// The verified access token, an error if one was sent but refused, none if none was sent.
    pub claims: Option<Result<AccessClaims, ApiError>>,
    pub ip: String,
}

/// The request arrives through actix's JSON extractor, so a malformed body gets the same JSON error
/// envelope as every REST route.
pub async fn graphql(
    schema: web::Data<UserSchema>,
    req: HttpRequest,
    gql: web::Json<async_graphql::Request>,
) -> GraphQLResponse {
    let caller = Caller { claims: bearer_claims(&req).await, ip: client_ip(&req) };
    schema.execute(gql.into_inner().data(caller)).await.into()
}

pub async fn graphiql() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(GraphiQLSource::build().endpoint("/graphql").title("Converge users — GraphQL").finish())
}

/// The schema in SDL, as exported to `docs/user-service.graphql`.
pub fn sdl() -> String {
    Schema::build(Query, Mutation, EmptySubscription).finish().sdl()
}
