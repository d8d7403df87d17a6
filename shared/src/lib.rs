//! # converge-shared
//!
//! What the Converge services and their clients have in common.
//!
//! - [`error`]: the JSON error envelope and its stable codes, the same over HTTP, GraphQL and the WebSocket.
//! - [`dto`]: request and response bodies (camelCase JSON), with their validation rules.
//! - [`token`]: access-token claims and verification against user-service's public keys.
//! - [`entities`] (feature `entities`): the sea-orm entities of both services' databases.
//! - [`api_error`], [`http`], [`auth`] (feature `server`): the services' error type and its HTTP
//!   mapping, request extractors, and access-token authentication.
//! - [`config`], [`telemetry`] (feature `server`): typed configuration loading, logs and metrics.
//! - [`process`] (feature `server`): process set-up, the open-files limit.
//! - [`rate_limit`] (feature `server`): attempts per key, per minute or per second.
//! - [`sessions`] (feature `server`): sessions ended at user-service, told to every token verifier.
//!
//! Without features this crate builds without a database or a web server, so the benchmark, the tests
//! and other clients can speak the API with the very types the servers use.

pub mod dto;
pub mod error;
pub mod protocol;
pub mod token;

#[cfg(feature = "entities")]
pub mod entities;

#[cfg(feature = "server")]
pub mod api_error;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod process;
#[cfg(feature = "server")]
pub mod rate_limit;
#[cfg(feature = "server")]
pub mod sessions;
#[cfg(feature = "server")]
pub mod telemetry;
