//! When a frame reached the client's socket, from the kernel's receive timestamp.
//!
//! The generator reads its sockets one after another on one thread: a large group's message is
//! read from its thousandth member's socket 5 – 10 ms after the first (5 – 10 µs of the generator's
//! CPU per delivery), a wait a client on its own machine would not have. Each connection asks the
//! kernel to stamp what arrives (`SO_TIMESTAMPNS`; on loopback the stamp is taken as the sender's
//! segment enters the receive path) and reads with `recvmsg`; the stamp of its latest read, moved
//! onto this process's monotonic clock, is what [`Arrivals::latest`] gives for the frame just
//! parsed. Latencies are reported both ways: read by the generator, and in the client's socket.

use std::io::{self, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::fleet::{READ_BUFFER, micros_since_origin};

/// A client's TCP connection whose reads carry the kernel's arrival stamp. Registered with the
/// runtime as a plain descriptor (`AsyncFd`) rather than a tokio `TcpStream`, whose readiness a
/// read of one's own cannot clear: see [`StampedTcp::poll_read`].
pub struct StampedTcp {
    io: AsyncFd<std::net::TcpStream>,
    /// Room for one `SCM_TIMESTAMPNS`, reused by every read.
    control: Vec<u8>,
    arrivals: Arrivals,
}

/// Where a connection's latest read arrived, in µs since [`crate::fleet::origin`]; cheap to clone,
/// so the reader of a split stream keeps one.
#[derive(Clone, Default)]
pub struct Arrivals(Arc<AtomicU64>);

impl Arrivals {
    /// When the bytes of the latest read reached the socket; `None` before a stamped read.
    pub fn latest(&self) -> Option<u64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            at => Some(at),
        }
    }

    /// Records a read's kernel stamp (wall clock) as a moment of the monotonic clock: the wait
    /// since the stamp is measured on the wall clock alone and taken off the monotonic now, so the
    /// two clocks are never paired. A read without a stamp forgets the last one, so its frames fall
    /// back to the time they were read rather than take an earlier read's: the kernel starts
    /// stamping a moment after the first socket asks (it turns stamping on from a work queue), so
    /// the first segments of a run can come unstamped.
    fn record(&self, stamp: Option<TimeSpec>) {
        let Some(stamp) = stamp else {
            self.0.store(0, Ordering::Relaxed);
            return;
        };
        let (now, wall) = (Instant::now(), SystemTime::now());
        let stamped = Duration::new(stamp.tv_sec().max(0) as u64, stamp.tv_nsec().clamp(0, 999_999_999) as u32);
        let waited = wall.duration_since(UNIX_EPOCH).unwrap_or_default().saturating_sub(stamped);
        let at = micros_since_origin(now).saturating_sub(waited.as_micros() as u64);
        self.0.store(at.max(1), Ordering::Relaxed);
    }
}

impl StampedTcp {
    pub async fn connect(host: &str, port: u16) -> io::Result<Self> {
        let io = TcpStream::connect((host, port)).await?;
        io.set_nodelay(true)?;
        // Without the kernel's stamps (a kernel or sandbox that lacks them) every frame counts its
        // read time: the figures in the socket equal the read ones, and the run goes on.
        if let Err(e) = setsockopt(&io, sockopt::ReceiveTimestampns, &true) {
            static TOLD: std::sync::Once = std::sync::Once::new();
            TOLD.call_once(|| {
                crate::note(format!("no receive timestamps ({e}): in-socket latencies are read latencies"))
            });
        }
        // Still non-blocking, as tokio made it.
        let io = io.into_std()?;
        // SAFETY: the std stream owns its descriptor and keeps it open, unreplaced, while registered.
        let io = unsafe { AsyncFd::register(io)? };
        Ok(Self { io, control: nix::cmsg_space!(TimeSpec), arrivals: Arrivals::default() })
    }

    pub fn arrivals(&self) -> Arrivals {
        self.arrivals.clone()
    }

    /// Runs `write` once the socket can take bytes, again after each stale readiness.
    fn poll_writing<R>(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&std::net::TcpStream) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            let mut ready = ready!(self.io.poll_write_ready(cx))?;
            if let Ok(result) = ready.try_io(|io| write(io.get_ref())) {
                return Poll::Ready(result);
            }
        }
    }
}

/// One `recvmsg` into `into`: the bytes read and the stamp of the last segment among them.
fn receive(fd: RawFd, into: &mut [u8], control: &mut [u8]) -> io::Result<(usize, Option<TimeSpec>)> {
    let mut iov = [io::IoSliceMut::new(into)];
    let message = recvmsg::<()>(fd, &mut iov, Some(control), MsgFlags::empty())?;
    let stamp = message.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|cmsg| match cmsg {
            ControlMessageOwned::ScmTimestampns(stamp) => Some(stamp),
            _ => None,
        })
    });
    Ok((message.bytes, stamp))
}

impl AsyncRead for StampedTcp {
    /// A read shorter than the room it had emptied the socket, so the socket's readiness is
    /// cleared then and there, as tokio's own `TcpStream` does: otherwise the next poll (tungstenite
    /// reads again after every frame) would spend a `recvmsg` on learning that nothing is left — a
    /// second system call for every delivery. Readiness signalled after this read began is kept.
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let fd = this.io.as_raw_fd();
        loop {
            let mut ready = ready!(this.io.poll_read_ready(cx))?;
            let into = buf.initialize_unfilled();
            let room = into.len();
            match ready.try_io(|_| receive(fd, into, &mut this.control)) {
                Ok(Ok((read, stamp))) => {
                    if 0 < read && read < room {
                        ready.clear_ready();
                    }
                    buf.advance(read);
                    this.arrivals.record(stamp);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // Readiness was stale: try_io cleared it, wait for the next.
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for StampedTcp {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_writing(cx, |mut io| io.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_writing(cx, |mut io| io.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Nothing is buffered here: every write went to the socket.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.io.get_ref().shutdown(Shutdown::Write))
    }
}

/// A delivery's latency up to the client's socket, in µs from `scheduled`: from its arrival stamp,
/// never more than `read_latency` (the same delivery until it was read), which it is without one.
pub fn latency_at_socket(arrived: Option<u64>, scheduled: u64, read_latency: u64) -> u64 {
    arrived.map_or(read_latency, |at| at.saturating_sub(scheduled).min(read_latency))
}

/// A WebSocket client connection over a [`StampedTcp`].
pub type StampedWs = WebSocketStream<StampedTcp>;

/// Opens a WebSocket to a `ws://` URL as the generator does: no Nagle, a small read buffer, stamped
/// arrivals.
pub async fn open(url: &str) -> Result<StampedWs> {
    let uri: Uri = url.parse().with_context(|| format!("not a URL: {url}"))?;
    anyhow::ensure!(uri.scheme_str() == Some("ws"), "the generator speaks ws:// only, not {url}");
    let host = uri.host().context("a ws:// URL names a host")?;
    let tcp = StampedTcp::connect(host, uri.port_u16().unwrap_or(80)).await?;
    // tungstenite zero-fills its read buffer up to `read_buffer_size` before every read: at the
    // default 128 KiB that memset was a third of the generator's CPU. Frames here are small; the
    // buffer still grows for a large one (a `ready` listing 1000 participants).
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config)).await?;
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A stamped client and the server's side of its connection.
    async fn connected() -> (StampedTcp, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (client, accepted) = tokio::join!(StampedTcp::connect("127.0.0.1", port), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    /// Probes until the kernel stamps what arrives: the first socket to ask turns stamping on for
    /// the whole machine from a work queue, a moment later, and there is no event to wait for.
    async fn stamping_on(client: &mut StampedTcp, server: &mut TcpStream) {
        let arrivals = client.arrivals();
        for _ in 0..10_000 {
            server.write_all(b"probe").await.unwrap();
            let mut probe = [0u8; 5];
            client.read_exact(&mut probe).await.unwrap();
            if arrivals.latest().is_some() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the kernel never stamped a read");
    }

    /// A reader that comes late still learns when the bytes arrived: before its read, by as long
    /// as it was late.
    #[tokio::test]
    async fn a_late_read_carries_the_time_the_bytes_arrived() {
        let (mut client, mut server) = connected().await;
        let arrivals = client.arrivals();
        assert_eq!(arrivals.latest(), None, "nothing read yet");
        stamping_on(&mut client, &mut server).await;

        let before_write = micros_since_origin(Instant::now());
        server.write_all(b"frame").await.unwrap();
        let written = micros_since_origin(Instant::now());
        // The reader's lateness is what is measured here, not a wait for something to happen: on
        // loopback the bytes are in the client's socket once write_all returns.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let mut read = [0u8; 16];
        let n = client.read(&mut read).await.unwrap();
        let read_at = micros_since_origin(Instant::now());

        assert_eq!(&read[..n], b"frame");
        let arrived = arrivals.latest().expect("the read was stamped");
        // Two clocks' readings, each to the µs: a µs of rounding either way.
        assert!(arrived + 1 >= before_write, "arrived {arrived} µs, written from {before_write} µs");
        assert!(arrived <= written + 1, "arrived {arrived} µs, after the write returned at {written} µs");
        assert!(read_at - arrived >= 30_000, "read at {read_at} µs, arrived {arrived} µs: the 30 ms wait is missing");
    }

    /// A read the kernel did not stamp leaves its frames to their read time, not an earlier stamp.
    #[test]
    fn an_unstamped_read_forgets_the_last_stamp() {
        let arrivals = Arrivals::default();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        arrivals.record(Some(TimeSpec::from_duration(wall)));
        assert!(arrivals.latest().is_some());
        arrivals.record(None);
        assert_eq!(arrivals.latest(), None);
    }

    /// Readiness cleared after a short read loses nothing: what the server writes next wakes the
    /// reader, and more than one read's room arrives whole, in pieces.
    #[tokio::test]
    async fn reads_after_a_short_read_still_wake() {
        let (mut client, mut server) = connected().await;
        let mut read = [0u8; 64];
        for round in 0..200 {
            let frame = format!("frame {round}");
            server.write_all(frame.as_bytes()).await.unwrap();
            let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut read))
                .await
                .expect("the next frame woke the reader")
                .unwrap();
            assert_eq!(&read[..n], frame.as_bytes());
        }

        let large: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let writer = tokio::spawn({
            let large = large.clone();
            async move { server.write_all(&large).await.map(|()| server) }
        });
        let mut received = vec![0u8; large.len()];
        tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut received))
            .await
            .expect("every byte arrived")
            .unwrap();
        assert_eq!(received, large);
        let mut server = writer.await.unwrap().unwrap();

        // And the client's writes reach the server.
        client.write_all(b"from the client").await.unwrap();
        let mut back = [0u8; 15];
        server.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"from the client");
    }
}
