//! Rate limits applied at the moment of sending (governor): a global rate and per-domain rates,
//! each this worker's share of the configured figure, plus a slow-down for domains that answer
//! `421 4.7.x` (throttling) so one provider's throttle does not hold back the rest.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::SendingSettings;

/// First slow-down after a throttle reply; it doubles on each further one, up to the maximum.
const SLOW_DOWN_FIRST: Duration = Duration::from_secs(30);
const SLOW_DOWN_MAX: Duration = Duration::from_secs(30 * 60);

pub struct Throttle {
    global: Option<DefaultDirectRateLimiter>,
    domains: HashMap<String, DefaultDirectRateLimiter>,
    slowed: Mutex<HashMap<String, (Instant, u32)>>,
    /// This worker's share of the global rate, mails per second (None: unlimited).
    pub share_per_second: Option<f64>,
}

/// This worker's share of `rate` per second and `burst` at once, divided among `workers`:
/// the quota its limiter enforces, and the share in mails per second.
fn share(rate: u32, burst: u32, workers: u32) -> (Quota, f64) {
    let share = f64::from(rate) / f64::from(workers.max(1));
    let burst_share = (f64::from(burst.max(1)) / f64::from(workers.max(1)))
        .ceil()
        .max(1.0) as u32;
    let quota = Quota::with_period(Duration::from_secs_f64(1.0 / share))
        .expect("a positive rate gives a positive period")
        .allow_burst(NonZeroU32::new(burst_share).unwrap_or(NonZeroU32::MIN));
    (quota, share)
}

fn limiter(rate: u32, burst: u32, workers: u32) -> (DefaultDirectRateLimiter, f64) {
    let (quota, share) = share(rate, burst, workers);
    (RateLimiter::direct(quota), share)
}

impl Throttle {
    pub fn new(settings: &SendingSettings, workers: u32) -> Self {
        let (global, share) = match settings.rate_per_second {
            Some(rate) => {
                let burst = if settings.burst == 0 {
                    rate
                } else {
                    settings.burst
                };
                let (l, share) = limiter(rate, burst, workers);
                (Some(l), Some(share))
            }
            None => (None, None),
        };
        let domains = settings
            .domain_limits
            .iter()
            .map(|(domain, rate)| (domain.clone(), limiter(*rate, *rate, workers).0))
            .collect();
        Self {
            global,
            domains,
            slowed: Mutex::default(),
            share_per_second: share,
        }
    }

    /// How long a mail to `domain` must wait: `None` to send now (a token is taken from the
    /// domain's limiter), `Some(wait)` when the domain is limited or slowed down.
    pub fn domain_wait(&self, domain: &str) -> Option<Duration> {
        let now = Instant::now();
        if let Some((until, _)) = self.slowed.lock().expect("throttle lock").get(domain) {
            if *until > now {
                return Some(*until - now);
            }
        }
        let limiter = self.domains.get(domain)?;
        limiter
            .check()
            .err()
            .map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Waits for the global limiter; returns whether there is one (and so whether the mail
    /// may have waited for its turn).
    pub async fn wait_global(&self) -> bool {
        let Some(global) = &self.global else {
            return false;
        };
        global.until_ready().await;
        true
    }

    /// A `421 4.7.x` from `domain`: hold its mail back, longer each time it happens again.
    pub fn slow_down(&self, domain: &str) -> Duration {
        let mut slowed = self.slowed.lock().expect("throttle lock");
        let level = slowed.get(domain).map_or(0, |(_, l)| l + 1).min(10);
        let pause = SLOW_DOWN_FIRST
            .saturating_mul(1 << level)
            .min(SLOW_DOWN_MAX);
        slowed.insert(domain.to_owned(), (Instant::now() + pause, level));
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn settings(rate: Option<u32>, domains: &[(&str, u32)]) -> SendingSettings {
        SendingSettings {
            rate_per_second: rate,
            burst: 0,
            domain_limits: domains
                .iter()
                .map(|(d, r)| (d.to_string(), *r))
                .collect::<BTreeMap<_, _>>(),
            concurrency: 4,
            breaker: crate::config::BreakerSettings {
                window: 100,
                percent: 20,
                min_sends: 20,
            },
            backoff: vec![Duration::from_secs(1)],
            give_up_after: Duration::from_secs(3600),
            stale_after: Duration::from_secs(3600),
            approval_threshold: None,
            test_mails_per_hour: 20,
        }
    }

    /// Every moment (from the start) at which greedy senders, one per quota, were let through
    /// by limiters on one controlled clock during `span`: the limiter's own decisions, free of
    /// the machine's speed.
    fn releases(quotas: &[Quota], span: Duration) -> Vec<Duration> {
        use governor::clock::{FakeRelativeClock, Reference};
        let clock = FakeRelativeClock::default();
        let start = clock.now();
        let limiters: Vec<_> = quotas
            .iter()
            .map(|q| RateLimiter::direct_with_clock(*q, clock.clone()))
            .collect();
        let mut released = Vec::new();
        loop {
            let now = clock.now();
            let at = Duration::from(now.duration_since(start));
            if at >= span {
                return released;
            }
            let mut next = span - at;
            for limiter in &limiters {
                loop {
                    match limiter.check() {
                        Ok(()) => released.push(at),
                        Err(not_until) => {
                            next = next.min(not_until.wait_time_from(now));
                            break;
                        }
                    }
                }
            }
            clock.advance(next.max(Duration::from_nanos(1)));
        }
    }

    /// The most moments in any window of `width` that starts at one of them.
    fn busiest(times: &[Duration], width: Duration) -> usize {
        let mut start = 0;
        (0..times.len())
            .map(|end| {
                while times[end] - times[start] >= width {
                    start += 1;
                }
                end - start + 1
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn no_one_second_window_releases_more_than_rate_plus_burst() {
        for (rate, burst, workers) in [
            (50, 10, 1),
            (200, 20, 2),
            (10, 1, 3),
            (7, 0, 1),
            (1000, 50, 4),
        ] {
            let quotas: Vec<Quota> = (0..workers)
                .map(|_| share(rate, burst, workers).0)
                .collect();
            let mut times = releases(&quotas, Duration::from_secs(10));
            times.sort();
            let bound = (rate + burst.max(1) + workers) as usize; // burst shares round up
            let busiest = busiest(&times, Duration::from_secs(1));
            assert!(
                busiest <= bound,
                "{rate}/s + {burst} over {workers}: {busiest} in 1 s"
            );
            assert!(
                busiest >= rate as usize,
                "{rate}/s + {burst} over {workers}: only {busiest} in 1 s"
            );
            let total = times.len();
            let most = 10 * rate as usize + bound;
            assert!(
                total <= most && total >= 10 * rate as usize - workers as usize,
                "{rate}/s + {burst} over {workers}: {total} in 10 s"
            );
        }
    }

    #[test]
    fn the_global_rate_is_shared_among_workers() {
        assert_eq!(
            Throttle::new(&settings(Some(50), &[]), 2).share_per_second,
            Some(25.0)
        );
        assert_eq!(
            Throttle::new(&settings(None, &[]), 2).share_per_second,
            None
        );
    }

    #[test]
    fn a_limited_domain_waits_after_its_burst_and_others_do_not() {
        let t = Throttle::new(&settings(None, &[("slow.example", 2)]), 1);
        assert_eq!(t.domain_wait("slow.example"), None);
        assert_eq!(t.domain_wait("slow.example"), None);
        assert!(t.domain_wait("slow.example").is_some());
        assert_eq!(t.domain_wait("fast.example"), None);
    }

    #[test]
    fn a_throttled_domain_is_slowed_down_longer_each_time() {
        let t = Throttle::new(&settings(None, &[]), 1);
        let first = t.slow_down("big.example");
        let second = t.slow_down("big.example");
        assert!(second > first);
        assert!(t.domain_wait("big.example").is_some());
        assert_eq!(t.domain_wait("other.example"), None);
    }
}
