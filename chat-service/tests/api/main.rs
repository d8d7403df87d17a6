//! chat-service driven as clients would: a real user-service issuing tokens, real WebSocket
//! clients, REST, on PostgreSQL and on SQLite. One binary, one link.

mod batching;
mod edits;
mod errors;
mod graphql;
mod graphql_events;
mod groups;
mod helpers;
mod images;
mod ops;
mod rest;
mod search;
mod sessions;
mod tokens;
mod ws;
