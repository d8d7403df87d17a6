//! Migrations of `converge_chat`.

use sea_orm_migration::prelude::*;

mod m20261121_000001_create_chat;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migration_table_name() -> DynIden {
        "seaql_migrations_chat".into_iden()
    }

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261121_000001_create_chat::Migration)]
    }
}
