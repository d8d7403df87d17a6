use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Chats::Table)
                    .col(ColumnDef::new(Chats::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Chats::Kind).string_len(8).not_null())
                    .col(ColumnDef::new(Chats::Title).string_len(128).null())
                    // "smaller-uuid:larger-uuid" for direct chats: the unique index that makes a
                    // direct chat between two users exist once, whoever creates it and however often.
                    .col(ColumnDef::new(Chats::DirectKey).string_len(80).null().unique_key())
                    .col(ColumnDef::new(Chats::CreatedBy).uuid().not_null())
                    .col(ColumnDef::new(Chats::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Chats::LastSeq).big_integer().not_null().default(0))
                    .col(ColumnDef::new(Chats::LastMessageAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChatParticipants::Table)
                    .col(ColumnDef::new(ChatParticipants::ChatId).uuid().not_null())
                    .col(ColumnDef::new(ChatParticipants::UserId).uuid().not_null())
                    .col(ColumnDef::new(ChatParticipants::Role).string_len(8).not_null())
                    .col(ColumnDef::new(ChatParticipants::JoinedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(ChatParticipants::LastDeliveredSeq).big_integer().not_null().default(0))
                    .col(ColumnDef::new(ChatParticipants::LastReadSeq).big_integer().not_null().default(0))
                    .primary_key(Index::create().col(ChatParticipants::ChatId).col(ChatParticipants::UserId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ChatParticipants::Table, ChatParticipants::ChatId)
                            .to(Chats::Table, Chats::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // "My chats" starts from the user.
        manager
            .create_index(
                Index::create()
                    .name("ix_chat_participants_user")
                    .table(ChatParticipants::Table)
                    .col(ChatParticipants::UserId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .col(ColumnDef::new(Messages::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Messages::ChatId).uuid().not_null())
                    .col(ColumnDef::new(Messages::Seq).big_integer().not_null())
                    .col(ColumnDef::new(Messages::SenderId).uuid().not_null())
                    .col(ColumnDef::new(Messages::ClientMsgId).string_len(64).not_null())
                    .col(ColumnDef::new(Messages::Content).text().not_null())
                    .col(ColumnDef::new(Messages::AttachmentId).uuid().null())
                    .col(ColumnDef::new(Messages::ImageUrl).text().null())
                    .col(ColumnDef::new(Messages::ReplyTo).big_integer().null())
                    .col(ColumnDef::new(Messages::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Messages::EditedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Messages::DeletedAt).timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Messages::Table, Messages::ChatId)
                            .to(Chats::Table, Chats::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // History pages and resume read by (chat, seq); idempotent sends look up by client id.
        manager
            .create_index(
                Index::create()
                    .name("ux_messages_chat_seq")
                    .table(Messages::Table)
                    .col(Messages::ChatId)
                    .col(Messages::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_messages_chat_sender_client_msg")
                    .table(Messages::Table)
                    .col(Messages::ChatId)
                    .col(Messages::SenderId)
                    .col(Messages::ClientMsgId)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(KnownUsers::Table)
                    .col(ColumnDef::new(KnownUsers::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(KnownUsers::DisplayName).string_len(64).not_null())
                    .col(ColumnDef::new(KnownUsers::AvatarUrl).text().null())
                    .col(ColumnDef::new(KnownUsers::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            KnownUsers::Table.into_iden(),
            Messages::Table.into_iden(),
            ChatParticipants::Table.into_iden(),
            Chats::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Chats {
    Table,
    Id,
    Kind,
    Title,
    DirectKey,
    CreatedBy,
    CreatedAt,
    LastSeq,
    LastMessageAt,
}

#[derive(DeriveIden)]
enum ChatParticipants {
    Table,
    ChatId,
    UserId,
    Role,
    JoinedAt,
    LastDeliveredSeq,
    LastReadSeq,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    ChatId,
    Seq,
    SenderId,
    ClientMsgId,
    Content,
    AttachmentId,
    ImageUrl,
    ReplyTo,
    CreatedAt,
    EditedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum KnownUsers {
    Table,
    Id,
    DisplayName,
    AvatarUrl,
    UpdatedAt,
}
