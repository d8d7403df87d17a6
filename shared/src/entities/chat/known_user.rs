use sea_orm::entity::prelude::*;

/// What chat-service knows of a user-service user: enough to name them, and to keep naming them
/// while user-service is briefly down.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "known_users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub updated_at: DateTimeUtc,
    /// The profile version (a token's `profile_at`) the name and picture are from; none when they
    /// came from a token or lookup that did not say.
    pub profile_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
