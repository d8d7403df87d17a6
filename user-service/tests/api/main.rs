//! user-service driven over HTTP and GraphQL, on PostgreSQL and on SQLite. One binary, one link.

mod accounts;
mod apps;
mod cors;
mod errors;
mod graphql;
mod helpers;
mod ops;
mod passwords;
mod schema;
mod tokens;
mod users;
