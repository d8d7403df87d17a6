//! Rate limits per key (a client IP, an account, a user), answered as `rate_limited` with the
//! seconds to wait.

use std::hash::Hash;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::api_error::{ApiError, ApiResult};

/// Forget keys idle long enough to be full again once the map holds this many.
const HOUSEKEEPING_THRESHOLD: usize = 10_000;

/// A budget of attempts per minute for each key, with a burst of the whole minute's budget.
pub struct PerKeyLimit<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> PerKeyLimit<K> {
    /// `per_minute` attempts per key (0 is taken as 1).
    pub fn per_minute(per_minute: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
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
