//! `Cluster`: user-service plus several chat-service *processes* sharing one PostgreSQL database and
//! one Redis (under a prefix of their own, so tests run in parallel), with WebSocket clients that
//! survive their instance's death by reconnecting elsewhere and resuming by seq.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::Duration;

pub use converge_testkit::User;
use converge_testkit::{PgLink, fresh_postgres_database};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use uuid::Uuid;

/// Bounds a wait for an event; events are awaited, never slept for.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// The shared Redis of the test run (`scripts/test` sets `TEST_REDIS_URL`).
pub fn shared_redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The test run's S3 server, under a prefix of the test's own: `scripts/test` starts one (s3s-fs, a
/// real S3 server on a directory that checks every request's signature) and sets `TEST_S3_*`.
pub struct S3Bucket {
    pub endpoint: String,
    pub bucket: String,
    access_key_id: String,
    secret_access_key: String,
    pub prefix: String,
}

impl S3Bucket {
    pub fn new() -> Self {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is unset: run scripts/test, which starts an S3 server, or set TEST_S3_* for one")
            })
        };
        Self {
            endpoint: var("TEST_S3_ENDPOINT"),
            bucket: var("TEST_S3_BUCKET"),
            access_key_id: var("TEST_S3_ACCESS_KEY_ID"),
            secret_access_key: var("TEST_S3_SECRET_ACCESS_KEY"),
            prefix: format!("t{}", Uuid::new_v4().simple()),
        }
    }

    /// chat-service's environment for keeping its uploads here, as a deployment sets it.
    pub fn uploads_env(&self) -> Vec<(String, String)> {
        [
            ("UPLOADS_URL", format!("s3://{}/{}", self.bucket, self.prefix)),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// A client of the bucket, the test's own.
    fn client(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(&self.bucket)
            .with_access_key_id(&self.access_key_id)
            .with_secret_access_key(&self.secret_access_key)
            .build()
            .unwrap()
    }

    /// The keys under the prefix, without it, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let prefix = object_store::path::Path::from(self.prefix.as_str());
        let listed: Vec<_> = object_store::ObjectStore::list(&self.client(), Some(&prefix)).collect().await;
        let mut keys: Vec<String> = listed
            .into_iter()
            .map(|meta| {
                let location = meta.expect("the bucket lists").location;
                location.prefix_match(&prefix).unwrap().map(|p| p.as_ref().to_owned()).collect::<Vec<_>>().join("/")
            })
            .collect();
        keys.sort();
        keys
    }

    /// Deletes what is under the prefix: a server the run reuses keeps no test's images.
    pub async fn clear(&self) {
        let client = self.client();
        for key in self.keys().await {
            let path = object_store::path::Path::from(format!("{}/{key}", self.prefix));
            object_store::ObjectStoreExt::delete(&client, &path).await.unwrap();
        }
    }
}

/// A redis-server of the test's own, which it may restart or flush without disturbing others.
pub struct PrivateRedis {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Self::spawn(port, dir.path()).await;
        Self { port, child, _dir: dir }
    }

    async fn spawn(port: u16, dir: &std::path::Path) -> Child {
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts (apt-get install redis-server)");
        let log = LogLines::follow(child.stdout.take().expect("piped"), format!("redis :{port}"), false);
        log.awaiting("Ready to accept connections").await;
        child
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (it keeps nothing on disk) and starts an empty one on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start_again().await;
    }

    /// Kills the server: Redis is away until [`PrivateRedis::start_again`].
    pub async fn stop(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// Starts an empty server on the same port.
    pub async fn start_again(&mut self) {
        self.child = Self::spawn(self.port, self._dir.path()).await;
    }

    pub async fn flushall(&self) {
        redis_command::<()>(&self.url(), redis::cmd("FLUSHALL")).await;
    }
}

/// A child process's output, line by line, as events a test can await.
#[derive(Clone)]
pub struct LogLines(tokio::sync::broadcast::Sender<String>);

impl LogLines {
    /// Reads `stream` to its end (so the child never blocks on a full pipe); with `echo`, every
    /// line is also printed under `name` for the test's output.
    pub fn follow(stream: impl tokio::io::AsyncRead + Unpin + Send + 'static, name: String, echo: bool) -> Self {
        let (lines_tx, _) = tokio::sync::broadcast::channel(1024);
        let log = Self(lines_tx);
        let sender = log.0.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if echo {
                    eprintln!("[{name}] {line}");
                }
                let _ = sender.send(line);
            }
        });
        log
    }

    /// Resolves at the first line from now on that contains `needle`. It starts listening when
    /// called, so call it before the action whose line it awaits.
    pub fn awaiting(&self, needle: &str) -> impl Future<Output = ()> + use<> {
        let mut lines = self.0.subscribe();
        let needle = needle.to_owned();
        async move {
            let seen = async {
                loop {
                    match lines.recv().await {
                        Ok(line) if line.contains(&needle) => return,
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            panic!("the process ended before {needle:?}")
                        }
                    }
                }
            };
            tokio::time::timeout(EVENT_TIMEOUT, seen).await.unwrap_or_else(|_| panic!("no line {needle:?} in time"));
        }
    }
}

pub async fn redis_command<T: redis::FromRedisValue>(url: &str, cmd: redis::Cmd) -> T {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    cmd.query_async(&mut conn).await.unwrap()
}

/// One chat-service process.
pub struct Instance {
    pub port: u16,
    child: Option<Child>,
    env: Vec<(String, String)>,
    /// Its log lines (standard output), for the events no client sees.
    pub log: Option<LogLines>,
}

impl Instance {
    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// SIGKILL: no goodbye to anyone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// SIGKILL without waiting (usable while the cluster is borrowed); [`Instance::kill`] reaps it.
    pub fn sigkill(&self) {
        let pid = self.child.as_ref().and_then(Child::id).expect("running");
        let status = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then how long the process took to exit.
    pub async fn terminate(&mut self) -> Duration {
        let mut child = self.child.take().expect("running");
        let pid = child.id().expect("a pid");
        let started = Instant::now();
        let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("exits after SIGTERM").unwrap();
        started.elapsed()
    }

    /// The value of a Prometheus counter (0 when it was never incremented).
    pub async fn metric(&self, name_and_labels: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.http())).await.unwrap().text().await.unwrap();
        converge_testkit::metric(&text, name_and_labels)
    }

    /// Resolves at the instance's next log line containing `needle` (listening from this call on).
    pub fn logged(&self, needle: &str) -> impl Future<Output = ()> + use<> {
        self.log.as_ref().expect("running").awaiting(needle)
    }

    pub async fn ready(&self) -> Value {
        reqwest::get(format!("{}/ready", self.http())).await.unwrap().json().await.unwrap()
    }
}

/// user-service in process, chat-service instances as processes.
pub struct Cluster {
    pub users_url: String,
    pub instances: Vec<Instance>,
    pub redis_url: String,
    pub prefix: String,
    pub chat_database: String,
    pub client: reqwest::Client,
    /// The soft limit on open files instances start under, if not the test's own.
    soft_open_files: Option<u64>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `n` instances on the shared Redis.
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, &shared_redis_url(), &[]).await
    }

    /// `n` instances on `redis_url`, with extra environment for each.
    pub async fn start_with(n: usize, redis_url: &str, env: &[(&str, &str)]) -> Self {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Self::start_inner(n, redis_url, &|_| env.clone(), None, None).await
    }

    /// `n` instances on the shared Redis, instance `i` with the extra environment `env(i)`.
    pub async fn start_each(n: usize, env: impl Fn(usize) -> Vec<(String, String)>) -> Self {
        Self::start_inner(n, &shared_redis_url(), &env, None, None).await
    }

    /// `n` instances on the shared Redis, each started with a soft limit of `soft` open files, as a
    /// service manager or a login shell may start it.
    pub async fn start_under_open_files_limit(n: usize, soft: u64) -> Self {
        Self::start_inner(n, &shared_redis_url(), &|_| Vec::new(), None, Some(soft)).await
    }

    /// `n` instances on the shared Redis that reach PostgreSQL through `link`.
    pub async fn start_through(n: usize, link: &PgLink) -> Self {
        Self::start_inner(n, &shared_redis_url(), &|_| Vec::new(), Some(link), None).await
    }

    async fn start_inner(
        n: usize,
        redis_url: &str,
        env: &dyn Fn(usize) -> Vec<(String, String)>,
        link: Option<&PgLink>,
        soft_open_files: Option<u64>,
    ) -> Self {
        converge_shared::telemetry::init_tracing(Default::default(), "warn");
        let dir = tempfile::tempdir().unwrap();
        let users_db = fresh_postgres_database().await;
        let chat_database = fresh_postgres_database().await;
        let prefix = format!("t{}:", Uuid::new_v4().simple());
        let user_config = user_service::Config {
            host: "127.0.0.1".into(),
            user_service_port: 0,
            data_dir: dir.path().display().to_string(),
            database_url: Some(users_db),
            auth_rate_limit_per_ip: 100_000,
            auth_rate_limit_per_account: 100_000,
            // Ended sessions are announced where the instances hear them.
            redis_url: Some(redis_url.to_owned()),
            redis_prefix: prefix.clone(),
            ..Default::default()
        };
        let users = user_service::Application::build(user_config).await.expect("user-service builds");
        let users_url = format!("http://127.0.0.1:{}", users.port());
        tokio::spawn(users.run_until_stopped());
        let mut cluster = Self {
            users_url,
            instances: Vec::new(),
            redis_url: redis_url.to_owned(),
            prefix,
            chat_database,
            client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            soft_open_files,
            _dir: dir,
        };
        for i in 0..n {
            let mut vars: Vec<(String, String)> = vec![
                ("HOST".into(), "127.0.0.1".into()),
                ("DATABASE_URL".into(), link.map_or(cluster.chat_database.clone(), |l| l.url(&cluster.chat_database))),
                ("DATABASE_MAX_CONNECTIONS".into(), "8".into()),
                ("USER_SERVICE_URL".into(), cluster.users_url.clone()),
                ("REDIS_URL".into(), cluster.redis_url.clone()),
                ("REDIS_PREFIX".into(), cluster.prefix.clone()),
                ("WS_FRAMES_PER_SECOND".into(), "10000".into()),
                ("USER_WRITES_PER_SECOND".into(), "10000".into()),
                ("CHAT_INVITES_PER_MINUTE".into(), "10000".into()),
                ("MAX_CONNECTIONS_PER_USER".into(), "10000".into()),
                // A directory of its own, as on a machine of its own: what instances share, they
                // share through PostgreSQL, Redis and the uploads store.
                ("DATA_DIR".into(), cluster.data_dir(i).display().to_string()),
                // The lines tests await: listening, Redis connected, presence written, uploads swept.
                (
                    "RUST_LOG".into(),
                    "warn,chat_service::startup=info,chat_service::relay::redis=info,chat_service::presence=debug,\
                     chat_service::service::attachments=info"
                        .into(),
                ),
            ];
            vars.extend(env(i));
            cluster.instances.push(Instance { port: 0, child: None, env: vars, log: None });
        }
        for i in 0..n {
            cluster.launch(i).await;
        }
        cluster
    }

    /// Starts instance `i` on a fresh port and waits until it relays over Redis.
    pub async fn launch(&mut self, i: usize) {
        let instance = &mut self.instances[i];
        let port = free_port();
        let binary = env!("CARGO_BIN_EXE_chat-service");
        let mut command = match self.soft_open_files {
            // The shell lowers the limit and becomes the service, as a service manager would start it.
            Some(soft) => {
                let mut command = Command::new("sh");
                command.arg("-c").arg(format!("ulimit -S -n {soft} && exec \"$0\"")).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let mut child = command
            .envs(instance.env.iter().cloned())
            .env("CHAT_SERVICE_PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chat-service starts");
        let log = LogLines::follow(child.stdout.take().expect("piped"), format!("chat-service :{port}"), true);
        LogLines::follow(child.stderr.take().expect("piped"), format!("chat-service :{port}"), true);
        let (listening, relaying) = (log.awaiting("chat-service listening"), log.awaiting("Redis pub/sub connected"));
        instance.port = port;
        instance.child = Some(child);
        instance.log = Some(log);
        listening.await;
        relaying.await;
        assert_eq!(instance.ready().await["redis"], "up", "ready reports Redis once connected");
    }

    pub fn instance(&self, i: usize) -> &Instance {
        &self.instances[i]
    }

    /// Instance `i`'s `DATA_DIR`.
    pub fn data_dir(&self, i: usize) -> std::path::PathBuf {
        self._dir.path().join(format!("instance{i}"))
    }

    pub async fn user(&self, name: &str) -> User {
        let username = format!("{name}{}", &Uuid::new_v4().simple().to_string()[..8]);
        converge_testkit::register(&self.client, &self.users_url, &username, name).await
    }

    /// Creates a group chat (through instance 0) and returns its id.
    pub async fn group(&self, owner: &User, members: &[&User]) -> Uuid {
        let ids: Vec<Uuid> = members.iter().map(|u| u.id).collect();
        let res = self
            .client
            .post(format!("{}/chats", self.instance(0).http()))
            .bearer_auth(&owner.token)
            .json(&json!({ "kind": "group", "title": "Team", "participantIds": ids }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json::<Value>().await.unwrap()["id"].as_str().unwrap().parse().unwrap()
    }

    /// `GET path` on instance `via` as `user`: the JSON body of a success.
    pub async fn get_json(&self, user: &User, path: &str, via: usize) -> Value {
        let res = self.client.get(format!("{}{path}", self.instance(via).http())).bearer_auth(&user.token);
        let res = res.send().await.unwrap();
        assert!(res.status().is_success(), "GET {path}: {}", res.status());
        res.json().await.unwrap()
    }

    /// The chat's whole history as stored, (seq, message id) in seq order, read through instance `via`.
    pub async fn history(&self, user: &User, chat_id: Uuid, via: usize) -> Vec<(i64, String)> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let url = format!("{}/chats/{chat_id}/messages?after={after}&limit=100", self.instance(via).http());
            let page: Value = self.client.get(url).bearer_auth(&user.token).send().await.unwrap().json().await.unwrap();
            let messages = page["messages"].as_array().unwrap();
            for m in messages {
                all.push((m["seq"].as_i64().unwrap(), m["id"].as_str().unwrap().to_owned()));
            }
            if !page["hasMore"].as_bool().unwrap_or(false) {
                return all;
            }
            after = all.last().unwrap().0;
        }
    }

    /// `n` users in one group chat, user `i` connected to instance `i % instances`.
    pub async fn team(&self, n: usize) -> (Vec<User>, Uuid, Vec<Client>) {
        let mut users = Vec::new();
        for i in 0..n {
            users.push(self.user(&format!("u{i}")).await);
        }
        let others: Vec<_> = users[1..].iter().collect();
        let chat = self.group(&users[0], &others).await;
        let mut clients = Vec::new();
        for (i, user) in users.iter().enumerate() {
            clients.push(self.connect(user, i % self.instances.len()).await);
        }
        (users, chat, clients)
    }

    /// A connected client of `user` on instance `i`, past `ready`.
    pub async fn connect(&self, user: &User, i: usize) -> Client {
        let mut client = Client::new(user);
        client.connect_to(&self.instance(i).ws(), None).await;
        client
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client that records every message it is given, per chat, in arrival order.
pub struct Client {
    pub user: User,
    stream: Option<Ws>,
    /// Per chat: the seqs received, in arrival order (with any duplicates).
    pub received: BTreeMap<Uuid, Vec<(i64, String)>>,
    /// Every non-message frame, in order.
    pub log: Vec<Value>,
    /// How the last connection ended (1006: without a close frame).
    pub close_code: Option<u16>,
}

impl Client {
    /// A client of `user`, not connected yet.
    pub fn new(user: &User) -> Self {
        Self { user: user.clone(), stream: None, received: BTreeMap::new(), log: Vec::new(), close_code: None }
    }

    /// Connects (resuming from what it has, if anything) and returns the `ready` frame.
    pub async fn connect_to(&mut self, url: &str, resume: Option<HashMap<Uuid, i64>>) -> Value {
        self.try_connect_to(url, resume).await.expect("ready, not closed before it")
    }

    /// [`Client::connect_to`], or `None` when the server closes the connection before `ready`
    /// (`close_code` says how).
    pub async fn try_connect_to(&mut self, url: &str, resume: Option<HashMap<Uuid, i64>>) -> Option<Value> {
        let (stream, _) = connect_async(url).await.expect("WebSocket connects");
        self.stream = Some(stream);
        let mut auth = json!({ "type": "auth", "token": self.user.token });
        if let Some(points) = resume {
            auth["resume"] = json!(points);
        }
        self.send(auth).await;
        self.until(|frame| frame["type"] == "ready").await
    }

    /// Reconnects to `url` and resumes every chat it has messages of from its last seq.
    pub async fn reconnect(&mut self, url: &str, chats: &[Uuid]) {
        let points = chats.iter().map(|c| (*c, self.last_seq(*c))).collect();
        self.connect_to(url, Some(points)).await;
    }

    pub fn last_seq(&self, chat_id: Uuid) -> i64 {
        self.received.get(&chat_id).and_then(|r| r.iter().map(|(s, _)| *s).max()).unwrap_or(0)
    }

    /// Sends a frame; a broken connection is noticed by the next read.
    pub async fn send(&mut self, frame: Value) {
        if let Some(stream) = self.stream.as_mut() {
            let _ = stream.send(Message::text(frame.to_string())).await;
        }
    }

    /// The next text frame (recorded), or `None` once the connection is closed or broken.
    pub async fn next(&mut self) -> Option<Value> {
        let stream = self.stream.as_mut()?;
        // One deadline for the call: the server's pings, skipped below, must not keep it waiting.
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        loop {
            let message = tokio::time::timeout_at(deadline, stream.next()).await.expect("a frame arrives in time");
            match message {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text).expect("frames are JSON");
                    if frame["type"] == "new_message" {
                        let m = &frame["message"];
                        let chat_id: Uuid = m["chatId"].as_str().unwrap().parse().unwrap();
                        let entry = (m["seq"].as_i64().unwrap(), m["id"].as_str().unwrap().to_owned());
                        self.received.entry(chat_id).or_default().push(entry);
                    } else {
                        self.log.push(frame.clone());
                    }
                    return Some(frame);
                }
                Some(Ok(Message::Close(frame))) => {
                    self.close_code = Some(frame.map_or(1005, |f| u16::from(f.code)));
                    self.stream = None;
                    return None;
                }
                None | Some(Err(_)) => {
                    self.close_code = Some(1006);
                    self.stream = None;
                    return None;
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Reads frames until `done` holds for one, or the connection ends (`None`).
    pub async fn until(&mut self, mut done: impl FnMut(&Value) -> bool) -> Option<Value> {
        loop {
            let frame = self.next().await?;
            if done(&frame) {
                return Some(frame);
            }
        }
    }

    /// Reads until this client has every seq of `chat_id` up to `last`.
    pub async fn until_seq(&mut self, chat_id: Uuid, last: i64) -> bool {
        while self.last_seq(chat_id) < last {
            if self.next().await.is_none() {
                return false;
            }
        }
        true
    }

    /// Sends a message and waits for its ack (recording what arrives meanwhile); `None` if the
    /// connection ends first.
    pub async fn send_message(&mut self, chat_id: Uuid, client_msg_id: &str) -> Option<Value> {
        let frame = json!({ "type": "send_message", "req": client_msg_id, "chatId": chat_id, "clientMsgId": client_msg_id, "content": format!("msg {client_msg_id}") });
        self.send(frame).await;
        let reply = self.until(|f| f["req"] == client_msg_id && (f["type"] == "ack" || f["type"] == "error")).await?;
        assert_eq!(reply["type"], "ack", "{reply}");
        Some(reply)
    }

    pub async fn close(&mut self) {
        if let Some(mut stream) = self.stream.take() {
            let _ = stream.close(None).await;
            // Wait for the server's side of the close handshake.
            while let Ok(Some(Ok(_))) = tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {}
        }
    }

    pub fn is_connected(&self) -> bool {
        self.stream.is_some()
    }

    /// The seqs received of a chat, in arrival order.
    pub fn seqs(&self, chat_id: Uuid) -> Vec<i64> {
        self.received.get(&chat_id).map(|r| r.iter().map(|(s, _)| *s).collect()).unwrap_or_default()
    }
}
