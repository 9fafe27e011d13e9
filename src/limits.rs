//! Per-IP rate limits (governor, keyed by client), for the HTTP routes (sign-ups, subscriber
//! links) and the inbound SMTP listener (sessions, reports). An IPv4 client is its
//! address; an IPv6 client is its network of `server.ipv6_limit_prefix` bits (64 by default:
//! one host usually holds a whole /64, and could otherwise take a new address per request).
//! `n` per minute means a burst of `n`, refilled one every `60 / n` seconds (GCRA): `n` at once,
//! at most `2n - 1` in any minute, `n` a minute sustained. Old keys are dropped by a periodic
//! `retain_recent`, so memory stays bounded by the clients seen in the last window.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::domain::client_key;

#[derive(Clone)]
pub struct IpRateLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    ipv6_prefix: u8,
}

impl IpRateLimiter {
    /// `n` a minute per client, IPv6 clients counted by their `/ipv6_prefix` network.
    pub fn per_minute(n: u32, ipv6_prefix: u8) -> Self {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(n))),
            ipv6_prefix,
        }
    }

    /// `Err(wait)` when the client at `ip` is over its limit.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        let ip = client_key(ip.unwrap_or(IpAddr::from([0, 0, 0, 0])), self.ipv6_prefix);
        self.limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Drops keys whose limit has fully replenished, every `every`, until `shutdown`.
    pub fn spawn_cleanup(&self, every: Duration, shutdown: CancellationToken) {
        let limiter = Arc::clone(&self.limiter);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(every) => {
                        limiter.retain_recent();
                        limiter.shrink_to_fit();
                    }
                }
            }
        });
    }

    #[cfg(test)]
    fn tracked_keys(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_host_is_one_client_across_its_slash_64() {
        let l = IpRateLimiter::per_minute(2, 64);
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"] {
            let _ = l.check(Some(host.parse().unwrap()));
        }
        assert!(l.check(Some("2001:db8:1:2::77".parse().unwrap())).is_err());
        assert!(l.check(Some("2001:db8:1:3::1".parse().unwrap())).is_ok());
        assert_eq!(
            client_key("::ffff:192.0.2.7".parse().unwrap(), 64),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_key("2001:db8::1".parse().unwrap(), 128),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn n_a_minute_is_a_burst_of_n_then_one_each_60_over_n_seconds() {
        use governor::clock::FakeRelativeClock;
        let clock = FakeRelativeClock::default();
        let l = RateLimiter::direct_with_clock(
            Quota::per_minute(NonZeroU32::new(5).unwrap()),
            clock.clone(),
        );
        let mut passed = 0;
        for _ in 0..60 {
            passed += (0..10).filter(|_| l.check().is_ok()).count();
            clock.advance(Duration::from_secs(1));
        }
        assert_eq!(
            passed, 9,
            "5 at once, then one at 12, 24, 36 and 48 s: 2n - 1 in a minute"
        );
    }

    #[test]
    fn the_limit_applies_per_ip() {
        let l = IpRateLimiter::per_minute(2, 64);
        let a = Some("192.0.2.1".parse().unwrap());
        let b = Some("192.0.2.2".parse().unwrap());
        assert!(l.check(a).is_ok());
        assert!(l.check(a).is_ok());
        let wait = l.check(a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(30));
        assert!(l.check(b).is_ok());
        assert_eq!(l.tracked_keys(), 2);
    }
}
