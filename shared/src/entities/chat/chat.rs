use sea_orm::entity::prelude::*;

/// A conversation. `last_seq` is the seq of its newest message: the counter that message writes
/// increment in their own transaction, which is what makes seq gap-free.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chats")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `direct` or `group`.
    pub kind: String,
    pub title: Option<String>,
    /// For direct chats, the two user ids in order: unique, so each pair has one direct chat.
    pub direct_key: Option<String>,
    pub created_by: Uuid,
    pub created_at: DateTimeUtc,
    pub last_seq: i64,
    pub last_message_at: Option<DateTimeUtc>,
    /// How many edits and deletions its messages have had: the `edit_seq` of the latest one.
    pub last_edit_seq: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
