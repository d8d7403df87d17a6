//! chat-service configuration: one typed struct, loaded once from the environment.

use converge_migrations::ServiceDb;
use converge_shared::config::LogFormat;
use serde::Deserialize;

/// What a wrong `UPLOADS_URL` is told, after what is wrong with it: the start stops there.
const UPLOADS_URL_FORM: &str =
    "UPLOADS_URL is s3://bucket or s3://bucket/prefix, or unset for the directory UPLOADS_DIR";

/// Every setting of chat-service; each field is read from the environment variable of the same name
/// in UPPER_SNAKE_CASE. README lists them all.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    pub host: String,
    /// Port to bind; 0 picks a free one (tests).
    pub chat_service_port: u16,
    /// Connections the kernel queues until they are accepted: a reconnect storm arrives at once
    /// (capped by `net.core.somaxconn`).
    pub listen_backlog: u32,
    /// Threads serving HTTP and WebSocket connections; 0 means one per CPU. Instances that share a
    /// machine can split its CPUs between them.
    pub http_workers: usize,
    /// Connections each HTTP worker holds at most (actix-web's default); beyond it, new connections
    /// wait in the listen backlog until one closes. An idle WebSocket costs ≈ 22 KB
    /// (docs/benchmarks.md), so the default bounds a worker's connections to ≈ 550 MB.
    pub max_connections_per_worker: usize,
    /// PostgreSQL URL; unset means the embedded SQLite file `chat.db` under `data_dir`.
    pub database_url: Option<String>,
    pub data_dir: String,
    pub database_max_connections: u32,
    /// user-service's base URL: its JWKS verifies tokens, its API names users.
    pub user_service_url: String,
    /// Largest WebSocket text frame handled, in bytes; larger ones get a `payload_too_large` error.
    pub max_frame_bytes: usize,
    /// Longest message content, in characters.
    pub max_message_chars: usize,
    /// Frames each connection may send per second (burst of twice that); beyond it closes with 1008.
    pub ws_frames_per_second: u32,
    /// Message writes (sends, edits, deletions, reactions) each user may make per second, over all
    /// their connections, REST and GraphQL together (burst of twice that); beyond it the write is
    /// refused with `rate_limited` and the seconds to wait, and nothing is stored.
    pub user_writes_per_second: u32,
    /// Chats each user may create, and calls adding participants to groups they may make, per
    /// minute (a burst of as many): beyond it `rate_limited`, so that nobody can fill another's chat
    /// list with chats.
    pub chat_invites_per_minute: u32,
    /// WebSocket connections and GraphQL subscriptions one user may hold on one instance: each gets
    /// every delivery of the user's chats, so one user's thousand sockets would cost everyone.
    /// Past it a new one is refused with `rate_limited` (and, on the WebSocket, close 4029).
    pub max_connections_per_user: usize,
    /// Frames queued for one connection; a client that lets it overflow is disconnected (4008).
    pub ws_outbound_queue: usize,
    /// Seconds a new connection has to send `auth`.
    pub ws_auth_timeout_secs: u64,
    /// Seconds between server pings.
    pub ws_heartbeat_secs: u64,
    /// Seconds of silence after which a connection is closed as dead.
    pub ws_idle_timeout_secs: u64,
    /// Milliseconds a `typing_start` lasts without another one or a `typing_stop`.
    pub typing_ttl_ms: u64,
    /// Milliseconds delivery receipts are gathered before they are recorded and announced: one
    /// watermark write and one `messages_delivered` per user and chat per interval, however many
    /// messages reached them.
    pub delivery_receipt_ms: u64,
    /// Largest JSON body accepted by REST, in bytes.
    pub max_body_bytes: usize,
    /// Where uploaded images are kept when `uploads_url` is unset; unset means `uploads/` under
    /// `data_dir`. Instances on one host can share it (a volume).
    pub uploads_dir: Option<String>,
    /// Unset: the directory `uploads_dir`. `s3://bucket[/prefix]`: a bucket of S3 or of a server
    /// that speaks it (MinIO, Ceph, R2, Garage), which instances on any machine share; credentials,
    /// region and endpoint come from the usual `AWS_*` variables.
    pub uploads_url: UploadsUrl,
    /// Largest image upload, in bytes.
    pub upload_max_bytes: usize,
    /// Most pixels (width × height) an uploaded image may have: decoding holds 4 bytes per pixel.
    pub upload_max_pixels: u64,
    /// Seconds an uploaded image no message carries is kept before it is deleted; such an upload
    /// can be sent for the first half of it.
    pub upload_unsent_ttl_secs: u64,
    /// Uploads each user may make per minute (a burst of as many): decoding is the costliest thing
    /// a client can ask for, and one user's flood must not hold up everyone's images.
    pub uploads_per_minute: u32,
    pub log_format: LogFormat,
    /// Redis URL: set, instances relay events over Redis pub/sub and share the hot window and
    /// presence (the scaled deployment); unset, the in-process relay of a single instance.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel, so deployments (or parallel tests) can share a server.
    pub redis_prefix: String,
    /// Recent messages kept per chat in the Redis hot window.
    pub chat_window_size: usize,
    /// Seconds a presence entry lives without its instance's heartbeat (every third of it): how
    /// long a dead instance's users can look online.
    pub presence_ttl_secs: u64,
    /// Presence is shared in chats of at most this many participants: in bigger groups, everyone
    /// coming online would be announced to everyone else (a million frames for 1 000 members).
    pub presence_max_chat_members: usize,
    /// Each participant's `messages_read` goes to the whole chat in chats of at most this many
    /// participants; in bigger groups only to the reader's own connections (their other devices):
    /// a read by every member, sent to every member, would grow with the square of the group.
    pub read_receipts_max_chat_members: usize,
    /// The web client's directory (`index.html`, `js/`, `css/`); unset means [`Config::web_dir`]'s search.
    pub web_dir: Option<String>,
    /// user-service's URL as browsers reach it, told to the web client; unset means `user_service_url`.
    pub public_user_service_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            chat_service_port: 3002,
            listen_backlog: 2048,
            http_workers: 0,
            max_connections_per_worker: 25_000,
            database_url: None,
            data_dir: "./data".into(),
            database_max_connections: 10,
            user_service_url: "http://127.0.0.1:3000".into(),
            max_frame_bytes: 64 * 1024,
            max_message_chars: 4000,
            ws_frames_per_second: 50,
            user_writes_per_second: 50,
            chat_invites_per_minute: 60,
            max_connections_per_user: 50,
            ws_outbound_queue: 2048,
            ws_auth_timeout_secs: 10,
            ws_heartbeat_secs: 20,
            ws_idle_timeout_secs: 60,
            typing_ttl_ms: 6000,
            delivery_receipt_ms: 1000,
            max_body_bytes: 64 * 1024,
            uploads_dir: None,
            uploads_url: UploadsUrl::Directory,
            upload_max_bytes: 10 * 1024 * 1024,
            upload_max_pixels: 25_000_000,
            upload_unsent_ttl_secs: 24 * 3600,
            uploads_per_minute: 30,
            log_format: LogFormat::Text,
            redis_url: None,
            redis_prefix: "converge:".into(),
            chat_window_size: 200,
            presence_ttl_secs: 30,
            presence_max_chat_members: 100,
            read_receipts_max_chat_members: 100,
            web_dir: None,
            public_user_service_url: None,
        }
    }
}

impl Config {
    pub fn database_url(&self) -> String {
        ServiceDb::Chat.url(self.database_url.as_deref(), &self.data_dir)
    }

    /// The directory uploaded images are kept in.
    pub fn uploads_dir(&self) -> std::path::PathBuf {
        match self.uploads_dir.as_deref().filter(|d| !d.trim().is_empty()) {
            Some(dir) => dir.into(),
            None => std::path::Path::new(&self.data_dir).join("uploads"),
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.user_service_url.trim_end_matches('/'))
    }

    /// The web client's directory: `WEB_DIR`, else `./web` when run from the workspace, else the
    /// `web/` of the source tree this binary was built from.
    pub fn web_dir(&self) -> std::path::PathBuf {
        if let Some(dir) = self.web_dir.as_deref().filter(|d| !d.trim().is_empty()) {
            return dir.into();
        }
        let local = std::path::Path::new("web");
        if local.join("index.html").is_file() {
            return local.into();
        }
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
    }

    /// user-service's base URL as a browser reaches it, without a trailing slash.
    pub fn public_user_service_url(&self) -> &str {
        self.public_user_service_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or(&self.user_service_url)
            .trim_end_matches('/')
    }
}

/// Where uploaded images are kept (`UPLOADS_URL`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum UploadsUrl {
    /// Unset (or empty): the directory [`Config::uploads_dir`].
    #[default]
    Directory,
    /// `s3://bucket[/prefix]`: objects under `prefix` (no leading or trailing `/`, maybe empty).
    S3 { bucket: String, prefix: String },
}

impl TryFrom<String> for UploadsUrl {
    type Error = String;

    fn try_from(url: String) -> Result<Self, String> {
        url.parse()
    }
}

impl std::str::FromStr for UploadsUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.is_empty() {
            return Ok(Self::Directory);
        }
        // Only the scheme is repeated back: a mistyped URL may carry a secret.
        let Some(rest) = url.strip_prefix("s3://") else {
            return Err(match url.split_once("://") {
                Some((scheme, _)) => format!("the scheme {scheme}:// is not supported ({UPLOADS_URL_FORM})"),
                None => format!("a URL is expected ({UPLOADS_URL_FORM})"),
            });
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's rules, which the servers speaking it share: a bucket name is a DNS label.
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && !bucket.starts_with(['.', '-'])
            && !bucket.ends_with(['.', '-']);
        if !valid_bucket {
            return Err(format!(
                "a bucket name has 3 to 63 lowercase letters, digits, dots and hyphens ({UPLOADS_URL_FORM})"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if object_store::path::Path::parse(prefix).is_err() || prefix.contains(['?', '#']) {
            return Err(format!("the prefix has an empty, `.` or `..` segment, or a ? or # ({UPLOADS_URL_FORM})"));
        }
        Ok(Self::S3 { bucket: bucket.to_owned(), prefix: prefix.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_url_is_unset_or_an_s3_bucket_with_an_optional_prefix() {
        assert_eq!("".parse(), Ok(UploadsUrl::Directory));
        let s3 = |bucket: &str, prefix: &str| Ok(UploadsUrl::S3 { bucket: bucket.into(), prefix: prefix.into() });
        assert_eq!("s3://converge-uploads".parse(), s3("converge-uploads", ""));
        assert_eq!("s3://converge-uploads/".parse(), s3("converge-uploads", ""));
        assert_eq!("s3://my.bucket/chat/images/".parse(), s3("my.bucket", "chat/images"));
        for (url, says) in [
            ("/var/uploads", "a URL is expected"),
            ("gs://bucket", "the scheme gs:// is not supported"),
            ("https://s3.example.com/bucket", "the scheme https:// is not supported"),
            ("s3://", "a bucket name"),
            ("s3://My_Bucket", "a bucket name"),
            ("s3://key:secret@bucket", "a bucket name"),
            ("s3://bucket/a//b", "the prefix"),
            ("s3://bucket/a/../b", "the prefix"),
            ("s3://bucket/a?versionId=1", "the prefix"),
        ] {
            let error = url.parse::<UploadsUrl>().unwrap_err();
            assert!(error.starts_with(says) && error.contains("(UPLOADS_URL is s3://bucket"), "{url}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }
}
