use sea_orm::entity::prelude::*;

/// A member of a chat, with their delivery and read watermarks: every message with
/// `seq <= last_read_seq` is read by them, so no row per recipient per message is needed.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chat_participants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub chat_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// `owner`, `admin` or `member`.
    pub role: String,
    pub joined_at: DateTimeUtc,
    pub last_delivered_seq: i64,
    pub last_read_seq: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
