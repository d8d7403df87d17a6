use sea_orm::entity::prelude::*;

/// An uploaded image: its bytes and thumbnail are in the upload store under its id; messages
/// carry it by `attachment_id`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "attachments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Only the uploader can attach it to a message.
    pub uploader_id: Uuid,
    pub content_type: String,
    /// Size of the stored image (after its metadata was stripped).
    pub bytes: i64,
    pub width: i32,
    pub height: i32,
    pub thumbnail_content_type: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn to_dto(&self) -> crate::dto::AttachmentDto {
        let image = crate::dto::ImageDto::new(self.id, self.width, self.height);
        crate::dto::AttachmentDto {
            id: self.id,
            content_type: self.content_type.clone(),
            bytes: self.bytes,
            width: self.width,
            height: self.height,
            url: image.url,
            thumbnail_url: image.thumbnail_url,
            created_at: self.created_at,
        }
    }
}
