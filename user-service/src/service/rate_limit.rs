//! Limits on register and login attempts, per client IP and per account, so that neither one
//! address nor a spread of addresses can guess passwords at speed.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use converge_shared::api_error::{ApiError, ApiResult};

/// Forget keys idle long enough to be full again once the map holds this many.
const HOUSEKEEPING_THRESHOLD: usize = 10_000;

pub struct AuthRateLimits {
    per_ip: DefaultKeyedRateLimiter<String>,
    per_account: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl AuthRateLimits {
    /// `per_ip` and `per_account` attempts per minute (0 is taken as 1).
    pub fn new(per_ip: u32, per_account: u32) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            per_ip: RateLimiter::keyed(quota(per_ip)),
            per_account: RateLimiter::keyed(quota(per_account)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one attempt from this IP.
    pub fn check_ip(&self, ip: &str) -> ApiResult<()> {
        self.check(&self.per_ip, ip)
    }

    /// Counts one attempt at this account (a lowercased username or email).
    pub fn check_account(&self, account: &str) -> ApiResult<()> {
        self.check(&self.per_account, account)
    }

    fn check(&self, limiter: &DefaultKeyedRateLimiter<String>, key: &str) -> ApiResult<()> {
        if limiter.len() > HOUSEKEEPING_THRESHOLD {
            limiter.retain_recent();
        }
        limiter.check_key(&key.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::RateLimited { retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0) }
        })
    }
}
