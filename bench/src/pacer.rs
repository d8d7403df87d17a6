//! Wake-ups at the moment a send is due.
//!
//! tokio's timer fires at the first whole-millisecond tick at or after a deadline, so a send paced
//! by it leaves up to a millisecond after its scheduled time (about half of one on average), and
//! that lateness counts in every latency the generator measures from the schedule — time no
//! server can remove. A timerfd is the kernel's high-resolution timer (a thread's default slack is
//! 50 µs); tokio's reactor waits on it like on a socket, so waking for it costs what waking for a
//! frame does.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use clap::ValueEnum;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;
use tokio::time::{Instant, sleep_until};

/// Which timer paces the sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PacerKind {
    /// A timerfd, to tens of microseconds.
    Precise,
    /// tokio's timer, to the next millisecond (what the generator used up to this option).
    Tokio,
}

/// One shard's timer.
pub enum Pacer {
    Precise {
        timer: AsyncFd<Timer>,
        /// The deadline the timer is set for, if it has not fired yet.
        armed: Option<Instant>,
    },
    Tokio,
}

/// A timerfd that tokio can wait on.
pub struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Pacer {
    /// A pacer of `kind`; a precise one falls back to tokio's timer where no timerfd can be made.
    pub fn new(kind: PacerKind) -> Self {
        if kind == PacerKind::Tokio {
            return Pacer::Tokio;
        }
        let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC)
            .map_err(io::Error::from)
            // SAFETY: `Timer` owns its descriptor and keeps it open, unreplaced, while registered.
            .and_then(|fd| unsafe { Ok(AsyncFd::register(Timer(fd))?) });
        match timer {
            Ok(timer) => Pacer::Precise { timer, armed: None },
            Err(e) => {
                crate::note(format!("no timerfd ({e}): sends are paced by tokio's millisecond timer"));
                Pacer::Tokio
            }
        }
    }

    /// Resolves at `at` (at once if it has passed). Cancel-safe: dropped before `at`, the timer
    /// stays set, and the next call for the same deadline waits on it without setting it again,
    /// so a shard that wakes for every frame does not pay a system call per frame.
    pub async fn until(&mut self, at: Instant) {
        let Pacer::Precise { timer, armed } = self else {
            return sleep_until(at).await;
        };
        if *armed != Some(at) {
            let wait = at.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                *armed = None;
                return;
            }
            if timer
                .get_ref()
                .0
                .set(Expiration::OneShot(TimeSpec::from_duration(wait)), TimerSetTimeFlags::empty())
                .is_err()
            {
                *armed = None;
                return sleep_until(at).await;
            }
            *armed = Some(at);
        }
        loop {
            let Ok(mut ready) = timer.readable().await else {
                *armed = None;
                return sleep_until(at).await;
            };
            match ready.try_io(|t| t.get_ref().0.wait().map_err(io::Error::from)) {
                Ok(Ok(())) => {
                    *armed = None;
                    return;
                }
                // A timer that cannot be read would wake the shard for nothing, again and again.
                Ok(Err(_)) => {
                    *armed = None;
                    return sleep_until(at).await;
                }
                // Readiness left from a deadline set before this one: nothing to read, wait on.
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_precise_pacer_wakes_at_its_deadline_and_again_after_being_dropped() {
        let mut pacer = Pacer::new(PacerKind::Precise);
        assert!(matches!(pacer, Pacer::Precise { .. }), "a timerfd can be made here");
        let at = Instant::now() + Duration::from_millis(30);
        // Dropped before its deadline: the next wait for the same deadline still ends at it.
        assert!(tokio::time::timeout(Duration::from_millis(5), pacer.until(at)).await.is_err());
        pacer.until(at).await;
        assert!(Instant::now() >= at, "not before its deadline");
        // A deadline already past resolves at once, and a later one waits again.
        pacer.until(at).await;
        let later = Instant::now() + Duration::from_millis(10);
        pacer.until(later).await;
        assert!(Instant::now() >= later);
    }
}
