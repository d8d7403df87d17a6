//! Limits on register and login attempts, per client IP and per account, so that neither one
//! address nor a spread of addresses can guess passwords at speed.

use converge_shared::api_error::ApiResult;
use converge_shared::rate_limit::PerKeyLimit;

pub struct AuthRateLimits {
    per_ip: PerKeyLimit<String>,
    per_account: PerKeyLimit<String>,
}

impl AuthRateLimits {
    /// `per_ip` and `per_account` attempts per minute (0 is taken as 1).
    pub fn new(per_ip: u32, per_account: u32) -> Self {
        Self { per_ip: PerKeyLimit::per_minute(per_ip), per_account: PerKeyLimit::per_minute(per_account) }
    }

    /// Counts one attempt from this IP.
    pub fn check_ip(&self, ip: &str) -> ApiResult<()> {
        self.per_ip.check(&ip.to_owned())
    }

    /// Counts one attempt at this account (its id, or the lowercased name typed when no account has it).
    pub fn check_account(&self, account: &str) -> ApiResult<()> {
        self.per_account.check(&account.to_owned())
    }
}
