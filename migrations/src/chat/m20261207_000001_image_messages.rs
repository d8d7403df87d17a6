//! Image messages: the uploaded images (`attachments`), and on each message the size of its image,
//! so a message carries all a client needs to lay it out before the image arrives.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Attachments::Table)
                    .col(ColumnDef::new(Attachments::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Attachments::UploaderId).uuid().not_null())
                    .col(ColumnDef::new(Attachments::ContentType).string_len(32).not_null())
                    .col(ColumnDef::new(Attachments::Bytes).big_integer().not_null())
                    .col(ColumnDef::new(Attachments::Width).integer().not_null())
                    .col(ColumnDef::new(Attachments::Height).integer().not_null())
                    .col(ColumnDef::new(Attachments::ThumbnailContentType).string_len(32).not_null())
                    .col(ColumnDef::new(Attachments::CreatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        // Who may see an image: the chats whose messages carry it.
        manager
            .create_index(
                Index::create()
                    .name("ix_messages_attachment")
                    .table(Messages::Table)
                    .col(Messages::AttachmentId)
                    .to_owned(),
            )
            .await?;
        // One column per statement: SQLite adds one at a time.
        for column in [Messages::ImageWidth, Messages::ImageHeight] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Messages::Table)
                        .add_column(ColumnDef::new(column).integer().null())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Messages::ImageWidth, Messages::ImageHeight] {
            manager.alter_table(Table::alter().table(Messages::Table).drop_column(column).to_owned()).await?;
        }
        manager.drop_index(Index::drop().name("ix_messages_attachment").table(Messages::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Attachments::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Attachments {
    Table,
    Id,
    UploaderId,
    ContentType,
    Bytes,
    Width,
    Height,
    ThumbnailContentType,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    AttachmentId,
    ImageWidth,
    ImageHeight,
}
