//! The GraphQL door at `/graphql`: queries and mutations over HTTP POST (GraphiQL on a plain GET),
//! subscriptions over the `graphql-transport-ws` protocol on the same path. Resolvers call the same
//! service functions as REST and the WebSocket, so a message sent through any door reaches every
//! subscriber of every door.

mod mutation;
mod query;
mod subscription;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, guard, web};
use async_graphql::http::GraphiQLSource;
use async_graphql::{Context, Data, ErrorExtensions, Schema};
use async_graphql_actix_web::{GraphQLResponse, GraphQLSubscription};
use chrono::{DateTime, Utc};
use converge_shared::api_error::{ApiError, ApiResult};
use converge_shared::auth::{Authenticator, bearer_token};
use converge_shared::error::ErrorCode;
use converge_shared::sessions::EndedSessions;
use converge_shared::token::TokenError;
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

pub use mutation::Mutation;
pub use query::Query;
pub use subscription::Subscription;

use crate::context::{AppContext, Caller};
use crate::service::users;

pub type ChatSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema with limits that keep a single query from costing the server much.
pub fn build_schema(ctx: AppContext) -> ChatSchema {
    Schema::build(Query, Mutation, Subscription).data(ctx).limit_depth(8).limit_complexity(500).finish()
}

/// The schema in SDL, as exported to `docs/chat-service.graphql`.
pub fn sdl() -> String {
    Schema::build(Query, Mutation, Subscription).finish().sdl()
}

/// Mounts `/graphql`: POST for queries and mutations, a WebSocket upgrade for subscriptions, and
/// GraphiQL for a browser's GET.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/graphql")
            .route(web::post().to(execute))
            .route(web::get().guard(guard::Header("upgrade", "websocket")).to(subscribe))
            .route(web::get().to(graphiql)),
    );
}

/// Who is calling, as the resolvers see it: the verified caller, or why there is none.
struct Auth(ApiResult<Caller>);

/// On a subscription connection, when the token of its `connection_init` stops being accepted:
/// from then on the connection's operations are refused and its subscriptions end.
struct TokenDeadline(DateTime<Utc>);

/// On a subscription connection, the session of its `connection_init` token (none for an app's
/// token): when it ends at user-service, the connection's operations are refused and its
/// subscriptions end, as at its deadline.
#[derive(Clone)]
struct TokenSession {
    ended: Arc<EndedSessions>,
    sid: Option<Uuid>,
}

impl TokenSession {
    fn has_ended(&self) -> bool {
        self.sid.is_some_and(|sid| self.ended.has_ended(sid))
    }
}

/// A verified caller, and what else its token says: until when it is accepted, and the version of
/// the profile its name is from.
struct Verified {
    caller: Caller,
    accepted_until: DateTime<Utc>,
    profile_at: Option<i64>,
    session: Option<Uuid>,
}

async fn authenticate(auth: &Authenticator, token: Option<String>) -> ApiResult<Verified> {
    let token = token.ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "an access token is required"))?;
    let claims = auth.verify(&token).await?;
    let (accepted_until, profile_at, session) = (claims.accepted_until(), claims.profile_at, claims.sid);
    Ok(Verified {
        caller: Caller { user_id: claims.sub, name: claims.name, token },
        accepted_until,
        profile_at,
        session,
    })
}

async fn execute(
    schema: web::Data<ChatSchema>,
    auth: web::Data<Authenticator>,
    req: HttpRequest,
    // Through actix's JSON extractor: a malformed body gets the REST routes' JSON error envelope.
    gql: web::Json<async_graphql::Request>,
) -> GraphQLResponse {
    let caller = authenticate(&auth, bearer_token(&req).map(str::to_owned)).await.map(|verified| verified.caller);
    schema.execute(gql.into_inner().data(Auth(caller))).await.into()
}

/// Subscriptions authenticate in `connection_init`: `{"token": "…"}` (or `{"Authorization": "Bearer …"}`);
/// a bearer header on the upgrade request works too, for clients that can set one. As on the
/// WebSocket, a token from after a profile change has the user's chats shown the new name.
async fn subscribe(
    schema: web::Data<ChatSchema>,
    auth: web::Data<Authenticator>,
    app: web::Data<AppContext>,
    req: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let header_token = bearer_token(&req).map(str::to_owned);
    let (auth, app): (Arc<Authenticator>, Arc<AppContext>) = (auth.into_inner(), app.into_inner());
    GraphQLSubscription::new(Schema::clone(&schema))
        .on_connection_init(move |payload| async move {
            let token = init_token(&payload).or(header_token);
            let Verified { caller, accepted_until, profile_at, session } =
                authenticate(&auth, token).await.map_err(|e| e.extend())?;
            let from = users::TokenProfile { name: &caller.name, profile_at, token: Some(&caller.token) };
            if let Err(e) = users::refresh_profile_in_every_chat(&app, caller.user_id, from).await {
                e.log("cannot record a user's new profile");
            }
            let mut data = Data::default();
            data.insert(Auth(Ok(caller)));
            data.insert(TokenDeadline(accepted_until));
            data.insert(TokenSession { ended: auth.ended_sessions().clone(), sid: session });
            Ok(data)
        })
        .start(&req, payload)
}

fn init_token(payload: &serde_json::Value) -> Option<String> {
    if let Some(token) = payload.get("token").and_then(|t| t.as_str()) {
        return Some(token.to_owned());
    }
    let header = ["Authorization", "authorization"].iter().find_map(|key| payload.get(*key)?.as_str())?;
    let (scheme, token) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

async fn graphiql() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql")
            .title("Converge chats — GraphQL")
            .finish(),
    )
}

fn app<'a>(ctx: &Context<'a>) -> &'a AppContext {
    ctx.data_unchecked::<AppContext>()
}

fn caller<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Caller> {
    if ctx.data_opt::<TokenDeadline>().is_some_and(|deadline| Utc::now() > deadline.0) {
        return Err(ApiError::from(TokenError::Expired).extend());
    }
    if ctx.data_opt::<TokenSession>().is_some_and(TokenSession::has_ended) {
        return Err(ApiError::from(TokenError::SessionEnded).extend());
    }
    match ctx.data_opt::<Auth>() {
        Some(Auth(Ok(caller))) => Ok(caller),
        Some(Auth(Err(e))) => Err(e.extend()),
        None => Err(ApiError::new(ErrorCode::Unauthorized, "an access token is required").extend()),
    }
}

/// Ends a subscription with `token_expired` when its connection's token stops being accepted, so
/// that no subscription outlives the token that opened it, and with `invalid_token` when the token's
/// session ends at user-service. The client reconnects with a fresh token and subscribes again
/// (`messageAdded` with `afterSeq` misses nothing).
fn until_token_expires<T, S: Stream<Item = async_graphql::Result<T>>>(
    ctx: &Context<'_>,
    stream: S,
) -> impl Stream<Item = async_graphql::Result<T>> + use<T, S> {
    let deadline = ctx.data_opt::<TokenDeadline>().map(|deadline| deadline.0);
    let session = ctx.data_opt::<TokenSession>().cloned();
    let watched = session.clone();
    let expiry = async move {
        match deadline {
            Some(at) => tokio::time::sleep((at - Utc::now()).to_std().unwrap_or_default()).await,
            None => std::future::pending().await,
        }
    };
    let session_end = async move {
        match watched {
            Some(TokenSession { ended, sid }) => ended.wait_for(sid).await,
            None => std::future::pending().await,
        }
    };
    let why = async move {
        if session.is_some_and(|s| s.has_ended()) {
            return Some(TokenError::SessionEnded);
        }
        deadline.is_some_and(|at| Utc::now() >= at).then_some(TokenError::Expired)
    };
    stream.take_until(futures_util::future::select(Box::pin(expiry), Box::pin(session_end))).chain(
        futures_util::stream::once(why).filter_map(|why| async move { why.map(|e| Err(ApiError::from(e).extend())) }),
    )
}
