//! Rate limits per key (a client IP, an account, a user), answered as `rate_limited` with the
//! seconds to wait.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::api_error::{ApiError, ApiResult};

/// Forget keys idle long enough to be full again once the map holds this many (or twice as many as
/// the last sweep kept, when that is more).
const HOUSEKEEPING_THRESHOLD: usize = 10_000;

/// A budget of attempts for each key, refilled continuously (GCRA).
pub struct PerKeyLimit<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
    /// The map's size that triggers the next sweep. A sweep reads every key, and with more recent
    /// keys than the threshold (many users writing at once) a fixed threshold would sweep at every
    /// check; doubling what the last sweep kept makes sweeping cost O(1) per check on average.
    sweep_at: AtomicUsize,
}

impl<K: Hash + Eq + Clone> PerKeyLimit<K> {
    /// `per_minute` attempts per key, with a burst of the whole minute's budget (0 is taken as 1).
    pub fn per_minute(per_minute: u32) -> Self {
        Self::with_quota(Quota::per_minute(at_least_one(per_minute)))
    }

    /// `per_second` attempts per key, with a burst of twice that (0 is taken as 1).
    pub fn per_second(per_second: u32) -> Self {
        Self::with_quota(per_second_with_double_burst(per_second))
    }

    fn with_quota(quota: Quota) -> Self {
        Self {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            sweep_at: AtomicUsize::new(HOUSEKEEPING_THRESHOLD),
        }
    }

    /// Counts one attempt of `key`; `rate_limited` with the wait when its budget is spent.
    pub fn check(&self, key: &K) -> ApiResult<()> {
        if self.limiter.len() > self.sweep_at.load(Ordering::Relaxed) {
            self.limiter.retain_recent();
            self.sweep_at.store((2 * self.limiter.len()).max(HOUSEKEEPING_THRESHOLD), Ordering::Relaxed);
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::RateLimited { retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0) }
        })
    }
}

/// `per_second` a second, with bursts of twice that (0 is taken as 1).
pub fn per_second_with_double_burst(per_second: u32) -> Quota {
    let per_second = at_least_one(per_second);
    Quota::per_second(per_second).allow_burst(per_second.saturating_mul(NonZeroU32::MIN.saturating_add(1)))
}

fn at_least_one(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_of_recent_keys_is_not_swept_at_every_check() {
        let limit = PerKeyLimit::per_minute(1);
        // The check of the last key finds the map past the threshold, and sweeps it.
        for key in 0..=HOUSEKEEPING_THRESHOLD + 1 {
            limit.check(&key).unwrap();
        }
        // Every key is recent: the sweep kept them all, and the next one waits for twice as many.
        assert_eq!(limit.sweep_at.load(Ordering::Relaxed), 2 * (HOUSEKEEPING_THRESHOLD + 1));
        limit.check(&(HOUSEKEEPING_THRESHOLD + 2)).unwrap();
        assert_eq!(limit.sweep_at.load(Ordering::Relaxed), 2 * (HOUSEKEEPING_THRESHOLD + 1));
        // The budgets are still kept per key.
        assert!(limit.check(&0).is_err());
    }
}
