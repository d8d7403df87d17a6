//! The `converge_users` database, owned by user-service.

pub mod app;
pub mod refresh_token;
pub mod user;
