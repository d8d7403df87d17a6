//! Rate limits per key (a client IP, an account, a user), answered as `rate_limited` with the
//! seconds to wait.

use std::hash::Hash;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::api_error::{ApiError, ApiResult};

/// Forget keys idle long enough to be full again once the map holds this many.
const HOUSEKEEPING_THRESHOLD: usize = 10_000;

/// A budget of attempts for each key, refilled continuously (GCRA).
pub struct PerKeyLimit<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> PerKeyLimit<K> {
    /// `per_minute` attempts per key, with a burst of the whole minute's budget (0 is taken as 1).
    pub fn per_minute(per_minute: u32) -> Self {
        Self::with_quota(Quota::per_minute(at_least_one(per_minute)))
    }

    /// `per_second` attempts per key, with a burst of twice that (0 is taken as 1).
    pub fn per_second(per_second: u32) -> Self {
        let per_second = at_least_one(per_second);
        Self::with_quota(
            Quota::per_second(per_second).allow_burst(per_second.saturating_mul(NonZeroU32::MIN.saturating_add(1))),
        )
    }

    fn with_quota(quota: Quota) -> Self {
        Self { limiter: RateLimiter::keyed(quota), clock: DefaultClock::default() }
    }

    /// Counts one attempt of `key`; `rate_limited` with the wait when its budget is spent.
    pub fn check(&self, key: &K) -> ApiResult<()> {
        if self.limiter.len() > HOUSEKEEPING_THRESHOLD {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::RateLimited { retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0) }
        })
    }
}

fn at_least_one(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}
