//! `converge`: the whole stack in one process, on SQLite, with nothing to set up.
//!
//! The same services as the scaled deployment, started side by side: user-service on
//! `USER_SERVICE_PORT` (3000) and chat-service on `CHAT_SERVICE_PORT` (3002). Each reads its
//! configuration from the environment as it would alone. chat-service also serves the web client at
//! `/`; unless `CORS_ALLOWED_ORIGINS` is set, user-service admits that origin.

use anyhow::Context;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let mut users: user_service::Config = converge_shared::config::load().context("reading the configuration")?;
    let mut chat: chat_service::Config = converge_shared::config::load().context("reading the configuration")?;
    converge_shared::telemetry::init_tracing(users.log_format, "info");
    converge_shared::process::raise_open_files_limit();
    // The web client is served by chat-service: let its origin call user-service from the browser.
    if std::env::var_os("CORS_ALLOWED_ORIGINS").is_none() && chat.chat_service_port != 0 {
        let port = chat.chat_service_port;
        users.cors_allowed_origins = format!("http://localhost:{port},http://127.0.0.1:{port}");
    }
    let users = user_service::Application::build(users).await?;
    // chat-service verifies tokens with the user-service started here, wherever its port landed.
    if std::env::var_os("USER_SERVICE_URL").is_none() {
        chat.user_service_url = format!("http://127.0.0.1:{}", users.port());
    }
    let users_port = users.port();
    let user_server = tokio::spawn(users.run_until_stopped());
    let chat = chat_service::Application::build(chat).await?;
    tracing::info!(
        "Converge is up: user-service on http://localhost:{users_port}, chat-service on http://localhost:{} (WebSocket /ws)",
        chat.port()
    );
    println!("Converge web client: http://localhost:{}/", chat.port());
    let (chat_result, user_result) = tokio::join!(chat.run_until_stopped(), user_server);
    chat_result?;
    user_result??;
    Ok(())
}
