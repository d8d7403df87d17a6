use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

/// A user as other users see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "User"))]
pub struct UserDto {
    pub id: Uuid,
    /// Absent for users provisioned by an integrating app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
    /// The id the integrating app knows this user by, for app-provisioned users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

/// The signed-in user's own profile: the public profile plus private fields (email).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "graphql", derive(async_graphql::SimpleObject), graphql(name = "Me"))]
pub struct MeDto {
    #[serde(flatten)]
    #[cfg_attr(feature = "graphql", graphql(flatten))]
    pub user: UserDto,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// `PATCH /users/me`: only the fields present change.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "graphql", derive(async_graphql::InputObject), graphql(name = "UpdateProfileInput"))]
pub struct UpdateProfileRequest {
    #[validate(length(min = 1, max = 64, message = "must be 1 to 64 characters"))]
    pub display_name: Option<String>,
    /// An `https://` or `http://` URL; an empty string removes the avatar.
    #[validate(length(max = 2048, message = "must be at most 2048 characters"), custom(function = "super::http_url"))]
    pub avatar_url: Option<String>,
}

/// `POST /users/me/password`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[validate(length(min = 1, max = 128, message = "must be 1 to 128 characters"))]
    pub current_password: String,
    /// The same rules as at registration, and not the current password.
    #[validate(custom(function = "super::password_rule"))]
    pub new_password: String,
}

/// Query of `GET /users`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams, Validate)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Case-insensitive substring of the username or display name.
    #[validate(length(max = 64, message = "must be at most 64 characters"))]
    pub q: Option<String>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[validate(range(min = 1, max = 100, message = "must be between 1 and 100"))]
    pub limit: Option<u64>,
}

/// `PUT /apps/users/{externalId}`: what an integrating app knows about one of its users.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Validate)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalUserRequest {
    #[validate(length(min = 1, max = 64, message = "must be 1 to 64 characters"))]
    pub display_name: String,
    #[validate(length(max = 2048, message = "must be at most 2048 characters"), custom(function = "super::http_url"))]
    pub avatar_url: Option<String>,
}

/// The user an app upserted, and an access token to act as them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalUserResponse {
    pub user: UserDto,
    /// Whether this call created the user (false: it existed and was updated).
    pub created: bool,
    pub access_token: String,
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}
