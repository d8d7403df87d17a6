//! # chat-service
//!
//! Chats, ordered durable messages, and their real-time delivery.
//!
//! ## Layout
//! - [`http`] and [`ws`]: the doors (REST, the WebSocket gateway), thin.
//! - [`service`]: the rules (who may post, how seq is assigned, what is published), shared by every door.
//! - [`hub`]: this instance's connections and in-order fan-out of each chat's events.
//! - [`relay`]: how events travel between instances (in-process in the embedded default, Redis
//!   pub/sub when scaled); [`window`]: each chat's recent messages; [`presence`]: who is online.
//! - [`startup`], [`context`], [`config`]: building the server, the shared state, the configuration.

pub mod config;
pub mod context;
pub mod graphql;
pub mod http;
pub mod hub;
pub mod presence;
pub mod relay;
pub mod service;
pub mod startup;
pub mod window;
pub mod ws;

pub use config::Config;
pub use startup::Application;
