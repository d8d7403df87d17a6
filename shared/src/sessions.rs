//! Sessions ended at user-service (a logout, "sign out everywhere", a password change, a
//! deactivation, a stolen refresh token), told to every service that verifies access tokens, so that
//! the access tokens of those sessions are refused at once and the connections they opened close —
//! rather than when the tokens expire.
//!
//! user-service publishes a [`SessionsEnded`] after the revocation commits: over Redis (the channel
//! [`channel`]) when it has `REDIS_URL`, else on this process's [`local_bus`], which is how the
//! embedded default (both services in one process) hears of it. Each verifier keeps the ended
//! sessions in its [`EndedSessions`] until the last access token issued for them has expired.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The Redis channel of [`SessionsEnded`] events, under the deployment's key prefix.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}sessions-ended")
}

/// Some sessions of a user have ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionsEnded {
    pub user_id: Uuid,
    /// The sessions (the `sid` of their access tokens).
    pub sessions: Vec<Uuid>,
    /// When the last access token issued for them expires (seconds since the epoch): until then
    /// their tokens must be refused, after that they are refused anyway.
    pub until: i64,
}

/// The process-wide bus of [`SessionsEnded`], for services that share a process and no Redis.
pub fn local_bus() -> &'static tokio::sync::broadcast::Sender<SessionsEnded> {
    static BUS: OnceLock<tokio::sync::broadcast::Sender<SessionsEnded>> = OnceLock::new();
    BUS.get_or_init(|| tokio::sync::broadcast::channel(1024).0)
}

/// The sessions known to have ended whose tokens may still be unexpired, and a signal that wakes
/// whoever waits for one of them to end.
pub struct EndedSessions {
    /// sid → the moment (seconds since the epoch) after which its tokens have all expired.
    ended: Mutex<HashMap<Uuid, i64>>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for EndedSessions {
    fn default() -> Self {
        Self { ended: Mutex::default(), changed: tokio::sync::watch::channel(0).0 }
    }
}

impl EndedSessions {
    /// Takes note of ended sessions; forgets those whose tokens have all expired.
    pub fn record(&self, event: &SessionsEnded) {
        let now = chrono::Utc::now().timestamp();
        {
            let mut ended = self.ended.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            ended.retain(|_, until| *until >= now);
            for sid in &event.sessions {
                let until = ended.entry(*sid).or_insert(event.until);
                *until = (*until).max(event.until);
            }
        }
        self.changed.send_modify(|version| *version += 1);
    }

    pub fn has_ended(&self, sid: Uuid) -> bool {
        self.ended.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).contains_key(&sid)
    }

    /// Resolves once `sid` has ended (at once if it has already); never for `None`, a token that
    /// belongs to no session (issued to an app).
    pub async fn wait_for(&self, sid: Option<Uuid>) {
        let Some(sid) = sid else { return std::future::pending().await };
        let mut changed = self.changed.subscribe();
        while !self.has_ended(sid) {
            if changed.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(sessions: Vec<Uuid>, until: i64) -> SessionsEnded {
        SessionsEnded { user_id: Uuid::new_v4(), sessions, until }
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_its_session_ends_and_not_for_another() {
        let store = std::sync::Arc::new(EndedSessions::default());
        let (mine, other) = (Uuid::new_v4(), Uuid::new_v4());
        let later = chrono::Utc::now().timestamp() + 60;
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { store.wait_for(Some(mine)).await }
        });
        store.record(&ended(vec![other], later));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "another session's end wakes it for nothing");
        assert!(store.has_ended(other) && !store.has_ended(mine));
        store.record(&ended(vec![mine], later));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.unwrap().unwrap();
        assert!(store.has_ended(mine));
    }

    #[test]
    fn sessions_whose_tokens_have_all_expired_are_forgotten() {
        let store = EndedSessions::default();
        let now = chrono::Utc::now().timestamp();
        let (old, recent) = (Uuid::new_v4(), Uuid::new_v4());
        store.record(&ended(vec![old], now - 1));
        store.record(&ended(vec![recent], now + 60));
        assert!(!store.has_ended(old), "its tokens are refused as expired anyway");
        assert!(store.has_ended(recent));
    }
}
