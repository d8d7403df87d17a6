use sea_orm::entity::prelude::*;

/// An account. Password users have a username, email and password hash; users provisioned by an
/// integrating app have `app_id` + `external_id` instead.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub username: Option<String>,
    /// Lowercased username: the unique index that makes usernames case-insensitive.
    pub username_key: Option<String>,
    pub email: Option<String>,
    /// Lowercased email, unique.
    pub email_key: Option<String>,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub password_hash: Option<String>,
    pub app_id: Option<Uuid>,
    pub external_id: Option<String>,
    pub deactivated_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// Whether the account may sign in and act.
    pub fn is_active(&self) -> bool {
        self.deactivated_at.is_none()
    }

    /// The user as other users see them.
    pub fn to_dto(&self) -> crate::dto::UserDto {
        crate::dto::UserDto {
            id: self.id,
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            avatar_url: self.avatar_url.clone(),
            external_id: self.external_id.clone(),
            active: self.is_active(),
            created_at: self.created_at,
        }
    }

    /// The user as they see themselves.
    pub fn to_me(&self) -> crate::dto::MeDto {
        crate::dto::MeDto { user: self.to_dto(), email: self.email.clone() }
    }
}
