//! chat-service scaled out: several chat-service processes relaying over Redis, sharing one
//! PostgreSQL database and one uploads store, driven by real WebSocket clients; instances and Redis
//! fail mid-stream.

mod failover;
mod helpers;
mod images;
mod limits;
mod presence;
mod relay;
