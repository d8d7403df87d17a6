//! Edited, deleted and reacted-to messages: each chat counts its changes (`last_edit_seq`), and each
//! changed message records the count of its latest change (`edit_seq`), so a client that was away
//! asks for the changes after the last one it has, as it asks for messages after a seq. A
//! message's reactions are one JSON text on its row (each emoji and who gave it), read with the
//! message, never joined.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Only changed messages are indexed: an insert of a new message, the hot path, does not touch it.
const CHANGES_INDEX: &str =
    "CREATE INDEX ix_messages_changes ON messages (chat_id, edit_seq) WHERE edit_seq IS NOT NULL";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Chats::Table)
                    .add_column(ColumnDef::new(Chats::LastEditSeq).big_integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;
        // One column per statement: SQLite adds one at a time.
        for column in [
            ColumnDef::new(Messages::EditSeq).big_integer().null().to_owned(),
            ColumnDef::new(Messages::Reactions).text().null().to_owned(),
        ] {
            manager.alter_table(Table::alter().table(Messages::Table).add_column(column).to_owned()).await?;
        }
        // A partial index: the same text on PostgreSQL and SQLite, which sea-query does not build.
        manager.get_connection().execute_unprepared(CHANGES_INDEX).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("ix_messages_changes").table(Messages::Table).to_owned()).await?;
        for column in [Messages::EditSeq, Messages::Reactions] {
            manager.alter_table(Table::alter().table(Messages::Table).drop_column(column).to_owned()).await?;
        }
        manager.alter_table(Table::alter().table(Chats::Table).drop_column(Chats::LastEditSeq).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Chats {
    Table,
    LastEditSeq,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    EditSeq,
    Reactions,
}
