//! The box's floor for the large group: the least any WebSocket chat server can do per message —
//! write it to every member's socket — measured on the same machine, with the same members, rate
//! and frame size, and the same kind of reader. No storage, no relay, no protocol: a bare server,
//! in its own process, writes every text frame it receives to every connection through a queue and
//! a writer task per connection (one hop fewer than a chat-service). It runs twice: on
//! tokio-tungstenite (the machine's floor) and on actix-web with actix-ws (the floor of the
//! framework chat-service is built on: its HTTP/1 dispatcher under every WebSocket, a worker per
//! core, each a single-threaded runtime). What the large group measures above these is Converge's.
//!
//! The idle floor holds connections open on two bare servers — the same tokio-tungstenite one, and
//! actix-web with actix-ws, the framework chat-service is built on — and measures each one's RSS
//! per connection: what a connection costs before any of Converge's own state.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytestring::ByteString;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpSocket;
use tokio::process::Child;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::arrival::{self, StampedWs};
use crate::fleet::{LastRecipient, READ_BUFFER, histogram, micros_since_origin};
use crate::pacer::{Pacer, PacerKind};
use crate::procs::{Procs, Watched, round};
use crate::scenarios::{LargeGroupArgs, slope, summary};
use crate::{Output, note};

/// Connections the kernel queues for accepting.
const ACCEPT_BACKLOG: u32 = 2048;
/// The size of `ready` in the idle scenario (two groups of ten, no messages): the idle floor writes a
/// frame this large to each connection, as chat-service must.
const READY_BYTES: usize = 3328;

#[derive(clap::Args)]
pub struct FanoutFloorArgs {
    /// The large group's shape (one member sends here: the server's work per message is the same).
    #[command(flatten)]
    group: LargeGroupArgs,
    /// Bytes per frame: about a large group's `new_message` frame.
    #[arg(long, default_value_t = 330)]
    frame_bytes: usize,
    /// The server's worker threads (a chat-service runs one HTTP worker per core).
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// The bare servers measured, one after the other.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Framework::TokioTungstenite, Framework::ActixWs])]
    frameworks: Vec<Framework>,
}

#[derive(clap::Args)]
pub struct ResumeFloorArgs {
    /// Clients connecting at once (the resume storm's members).
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Frames each client is sent on connecting (the resume storm's missed messages).
    #[arg(long, default_value_t = 100)]
    frames: usize,
    /// Bytes per frame: about a `new_message` frame.
    #[arg(long, default_value_t = 330)]
    frame_bytes: usize,
    /// The server's worker threads.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
}

#[derive(clap::Args)]
pub struct IdleFloorArgs {
    /// Connections held by each bare server (the idle scenario's).
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// RSS is sampled after each of this many equal batches of connections.
    #[arg(long, default_value_t = 10)]
    batches: usize,
    #[arg(long, default_value_t = 30.0)]
    hold_secs: f64,
    /// Bytes of one frame the server writes to each connection after registering it, as
    /// chat-service writes `ready` (the idle scenario's mean `ready_bytes_mean`); 0 for none.
    #[arg(long, default_value_t = READY_BYTES)]
    ready_bytes: usize,
    /// Bytes of the one frame each client sends after connecting: about an auth frame with its token.
    #[arg(long, default_value_t = 400)]
    hello_bytes: usize,
    /// The server's worker threads.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
}

/// What a bare server is built with.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Framework {
    TokioTungstenite,
    /// actix-web with actix-ws, as chat-service: an HTTP/1 dispatcher per connection that stays
    /// under the upgraded WebSocket.
    ActixWs,
}

#[derive(clap::Args)]
pub struct FloorServerArgs {
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    #[arg(long, value_enum, default_value_t = Framework::TokioTungstenite)]
    pub framework: Framework,
    /// Text frames received are dropped instead of written to every connection (actix-ws always drops them).
    #[arg(long)]
    pub no_fanout: bool,
    /// Frames written to each connection as soon as it is registered.
    #[arg(long, default_value_t = 0)]
    pub burst: usize,
    #[arg(long, default_value_t = 330)]
    pub frame_bytes: usize,
}

/// The server half: prints its port, writes `burst` frames to each new connection, and every text
/// frame it receives to every connection.
pub fn serve(args: FloorServerArgs) -> Result<()> {
    match args.framework {
        Framework::TokioTungstenite => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads.max(1))
            .enable_all()
            .build()?
            .block_on(serve_tungstenite(args)),
        Framework::ActixWs => actix_web::rt::System::new().block_on(serve_actix_ws(args)),
    }
}

async fn serve_tungstenite(args: FloorServerArgs) -> Result<()> {
    let burst: Vec<Message> =
        (1..=args.burst).map(|n| Message::text(padded(format!("{n} "), args.frame_bytes))).collect();
    let burst = Arc::new(burst);
    let socket = TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse()?)?;
    // actix-web's default backlog: with tokio's 1 024, a thousand clients connecting at once
    // overflowed the accept queue and waited a second for the kernel's SYN retransmit.
    let listener = socket.listen(ACCEPT_BACKLOG)?;
    println!("{}", listener.local_addr()?.port());
    let members: Arc<Mutex<Vec<mpsc::Sender<Message>>>> = Arc::default();
    loop {
        let (socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let (members, burst, no_fanout) = (members.clone(), burst.clone(), args.no_fanout);
        tokio::spawn(async move {
            // The generator's 4 KiB read buffer, not tungstenite's default 128 KiB: the idle floor
            // measures what a connection must cost, and the other floors barely read.
            let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
            let Ok(ws) = tokio_tungstenite::accept_async_with_config(socket, Some(config)).await else { return };
            let (mut sink, mut stream) = ws.split();
            let (tx, mut queue) = mpsc::channel::<Message>(256);
            tokio::spawn(async move {
                while let Some(message) = queue.recv().await {
                    if sink.send(message).await.is_err() {
                        break;
                    }
                }
            });
            members.lock().expect("not poisoned").push(tx.clone());
            // Told once it is registered: the client sends nothing before every member is.
            let _ = tx.try_send(Message::text("registered"));
            for frame in burst.iter() {
                if tx.send(frame.clone()).await.is_err() {
                    return;
                }
            }
            drop(tx);
            while let Some(Ok(message)) = stream.next().await {
                if message.is_text() && !no_fanout {
                    for member in members.lock().expect("not poisoned").iter() {
                        let _ = member.try_send(message.clone());
                    }
                }
            }
        });
    }
}

/// The same server on actix-web and actix-ws, configured as chat-service's `/ws`: each connection
/// has a queue and a task writing it to the session (as the tokio-tungstenite server), and its
/// reading task fans every text frame out to every member's queue, across the workers.
async fn serve_actix_ws(args: FloorServerArgs) -> Result<()> {
    let burst: Arc<Vec<ByteString>> =
        Arc::new((1..=args.burst).map(|n| ByteString::from(padded(format!("{n} "), args.frame_bytes))).collect());
    let members: Arc<Mutex<Vec<mpsc::Sender<ByteString>>>> = Arc::default();
    let no_fanout = args.no_fanout;
    let server = actix_web::HttpServer::new(move || {
        let (burst, members) = (burst.clone(), members.clone());
        actix_web::App::new().route(
            "/",
            actix_web::web::get().to(move |req: actix_web::HttpRequest, body: actix_web::web::Payload| {
                let (burst, members) = (burst.clone(), members.clone());
                async move {
                    let (response, mut session, stream) = actix_ws::handle(&req, body)?;
                    let mut stream = stream.aggregate_continuations();
                    if no_fanout {
                        // The idle floor: the session alone, nothing of the fan-out's queue and task.
                        actix_web::rt::spawn(async move {
                            if session.text("registered").await.is_err() {
                                return;
                            }
                            for frame in burst.iter() {
                                if session.text(frame.clone()).await.is_err() {
                                    return;
                                }
                            }
                            while let Some(Ok(_)) = stream.next().await {}
                        });
                        return Ok(response);
                    }
                    let (tx, mut queue) = mpsc::channel::<ByteString>(256);
                    actix_web::rt::spawn(async move {
                        while let Some(text) = queue.recv().await {
                            if session.text(text).await.is_err() {
                                break;
                            }
                        }
                    });
                    actix_web::rt::spawn(async move {
                        members.lock().expect("not poisoned").push(tx.clone());
                        // Told once it is registered: the client sends nothing before every member is.
                        let _ = tx.try_send(ByteString::from_static("registered"));
                        for frame in burst.iter() {
                            if tx.send(frame.clone()).await.is_err() {
                                return;
                            }
                        }
                        drop(tx);
                        while let Some(Ok(message)) = stream.next().await {
                            if let actix_ws::AggregatedMessage::Text(text) = message {
                                for member in members.lock().expect("not poisoned").iter() {
                                    let _ = member.try_send(text.clone());
                                }
                            }
                        }
                    });
                    Ok::<_, actix_web::Error>(response)
                }
            }),
        )
    })
    .workers(args.threads.max(1))
    // Applies to the sockets `bind` creates, so the server binds its own (not a std listener).
    .backlog(ACCEPT_BACKLOG)
    .tcp_nodelay(true)
    .disable_signals()
    .bind(("127.0.0.1", 0))?;
    let port = server.addrs().first().context("bound to an address")?.port();
    let server = server.run();
    println!("{port}");
    server.await?;
    Ok(())
}

/// Per message: its slowest member's wait, read and in the socket, and how many members got it.
#[derive(Default)]
struct Tally {
    slowest: Vec<LastRecipient>,
    complete: usize,
    received: usize,
}

/// The client half, for each bare server: starts it, connects the members, sends from one of them
/// on an open-loop schedule, and reports when the last member got each message.
/// Its sends are paced as the generator's are (`pacer`), so the two compare.
pub async fn fanout_floor(args: &FanoutFloorArgs, pacer: PacerKind, out: &mut Output) -> Result<()> {
    for framework in &args.frameworks {
        fanout_floor_on(*framework, args, pacer, out).await?;
    }
    Ok(())
}

async fn fanout_floor_on(
    framework: Framework,
    args: &FanoutFloorArgs,
    pacer: PacerKind,
    out: &mut Output,
) -> Result<()> {
    let (server, pid, url) = start(framework, true, args.server_threads, 0, args.frame_bytes).await?;

    let total = (args.group.rate * args.group.secs).round() as usize;
    // Indexed by message number, from 1.
    let tally = Arc::new(Mutex::new(Tally { slowest: vec![LastRecipient::default(); total + 1], ..Tally::default() }));
    let progress = Arc::new(Notify::new());
    let connections = futures_util::stream::iter(0..args.group.members)
        .map(|_| connect(url.clone()))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let mut sender = None;
    for connection in connections {
        let ws = connection.context("connecting to the floor server")?;
        let arrivals = ws.get_ref().arrivals();
        let (sink, mut stream) = ws.split();
        sender.get_or_insert(sink);
        let (tally, progress, members) = (tally.clone(), progress.clone(), args.group.members);
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(text))) = stream.next().await {
                let now = micros_since_origin(Instant::now());
                let mut fields = text.as_str().split(' ');
                let (Some(Ok(n)), Some(Ok(due))) =
                    (fields.next().map(str::parse::<usize>), fields.next().map(str::parse::<u64>))
                else {
                    continue;
                };
                let mut tally = tally.lock().expect("not poisoned");
                tally.received += 1;
                let Some(entry) = tally.slowest.get_mut(n) else { continue };
                let latency = now.saturating_sub(due);
                let at_socket = arrival::latency_at_socket(arrivals.latest(), due, latency);
                entry.add(LastRecipient { slowest: latency, slowest_at_socket: at_socket, recipients: 1 });
                if entry.recipients as usize == members {
                    tally.complete += 1;
                    progress.notify_one();
                }
            }
        });
    }
    let mut sender = sender.context("no members")?;
    let frame = |n: usize, due: u64| padded(format!("{n} {due} "), args.frame_bytes);
    let wait_for = |count: usize| {
        let (tally, progress) = (tally.clone(), progress.clone());
        async move {
            loop {
                let notified = progress.notified();
                if tally.lock().expect("not poisoned").complete >= count {
                    return;
                }
                notified.await;
            }
        }
    };
    let procs = Procs::new(vec![Watched { name: "floor-server".into(), pid }]);
    let before = procs.sample();
    let mut pacer = Pacer::new(pacer);
    let start = Instant::now();
    for n in 1..=total {
        let due = start + Duration::from_secs_f64((n - 1) as f64 / args.group.rate);
        pacer.until(due).await;
        sender.send(Message::text(frame(n, micros_since_origin(due)))).await?;
    }
    if tokio::time::timeout(Duration::from_secs(60), wait_for(total)).await.is_err() {
        bail!("not every member received every message within a minute");
    }
    let after = procs.sample();
    let tally = tally.lock().expect("not poisoned");
    let (mut last, mut last_at_socket) = (histogram(), histogram());
    for message in &tally.slowest[1..] {
        last.saturating_record(message.slowest);
        last_at_socket.saturating_record(message.slowest_at_socket);
    }
    out.emit(&json!({
        "scenario": "reference", "name": "bare WebSocket fan-out", "framework": format!("{framework:?}"),
        "members": args.group.members,
        "rate": args.group.rate, "duration_s": args.group.secs, "frame_bytes": args.frame_bytes,
        "server_threads": args.server_threads, "last_recipient": summary(&last),
        "last_recipient_at_socket": summary(&last_at_socket),
        "deliveries": tally.received, "expected_deliveries": total * args.group.members,
        "procs": Procs::describe(&before, &after),
    }))?;
    drop(server);
    Ok(())
}

/// The resume storm's floor: every client connects at once and is sent its missed frames straight
/// away — no authentication, no reads, no presence; the time until the last client has them all.
pub async fn resume_floor(args: &ResumeFloorArgs, out: &mut Output) -> Result<()> {
    let (server, pid, url) =
        start(Framework::TokioTungstenite, true, args.server_threads, args.frames, args.frame_bytes).await?;
    let procs = Procs::new(vec![Watched { name: "floor-server".into(), pid }]);
    let before = procs.sample();
    let started = Instant::now();
    let clients = (0..args.clients).map(|_| {
        let (url, frames) = (url.clone(), args.frames);
        async move {
            let mut ws = connect(url).await?;
            let mut received = 0;
            while received < frames {
                match ws.next().await {
                    Some(Ok(Message::Text(_))) => received += 1,
                    Some(Ok(_)) => {}
                    other => bail!("the floor server ended a connection early: {other:?}"),
                }
            }
            anyhow::Ok((started.elapsed(), ws))
        }
    });
    let results = futures_util::future::join_all(clients).await;
    let all_caught_up = started.elapsed();
    let after = procs.sample();
    let mut caught_up = histogram();
    let mut failures = 0;
    for result in &results {
        match result {
            Ok((at, _)) => {
                caught_up.saturating_record(at.as_micros() as u64);
            }
            Err(_) => failures += 1,
        }
    }
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        bail!("{failures} of {} clients failed: {e:#}", args.clients);
    }
    out.emit(&json!({
        "scenario": "reference", "name": "bare WebSocket connect storm", "clients": args.clients,
        "frames": args.frames, "frame_bytes": args.frame_bytes, "server_threads": args.server_threads,
        "all_caught_up_s": (all_caught_up.as_secs_f64() * 1000.0).round() / 1000.0,
        "caught_up": summary(&caught_up), "procs": Procs::describe(&before, &after),
    }))?;
    drop(results);
    drop(server);
    Ok(())
}

/// Idle connections on each bare server: RSS per connection (the least-squares slope while
/// connecting, and after the hold as the idle scenario measures it).
pub async fn idle_floor(args: &IdleFloorArgs, out: &mut Output) -> Result<()> {
    for framework in [Framework::ActixWs, Framework::TokioTungstenite] {
        let with_ready = usize::from(args.ready_bytes > 0);
        let (server, pid, url) = start(framework, false, args.server_threads, with_ready, args.ready_bytes).await?;
        let procs = Procs::new(vec![Watched { name: "floor-server".into(), pid }]);
        let baseline = procs.sample();
        let base_rss = Procs::rss_kib(&baseline, "floor");
        let mut points = vec![(0.0, base_rss as f64)];
        let hello = padded("hello ".into(), args.hello_bytes);
        let batch = args.connections.div_ceil(args.batches.max(1));
        let mut held = Vec::with_capacity(args.connections);
        while held.len() < args.connections {
            let this = batch.min(args.connections - held.len());
            let connected = futures_util::stream::iter(0..this)
                .map(|_| {
                    let (url, hello) = (url.clone(), hello.clone());
                    async move {
                        let mut ws = connect(url).await?;
                        ws.send(Message::text(hello)).await?;
                        for _ in 0..with_ready {
                            ws.next().await.context("the server's ready-sized frame")??;
                        }
                        anyhow::Ok(ws)
                    }
                })
                .buffer_unordered(64)
                .collect::<Vec<_>>()
                .await;
            for ws in connected {
                held.push(ws.with_context(|| format!("connecting to the bare {framework:?} server"))?);
            }
            // Settled as the idle scenario lets chat-service settle after each batch.
            tokio::time::sleep(Duration::from_secs(2)).await;
            points.push((held.len() as f64, Procs::rss_kib(&procs.sample(), "floor") as f64));
        }
        note(format!("idle floor ({framework:?}): holding {} connections for {}s", held.len(), args.hold_secs));
        tokio::time::sleep(Duration::from_secs_f64(args.hold_secs)).await;
        let after = procs.sample();
        let rss_held = Procs::rss_kib(&after, "floor");
        out.emit(&json!({
            "scenario": "reference", "name": "bare WebSocket idle connections", "framework": format!("{framework:?}"),
            "connections": held.len(), "hello_bytes": args.hello_bytes, "ready_bytes": args.ready_bytes,
            "hold_s": args.hold_secs,
            "server_threads": args.server_threads, "server_rss_baseline_kib": base_rss, "server_rss_held_kib": rss_held,
            "rss_slope_bytes_per_connection": round(slope(&points) * 1024.0, 0),
            "rss_after_hold_bytes_per_connection":
                round((rss_held as f64 - base_rss as f64) * 1024.0 / held.len().max(1) as f64, 0),
            "procs": Procs::describe(&baseline, &after),
        }))?;
        drop(held);
        drop(server);
    }
    Ok(())
}

/// Connects as the generator does, and returns once the server has registered the connection.
async fn connect(url: String) -> Result<StampedWs> {
    let mut ws = arrival::open(&url).await?;
    match ws.next().await {
        Some(Ok(Message::Text(text))) if text.as_str() == "registered" => Ok(ws),
        other => bail!("expected the server's registered frame, got {other:?}"),
    }
}

/// Starts the server half as its own process: the child (killed when dropped), its pid, its URL.
async fn start(
    framework: Framework,
    fanout: bool,
    threads: usize,
    burst: usize,
    frame_bytes: usize,
) -> Result<(Child, u32, String)> {
    let framework = clap::ValueEnum::to_possible_value(&framework).context("every framework has a name")?;
    let mut server = tokio::process::Command::new(std::env::current_exe()?)
        .arg("floor-server")
        .args(["--framework", framework.get_name()])
        .args((!fanout).then_some("--no-fanout"))
        .args(["--threads", &threads.to_string(), "--burst", &burst.to_string()])
        .args(["--frame-bytes", &frame_bytes.to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = server.id().context("the floor server has no pid")?;
    let mut lines = BufReader::new(server.stdout.take().context("piped")?).lines();
    let port: u16 = lines.next_line().await?.context("the floor server printed no port")?.parse()?;
    Ok((server, pid, format!("ws://127.0.0.1:{port}/")))
}

/// `head` followed by dots up to `bytes`.
fn padded(head: String, bytes: usize) -> String {
    let dots = ".".repeat(bytes.saturating_sub(head.len()));
    head + &dots
}
