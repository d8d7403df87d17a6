//! `PgLink`: the network between a service and PostgreSQL, as a TCP relay a test can break at
//! one statement — before the statement reaches the server, or after the server has committed it
//! but before its answer comes back. It reads PostgreSQL's wire protocol (TLS off on the link) just
//! enough to find the statement by a marker in its parameters and the commit by the server's
//! `ReadyForQuery` after the statement's `Sync`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Where the link breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The statement carrying the marker never reaches PostgreSQL.
    BeforeTheStatement,
    /// PostgreSQL runs and commits the statement; its answer never comes back.
    AfterTheCommit,
}

/// The marker of the statement to break at, and where; taken by the connection that carries it.
type Armed = Arc<Mutex<Option<(Vec<u8>, Cut)>>>;

pub struct PgLink {
    port: u16,
    armed: Armed,
    cuts: watch::Sender<usize>,
    /// While set, every connection is broken and new ones are closed at once: PostgreSQL is
    /// unreachable.
    down: watch::Sender<bool>,
}

impl PgLink {
    /// Relays every connection to the server of `database_url`.
    pub async fn start(database_url: &str) -> Self {
        let url = Url::parse(database_url).unwrap();
        let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let link = Self {
            port: listener.local_addr().unwrap().port(),
            armed: Arc::default(),
            cuts: watch::channel(0).0,
            down: watch::channel(false).0,
        };
        let (armed, cuts, down) = (link.armed.clone(), link.cuts.clone(), link.down.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *down.borrow() {
                    continue;
                }
                let server = TcpStream::connect(&upstream).await.unwrap();
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                tokio::spawn(relay(client, server, armed.clone(), cuts.clone(), down.subscribe()));
            }
        });
        link
    }

    /// `database_url` (a database on the linked server) reached through the link.
    pub fn url(&self, database_url: &str) -> String {
        let mut url = Url::parse(database_url).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.query_pairs_mut().append_pair("sslmode", "disable");
        url.to_string()
    }

    /// Breaks, once, the connection that carries the next statement whose messages contain `marker`.
    pub fn arm(&self, marker: &str, cut: Cut) {
        *self.armed.lock().unwrap() = Some((marker.as_bytes().to_vec(), cut));
    }

    /// Makes PostgreSQL unreachable (every connection broken, new ones closed), or reachable again.
    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }

    /// Resolves once `n` connections have been broken at a statement.
    pub async fn cut(&self, n: usize) {
        let mut cuts = self.cuts.subscribe();
        let done = cuts.wait_for(|done| *done >= n);
        tokio::time::timeout(Duration::from_secs(20), done).await.expect("the link is cut in time").unwrap();
    }
}

/// One connection's protocol position, shared by its two directions.
#[derive(Default)]
struct Position {
    /// What the client has sent that PostgreSQL answers with a `ReadyForQuery`: the startup
    /// message, each simple `Query` and each `Sync`.
    syncs: usize,
    /// `ReadyForQuery` messages the server has sent.
    readies: usize,
    /// Armed for [`Cut::AfterTheCommit`]: the statement has been seen, its `Sync` not yet.
    awaiting_sync: bool,
    /// Which `ReadyForQuery` ends the statement's answer: its arrival means the statement is
    /// committed (autocommit), and nothing of that answer is passed on.
    cut_at_ready: Option<usize>,
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    armed: Armed,
    cuts: watch::Sender<usize>,
    mut down: watch::Receiver<bool>,
) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let position = Arc::new(Mutex::new(Position::default()));
    // Either direction ending (a cut, or a side closing) ends both: the halves dropped here close
    // both sockets.
    let cut = tokio::select! {
        cut = to_server(client_read, server_write, armed, position.clone()) => cut,
        cut = to_client(server_read, client_write, position) => cut,
        _ = down.wait_for(|down| *down) => false,
    };
    if cut {
        cuts.send_modify(|n| *n += 1);
    }
}

/// Reads a whole message; the client's first (the startup message) has no type byte.
async fn next_message(from: &mut OwnedReadHalf, typed: bool) -> Option<(u8, Vec<u8>)> {
    let kind = if typed { from.read_u8().await.ok()? } else { 0 };
    let length = from.read_u32().await.ok()? as usize;
    let mut body = vec![0; length.checked_sub(4)?];
    from.read_exact(&mut body).await.ok()?;
    Some((kind, body))
}

async fn write_message(to: &mut OwnedWriteHalf, kind: u8, body: &[u8]) -> Option<()> {
    let mut bytes = Vec::with_capacity(body.len() + 5);
    if kind != 0 {
        bytes.push(kind);
    }
    bytes.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    bytes.extend_from_slice(body);
    to.write_all(&bytes).await.ok()
}

/// Client → server; `true` when it cut the link.
async fn to_server(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    armed: Armed,
    position: Arc<Mutex<Position>>,
) -> bool {
    let mut typed = false;
    while let Some((kind, body)) = next_message(&mut from, typed).await {
        typed = true;
        let cut = {
            let mut armed = armed.lock().unwrap();
            let hit = armed.as_ref().is_some_and(|(marker, _)| body.windows(marker.len()).any(|w| w == marker));
            if hit { armed.take().map(|(_, cut)| cut) } else { None }
        };
        {
            let mut position = position.lock().unwrap();
            match cut {
                Some(Cut::BeforeTheStatement) => return true,
                Some(Cut::AfterTheCommit) => position.awaiting_sync = true,
                None => {}
            }
            if matches!(kind, 0 | b'Q' | b'S') {
                position.syncs += 1;
                if std::mem::take(&mut position.awaiting_sync) {
                    position.cut_at_ready = Some(position.syncs);
                }
            }
        }
        if write_message(&mut to, kind, &body).await.is_none() {
            return false;
        }
    }
    false
}

/// Server → client; `true` when it cut the link.
async fn to_client(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, position: Arc<Mutex<Position>>) -> bool {
    while let Some((kind, body)) = next_message(&mut from, true).await {
        {
            let mut position = position.lock().unwrap();
            // The client's Sync is counted before it is passed on, so before any of its answer.
            if position.cut_at_ready == Some(position.readies + 1) {
                if kind == b'Z' {
                    return true;
                }
                continue;
            }
            if kind == b'Z' {
                position.readies += 1;
            }
        }
        if write_message(&mut to, kind, &body).await.is_none() {
            return false;
        }
    }
    false
}
