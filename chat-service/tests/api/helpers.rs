//! `TestStack`: a real user-service and chat-service on random ports, on a fresh PostgreSQL
//! database each or SQLite files, with typed helpers for users, REST and WebSocket clients.

use std::time::Duration;

use converge_migrations::{ServiceDb, connect};
use converge_shared::auth::{Authenticator, JwksClient};
pub use converge_testkit::{
    Backend, User, assert_error, assert_method_not_allowed, fresh_postgres_database, metric, on_both_backends, register,
};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use uuid::Uuid;

/// How long a test waits for an event before declaring it missing. Events are awaited, never slept
/// for: this bound only turns a hang into a failure.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

pub struct TestStack {
    pub users_url: String,
    pub chat_url: String,
    pub ws_url: String,
    pub client: reqwest::Client,
    /// chat-service's shared state, for the few facts no client can observe.
    pub chat: chat_service::context::AppContext,
    /// Stops user-service, to see chat-service carry on without it.
    pub users_handle: actix_web::dev::ServerHandle,
    /// Shuts chat-service down as SIGTERM would.
    pub chat_shutdown: chat_service::startup::ShutdownHandle,
    /// user-service's configuration, whose signing key [`TestStack::token_expiring`] uses.
    user_config: user_service::Config,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl TestStack {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut chat_service::Config)) -> Self {
        converge_shared::telemetry::init_tracing(Default::default(), "warn");
        let user_dir = tempfile::tempdir().unwrap();
        let chat_dir = tempfile::tempdir().unwrap();
        let (users_db, chat_db) = match backend {
            Backend::Postgres => (Some(fresh_postgres_database().await), Some(fresh_postgres_database().await)),
            Backend::Sqlite => (None, None),
        };

        let user_config = user_service::Config {
            host: "127.0.0.1".into(),
            user_service_port: 0,
            data_dir: user_dir.path().display().to_string(),
            database_url: users_db,
            auth_rate_limit_per_ip: 100_000,
            auth_rate_limit_per_account: 100_000,
            ..Default::default()
        };
        let users = user_service::Application::build(user_config.clone()).await.expect("user-service builds");
        let users_url = format!("http://127.0.0.1:{}", users.port());
        let users_handle = users.server_handle();
        tokio::spawn(users.run_until_stopped());

        let mut config = chat_service::Config {
            host: "127.0.0.1".into(),
            chat_service_port: 0,
            data_dir: chat_dir.path().display().to_string(),
            database_url: chat_db,
            user_service_url: users_url.clone(),
            ws_frames_per_second: 10_000,
            user_writes_per_second: 10_000,
            chat_invites_per_minute: 10_000,
            max_connections_per_user: 10_000,
            ..Default::default()
        };
        tweak(&mut config);
        let db = connect(&config.database_url(), config.database_max_connections).await.unwrap();
        ServiceDb::Chat.migrate_up(&db).await.unwrap();
        let auth = Authenticator::jwks(JwksClient::new(config.jwks_url()), Default::default());
        let chat = chat_service::Application::build_with(config, db, auth).await.expect("chat-service builds");
        let chat_url = format!("http://127.0.0.1:{}", chat.port());
        let ws_url = format!("ws://127.0.0.1:{}/ws", chat.port());
        let context = chat.context().clone();
        let chat_shutdown = chat.shutdown_handle();
        tokio::spawn(chat.run_until_stopped());
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Self {
            users_url,
            users_handle,
            chat_url,
            ws_url,
            client,
            chat: context,
            chat_shutdown,
            user_config,
            _dirs: (user_dir, chat_dir),
        }
    }

    pub async fn user(&self, username: &str) -> User {
        register(&self.client, &self.users_url, username, &format!("{username} Example")).await
    }

    pub async fn post(&self, user: &User, path: &str, body: &Value) -> reqwest::Response {
        self.client.post(format!("{}{path}", self.chat_url)).bearer_auth(&user.token).json(body).send().await.unwrap()
    }

    pub async fn get(&self, user: &User, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.chat_url)).bearer_auth(&user.token).send().await.unwrap()
    }

    pub async fn delete(&self, user: &User, path: &str) -> reqwest::Response {
        self.client.delete(format!("{}{path}", self.chat_url)).bearer_auth(&user.token).send().await.unwrap()
    }

    /// Renames a group (`PATCH /chats/{id}`).
    pub async fn rename(&self, user: &User, chat: Uuid, title: &str) -> reqwest::Response {
        let url = format!("{}/chats/{chat}", self.chat_url);
        self.client.patch(url).bearer_auth(&user.token).json(&json!({ "title": title })).send().await.unwrap()
    }

    /// Sets a member's role (`PUT /chats/{id}/participants/{userId}/role`).
    pub async fn set_role(&self, user: &User, chat: Uuid, member: Uuid, role: &str) -> reqwest::Response {
        let url = format!("{}/chats/{chat}/participants/{member}/role", self.chat_url);
        self.client.put(url).bearer_auth(&user.token).json(&json!({ "role": role })).send().await.unwrap()
    }

    /// Creates a chat over REST and returns its id.
    pub async fn group(&self, owner: &User, members: &[&User]) -> Uuid {
        let ids: Vec<Uuid> = members.iter().map(|u| u.id).collect();
        let res = self.post(owner, "/chats", &json!({ "kind": "group", "title": "Team", "participantIds": ids })).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json::<Value>().await.unwrap()["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn direct(&self, a: &User, b: &User) -> Uuid {
        let res = self.post(a, "/chats", &json!({ "kind": "direct", "participantIds": [b.id] })).await;
        assert!(res.status().is_success());
        res.json::<Value>().await.unwrap()["id"].as_str().unwrap().parse().unwrap()
    }

    /// The cast of most tests: Ana and Bob, registered, and their direct chat.
    pub async fn ana_and_bob(&self) -> (User, User, Uuid) {
        let ana = self.user("ana").await;
        let bob = self.user("bob").await;
        let chat = self.direct(&ana, &bob).await;
        (ana, bob, chat)
    }

    /// Ana, Bob and Carla, a group of the three (Ana's) and Ana and Bob's direct chat: with a size
    /// limit of 2 (presence, read receipts), a chat above the limit next to one below it.
    pub async fn trio_in_a_group_and_a_direct_chat(&self) -> ([User; 3], Uuid, Uuid) {
        let (ana, bob, carla) = (self.user("ana").await, self.user("bob").await, self.user("carla").await);
        let group = self.group(&ana, &[&bob, &carla]).await;
        let direct = self.direct(&ana, &bob).await;
        ([ana, bob, carla], group, direct)
    }

    /// An access token for `user` (named `name`) as user-service signs them, with its `exp`
    /// `exp_in_secs` from now: how tests get a token that expires while they watch (a negative value
    /// is already past `exp` but inside the verifiers' leeway of `LEEWAY_SECS`).
    pub fn token_expiring(&self, user: &User, name: &str, exp_in_secs: i64) -> String {
        use converge_shared::token::{AUDIENCE, AccessClaims, ISSUER};
        let keys = user_service::keys::SigningKeys::load(&self.user_config).expect("user-service's signing key");
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            sub: user.id,
            sid: None,
            name: name.into(),
            profile_at: None,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            nbf: now,
            exp: now + exp_in_secs,
        };
        keys.sign(&claims).expect("a signed token")
    }

    /// An authenticated WebSocket client, past its `ready` frame.
    pub async fn connect(&self, user: &User) -> WsClient {
        let mut client = self.connect_raw().await;
        client.send(json!({ "type": "auth", "token": user.token })).await;
        let ready = client.next_of("ready").await;
        assert_eq!(ready["user"]["id"], user.id.to_string());
        client
    }

    /// A connected WebSocket client that has sent nothing.
    pub async fn connect_raw(&self) -> WsClient {
        let (stream, _) = connect_async(self.ws_url.as_str()).await.expect("WebSocket connects");
        WsClient { stream }
    }
}

pub struct WsClient {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    pub async fn send(&mut self, frame: Value) {
        self.stream.send(Message::text(frame.to_string())).await.expect("frame sent");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.stream.send(message).await.expect("frame sent");
    }

    /// The next text frame, as JSON. Pings are answered by the library.
    pub async fn next(&mut self) -> Value {
        self.next_within(EVENT_TIMEOUT).await
    }

    /// The next text frame, as JSON, awaited for at most `wait`: for what the server does at a
    /// deadline of its own, later than [`EVENT_TIMEOUT`].
    pub async fn next_within(&mut self, wait: Duration) -> Value {
        // One deadline for the call: the server's pings, skipped below, must not keep it waiting.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("a frame arrives in time")
                .expect("the connection is open")
                .expect("a valid frame");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("frames are JSON"),
                Message::Close(frame) => panic!("closed by the server: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// The next frame of type `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// The close code the server ends the connection with.
    pub async fn closed_with(&mut self) -> u16 {
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        loop {
            let message = tokio::time::timeout_at(deadline, self.stream.next()).await.expect("closed in time");
            match message {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return 1006,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Sends a message and returns its ack.
    pub async fn send_message(&mut self, chat_id: Uuid, client_msg_id: &str, content: &str) -> Value {
        self.send(json!({ "type": "send_message", "req": client_msg_id, "chatId": chat_id, "clientMsgId": client_msg_id, "content": content })).await;
        loop {
            let frame = self.next().await;
            if frame["req"] == client_msg_id && (frame["type"] == "ack" || frame["type"] == "error") {
                return frame;
            }
        }
    }

    /// Collects `new_message` seqs of `chat_id` until `count` have arrived.
    pub async fn collect_seqs(&mut self, chat_id: Uuid, count: usize) -> Vec<i64> {
        let mut seqs = Vec::with_capacity(count);
        while seqs.len() < count {
            let frame = self.next_of("new_message").await;
            if frame["message"]["chatId"] == chat_id.to_string() {
                seqs.push(frame["message"]["seq"].as_i64().unwrap());
            }
        }
        seqs
    }
}

impl TestStack {
    /// Runs a GraphQL query or mutation over HTTP and returns the whole response body.
    pub async fn graphql(&self, user: Option<&User>, query: &str, variables: Value) -> Value {
        let mut request = self.client.post(format!("{}/graphql", self.chat_url));
        if let Some(user) = user {
            request = request.bearer_auth(&user.token);
        }
        let res = request.json(&json!({ "query": query, "variables": variables })).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }

    /// A `graphql-transport-ws` connection whose `connection_init` carries `payload`, before the ack.
    pub async fn graphql_ws_raw(&self, payload: Value) -> WsClient {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("ws://{}/graphql", self.chat_url.trim_start_matches("http://"));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
        let (stream, _) = connect_async(request).await.expect("GraphQL WebSocket connects");
        let mut client = WsClient { stream };
        client.send(json!({ "type": "connection_init", "payload": payload })).await;
        client
    }

    /// Waits until `count` subscribers follow `chat`: a subscription without a backlog has no frame
    /// that says it is live, so tests await the hub's own signal.
    pub async fn wait_for_followers(&self, chat: Uuid, count: usize) {
        tokio::time::timeout(EVENT_TIMEOUT, self.chat.hub.followers_become(chat, |n| n >= count))
            .await
            .unwrap_or_else(|_| panic!("{count} followers of {chat} in time"));
    }

    /// Waits until exactly `count` local connections follow `chat`: after a connection ends, say.
    pub async fn wait_for_exactly_followers(&self, chat: Uuid, count: usize) {
        tokio::time::timeout(EVENT_TIMEOUT, self.chat.hub.followers_become(chat, |n| n == count)).await.unwrap_or_else(
            |_| panic!("exactly {count} followers of {chat} in time, not {}", self.chat.hub.followers(chat)),
        );
    }

    /// Waits until `user` has `count` local connections and subscriptions: a subscription that
    /// follows no chat (`myChats`) is live once it counts.
    pub async fn wait_for_connections(&self, user: &User, count: usize) {
        tokio::time::timeout(EVENT_TIMEOUT, self.chat.hub.connections_become(user.id, |n| n >= count))
            .await
            .unwrap_or_else(|_| panic!("{count} connections of {} in time", user.id));
    }

    /// Waits until `user` has exactly `count` local connections and subscriptions (others closed).
    pub async fn wait_for_exactly_connections(&self, user: &User, count: usize) {
        tokio::time::timeout(EVENT_TIMEOUT, self.chat.hub.connections_become(user.id, |n| n == count))
            .await
            .unwrap_or_else(|_| panic!("exactly {count} connections of {} in time", user.id));
    }

    /// Changes `user`'s profile in user-service and signs them in again (as `login`): the returned
    /// token carries the change, which chat-service learns when a connection presents it.
    pub async fn change_profile(&self, user: &User, login: &str, change: Value) -> String {
        let url = format!("{}/users/me", self.users_url);
        let res = self.client.patch(url).bearer_auth(&user.token).json(&change).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        self.log_in(login).await["accessToken"].as_str().unwrap().to_owned()
    }

    /// Signs in as `login` (a new session): user-service's answer, with `accessToken` and `refreshToken`.
    pub async fn log_in(&self, login: &str) -> Value {
        let body = json!({ "login": login, "password": "correct horse battery" });
        let res = self.client.post(format!("{}/auth/login", self.users_url)).json(&body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }

    /// An acknowledged `graphql-transport-ws` connection of `user`.
    pub async fn graphql_ws(&self, user: &User) -> WsClient {
        let mut client = self.graphql_ws_raw(json!({ "token": user.token })).await;
        assert_eq!(client.next().await["type"], "connection_ack");
        client
    }
}

impl WsClient {
    /// Starts a GraphQL subscription with id `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// The payload of the next `next` message of subscription `id` (its `data` or `errors`).
    pub async fn next_payload(&mut self, id: &str) -> Value {
        self.next_payload_within(id, EVENT_TIMEOUT).await
    }

    /// [`Self::next_payload`], each frame awaited for at most `wait`.
    pub async fn next_payload_within(&mut self, id: &str, wait: Duration) -> Value {
        loop {
            let message = self.next_within(wait).await;
            if message["id"] == id {
                assert_eq!(message["type"], "next", "subscription {id} ended: {message}");
                return message["payload"].clone();
            }
        }
    }
}

/// The code of a GraphQL response's first error.
pub fn error_code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"].as_str().unwrap_or("<none>")
}

/// Stores a message as the writer would — the chat's next seq, in one transaction — without
/// announcing it, and returns its id.
pub async fn store_unannounced(
    stack: &TestStack,
    chat_id: Uuid,
    sender: Uuid,
    client_msg_id: &str,
    content: &str,
) -> Uuid {
    use converge_shared::entities::chat::{chat, message};
    use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set, TransactionTrait};

    let txn = stack.chat.db.begin().await.unwrap();
    let row = chat::Entity::find_by_id(chat_id).one(&txn).await.unwrap().expect("the chat exists");
    let seq = row.last_seq + 1;
    let now = chrono::Utc::now();
    let mut bumped = row.into_active_model();
    bumped.last_seq = Set(seq);
    bumped.last_message_at = Set(Some(now));
    bumped.update(&txn).await.unwrap();
    let id = Uuid::now_v7();
    message::ActiveModel {
        id: Set(id),
        chat_id: Set(chat_id),
        seq: Set(seq),
        sender_id: Set(sender),
        client_msg_id: Set(client_msg_id.to_owned()),
        content: Set(content.to_owned()),
        attachment_id: Set(None),
        image_url: Set(None),
        reply_to: Set(None),
        created_at: Set(now),
        edited_at: Set(None),
        deleted_at: Set(None),
        image_width: Set(None),
        image_height: Set(None),
        edit_seq: Set(None),
        reactions: Set(None),
    }
    .insert(&txn)
    .await
    .unwrap();
    txn.commit().await.unwrap();
    id
}
