use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, Object, Result, ResultExt};
use converge_shared::dto::{
    AuthResponse, ChangePasswordRequest, LoginRequest, MeDto, RegisterRequest, UpdateProfileRequest, UserDto,
    UserListQuery,
};
use converge_shared::error::ErrorCode;
use converge_shared::token::AccessClaims;
use uuid::Uuid;

use super::Caller;
use crate::context::AppContext;
use crate::service::{accounts, sessions, users};
use converge_shared::api_error::{ApiError, ApiResult};

pub struct Query;
pub struct Mutation;

fn app<'a>(ctx: &Context<'a>) -> &'a AppContext {
    ctx.data_unchecked::<AppContext>()
}

fn caller<'a>(ctx: &Context<'a>) -> ApiResult<&'a Caller> {
    ctx.data::<Caller>().map_err(|_| ApiError::Internal(anyhow::anyhow!("no caller in the GraphQL context")))
}

fn claims(ctx: &Context<'_>) -> ApiResult<AccessClaims> {
    match &caller(ctx)?.claims {
        Some(Ok(claims)) => Ok(claims.clone()),
        Some(Err(e)) => Err(e.duplicate()),
        None => Err(ApiError::new(ErrorCode::Unauthorized, "an access token is required")),
    }
}

#[Object]
impl Query {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> Result<MeDto> {
        async { users::me(app(ctx), claims(ctx)?.sub).await }.await.extend()
    }

    /// A user by id.
    async fn user(&self, ctx: &Context<'_>, id: Uuid) -> Result<UserDto> {
        async {
            claims(ctx)?;
            users::get(app(ctx), id).await
        }
        .await
        .extend()
    }

    /// Active users, oldest first, optionally filtered by a substring of the username or display name.
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "case-insensitive substring of username or display name")] q: Option<String>,
        after: Option<String>,
        #[graphql(desc = "page size, 1 to 100 (default 20)")] first: Option<i32>,
    ) -> Result<Connection<String, UserDto, EmptyFields, EmptyFields>> {
        async {
            claims(ctx)?;
            let limit = first.map(|n| u64::try_from(n).unwrap_or(0));
            let page = users::list(app(ctx), UserListQuery { q, cursor: after, limit }).await?;
            let mut connection = Connection::new(false, page.next_cursor.is_some());
            for user in page.items {
                connection.edges.push(Edge::new(users::cursor_of(&user), user));
            }
            Ok::<_, ApiError>(connection)
        }
        .await
        .extend()
    }
}

#[Object]
impl Mutation {
    /// Create an account and sign in.
    async fn register(&self, ctx: &Context<'_>, input: RegisterRequest) -> Result<AuthResponse> {
        async { accounts::register(app(ctx), &caller(ctx)?.ip, input).await }.await.extend()
    }

    /// Sign in with a username or email and a password.
    async fn login(&self, ctx: &Context<'_>, input: LoginRequest) -> Result<AuthResponse> {
        async { accounts::login(app(ctx), &caller(ctx)?.ip, input).await }.await.extend()
    }

    /// Exchange a refresh token for new tokens; the presented one is spent.
    async fn refresh_token(&self, ctx: &Context<'_>, refresh_token: String) -> Result<AuthResponse> {
        sessions::refresh(app(ctx), &refresh_token).await.extend()
    }

    /// End the session of a refresh token.
    async fn logout(&self, ctx: &Context<'_>, refresh_token: String) -> Result<bool> {
        sessions::logout(app(ctx), &refresh_token).await.map(|()| true).extend()
    }

    /// End every session of the signed-in user.
    async fn logout_all(&self, ctx: &Context<'_>) -> Result<bool> {
        async { sessions::logout_all(app(ctx), claims(ctx)?.sub).await }.await.map(|()| true).extend()
    }

    /// Change the signed-in user's display name or avatar.
    async fn update_profile(&self, ctx: &Context<'_>, input: UpdateProfileRequest) -> Result<MeDto> {
        async { users::update_profile(app(ctx), claims(ctx)?.sub, input).await }.await.extend()
    }

    /// Change the signed-in user's password. Every other session of the account ends; this one stays
    /// signed in.
    async fn change_password(&self, ctx: &Context<'_>, current_password: String, new_password: String) -> Result<bool> {
        async {
            let claims = claims(ctx)?;
            let req = ChangePasswordRequest { current_password, new_password };
            accounts::change_password(app(ctx), claims.sub, claims.sid, req).await
        }
        .await
        .map(|()| true)
        .extend()
    }
}
