//! `known_users.profile_at`: the profile version (user-service's `updated_at`, in ms) of the name
//! and picture kept, so a token that brings a later one has chat-service look the profile up again.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(KnownUsers::Table)
                    .add_column(ColumnDef::new(KnownUsers::ProfileAt).big_integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(KnownUsers::Table).drop_column(KnownUsers::ProfileAt).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum KnownUsers {
    Table,
    ProfileAt,
}
