//! Migrations of `converge_chat`.

use sea_orm_migration::prelude::*;

mod m20261121_000001_create_chat;
mod m20261206_000001_known_users_profile_at;
mod m20261207_000001_image_messages;
mod m20261208_000001_message_edits;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migration_table_name() -> DynIden {
        "seaql_migrations_chat".into_iden()
    }

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_create_chat::Migration),
            Box::new(m20261206_000001_known_users_profile_at::Migration),
            Box::new(m20261207_000001_image_messages::Migration),
            Box::new(m20261208_000001_message_edits::Migration),
        ]
    }
}
