//! sea-orm entities, one module per database: a service reads only its own.

pub mod chat;
pub mod users;
