//! # user-service
//!
//! Accounts, sessions and external identities for Converge.
//!
//! ## Layout
//! - [`http`] and [`graphql`]: the two doors, thin; they parse input and format output.
//! - [`service`]: the rules (who may log in, how tokens rotate), shared by both doors.
//! - [`keys`]: the Ed25519 keys that sign access tokens, and the JWKS other services verify with.
//! - [`startup`]: builds the server on a bound port, for `main` and for tests alike.
//! - [`endings`]: ended sessions, announced to every verifier of access tokens.
//! - [`context`], [`config`]: the shared state and the typed configuration. Errors are
//!   [`converge_shared::api_error::ApiError`], the same for every service.

pub mod config;
pub mod context;
pub mod endings;
pub mod graphql;
pub mod http;
pub mod keys;
pub mod service;
pub mod startup;

pub use config::Config;
pub use startup::Application;
