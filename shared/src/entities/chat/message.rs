use sea_orm::entity::prelude::*;

/// A message, numbered by `seq` within its chat.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub chat_id: Uuid,
    pub seq: i64,
    pub sender_id: Uuid,
    /// The sender's id for this send: a retry with the same one returns this message.
    pub client_msg_id: String,
    #[sea_orm(column_type = "Text")]
    pub content: String,
    /// The image the message carries (an `attachments` row).
    pub attachment_id: Option<Uuid>,
    /// Unused: a message's image URL follows from `attachment_id`.
    pub image_url: Option<String>,
    /// The seq of the message this one answers.
    pub reply_to: Option<i64>,
    pub created_at: DateTimeUtc,
    /// When its content last changed; `None` if never.
    pub edited_at: Option<DateTimeUtc>,
    /// When it was deleted: its content is emptied and its image taken off it.
    pub deleted_at: Option<DateTimeUtc>,
    /// The image's size in pixels, copied from its attachment when the message was stored.
    pub image_width: Option<i32>,
    pub image_height: Option<i32>,
    /// The chat's `last_edit_seq` when this message was last edited or deleted.
    pub edit_seq: Option<i64>,
    /// Its reactions, as the JSON of `Vec<ReactionDto>`; `None` when it has none.
    #[sea_orm(column_type = "Text", nullable)]
    pub reactions: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn to_dto(&self) -> crate::dto::MessageDto {
        crate::dto::MessageDto {
            id: self.id,
            chat_id: self.chat_id,
            seq: self.seq,
            sender_id: self.sender_id,
            client_msg_id: self.client_msg_id.clone(),
            content: self.content.clone(),
            image: self.image(),
            reply_to: self.reply_to,
            created_at: self.created_at,
            edited_at: self.edited_at,
            deleted_at: self.deleted_at,
            edit_seq: self.edit_seq,
            reactions: self.reactions(),
        }
    }
}

impl Model {
    /// The stored reactions; unreadable ones (never written so) read as none rather than fail a page.
    pub fn reactions(&self) -> Vec<crate::dto::ReactionDto> {
        self.reactions.as_deref().and_then(|json| serde_json::from_str(json).ok()).unwrap_or_default()
    }

    fn image(&self) -> Option<Box<crate::dto::ImageDto>> {
        let (id, width, height) = (self.attachment_id?, self.image_width?, self.image_height?);
        Some(Box::new(crate::dto::ImageDto::new(id, width, height)))
    }
}
