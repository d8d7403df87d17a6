use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(ColumnDef::new(Users::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Users::Username).string_len(32).null())
                    .col(ColumnDef::new(Users::UsernameKey).string_len(32).null())
                    .col(ColumnDef::new(Users::Email).string_len(254).null())
                    .col(ColumnDef::new(Users::EmailKey).string_len(254).null())
                    .col(ColumnDef::new(Users::DisplayName).string_len(64).not_null())
                    .col(ColumnDef::new(Users::AvatarUrl).text().null())
                    .col(ColumnDef::new(Users::PasswordHash).text().null())
                    .col(ColumnDef::new(Users::AppId).uuid().null())
                    .col(ColumnDef::new(Users::ExternalId).string_len(255).null())
                    .col(ColumnDef::new(Users::DeactivatedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Users::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Users::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        // Case-insensitive uniqueness lives in the database, so two racing registrations cannot both win.
        for (name, cols) in [
            ("ux_users_username_key", vec![Users::UsernameKey]),
            ("ux_users_email_key", vec![Users::EmailKey]),
            ("ux_users_app_external_id", vec![Users::AppId, Users::ExternalId]),
        ] {
            let mut index = Index::create();
            index.name(name).table(Users::Table).unique();
            for col in cols {
                index.col(col);
            }
            manager.create_index(index.to_owned()).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(ColumnDef::new(RefreshTokens::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(RefreshTokens::UserId).uuid().not_null())
                    .col(ColumnDef::new(RefreshTokens::FamilyId).uuid().not_null())
                    .col(ColumnDef::new(RefreshTokens::TokenHash).string_len(64).not_null().unique_key())
                    .col(ColumnDef::new(RefreshTokens::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(RefreshTokens::ExpiresAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(RefreshTokens::UsedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(RefreshTokens::RevokedAt).timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(RefreshTokens::Table, RefreshTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in
            [("ix_refresh_tokens_family", RefreshTokens::FamilyId), ("ix_refresh_tokens_user", RefreshTokens::UserId)]
        {
            manager.create_index(Index::create().name(name).table(RefreshTokens::Table).col(col).to_owned()).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Apps::Table)
                    .col(ColumnDef::new(Apps::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Apps::Name).string_len(64).not_null().unique_key())
                    .col(ColumnDef::new(Apps::KeyHash).string_len(64).not_null().unique_key())
                    .col(ColumnDef::new(Apps::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Apps::RevokedAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Apps::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(RefreshTokens::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Users::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    UsernameKey,
    Email,
    EmailKey,
    DisplayName,
    AvatarUrl,
    PasswordHash,
    AppId,
    ExternalId,
    DeactivatedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    UserId,
    FamilyId,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Apps {
    Table,
    Id,
    Name,
    KeyHash,
    CreatedAt,
    RevokedAt,
}
