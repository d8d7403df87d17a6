//! What a server process sets up for itself before it accepts connections.

/// Raises this process's soft limit on open files to its hard limit, and logs it.
///
/// Every WebSocket and every HTTP connection holds a descriptor. Services are often started with a
/// soft limit far below what the system allows (systemd's default is 1 024, launchd's 256, a login
/// shell's usually 1 024), and a chat server at its soft limit stops accepting: the next clients
/// wait in the listen backlog until someone leaves. The hard limit is the operator's real ceiling,
/// which only they can raise; the soft one is a default meant for programs that use `select`.
pub fn raise_open_files_limit() {
    let before = match rlimit::Resource::NOFILE.get() {
        Ok((soft, _)) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open files limit");
            return;
        }
    };
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) if now > before => tracing::info!(from = before, to = now, "open files limit raised"),
        Ok(now) => tracing::info!(limit = now, "open files limit"),
        Err(e) => tracing::warn!(error = %e, limit = before, "cannot raise the open files limit"),
    }
}
