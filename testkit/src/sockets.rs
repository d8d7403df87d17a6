//! This process's TCP sockets, as the kernel has them: what a client library set on its connections,
//! whatever its API lets one ask.

use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, RawFd};

/// `TCP_NODELAY` of each of this process's TCP sockets whose local and peer addresses `which`
/// accepts.
pub fn tcp_nodelay_of_sockets(which: impl Fn(SocketAddr, SocketAddr) -> bool) -> Vec<bool> {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let fd: RawFd = entry.file_name().to_str()?.parse().ok()?;
            std::fs::read_link(entry.path()).ok()?.to_str()?.starts_with("socket:").then_some(())?;
            // SAFETY: only options and addresses are read, and the descriptor is this process's:
            // should it be closed meanwhile, the reads fail and it is skipped.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let socket = socket2::SockRef::from(&fd);
            let (local, peer) = (socket.local_addr().ok()?.as_socket()?, socket.peer_addr().ok()?.as_socket()?);
            which(local, peer).then(|| socket.tcp_nodelay().ok())?
        })
        .collect()
}
