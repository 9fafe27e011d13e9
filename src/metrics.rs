//! Prometheus metrics through `prometheus-client`: HTTP requests by route, method and status
//! with a latency histogram per route, counted in process; and gauges read from the database at
//! each scrape (`set_ledger`), so they hold across processes.
//!
//! Every label value comes from a closed set, so no request can add a series: routes are the
//! router's own templates (or `unmatched`), methods the RFC 9110 ones (or `OTHER`), statuses
//! three digits. The ledger's labels come from columns with CHECK constraints.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A request method as a label: the methods of RFC 9110, and `OTHER` for any other token.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(clippy::upper_case_acronyms)] // the label values are the methods' own names
pub enum Method {
    GET,
    HEAD,
    POST,
    PUT,
    PATCH,
    DELETE,
    OPTIONS,
    CONNECT,
    TRACE,
    OTHER,
}

impl From<&axum::http::Method> for Method {
    fn from(m: &axum::http::Method) -> Self {
        use axum::http::Method as M;
        match *m {
            M::GET => Self::GET,
            M::HEAD => Self::HEAD,
            M::POST => Self::POST,
            M::PUT => Self::PUT,
            M::PATCH => Self::PATCH,
            M::DELETE => Self::DELETE,
            M::OPTIONS => Self::OPTIONS,
            M::CONNECT => Self::CONNECT,
            M::TRACE => Self::TRACE,
            _ => Self::OTHER,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// A route template of the router (`/manage/{token}`), never the raw path.
    route: String,
    method: Method,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindStatus {
    kind: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Class {
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindSource {
    kind: String,
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Status {
    status: String,
}

type Latency = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// What the ledger looks like now, read from the database (`store::metrics::snapshot`).
pub struct Ledger<'a> {
    /// (kind, status, mails)
    pub deliveries: &'a [(String, String, i64)],
    /// (class of enhanced status code, failed mails)
    pub failures: &'a [(String, i64)],
    pub queue_depth: i64,
    /// Mails per second over the last 10 seconds.
    pub send_rate: f64,
    /// (kind, events)
    pub consent_events: &'a [(String, i64)],
    /// (status, subscribers)
    pub subscribers: &'a [(String, i64)],
    /// (kind, source, reports): bounces, complaints, auto-replies and unknown reports received
    pub reports: &'a [(String, String, i64)],
}

/// The registry and its families; one per process.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
    deliveries: Family<KindStatus, Gauge>,
    failures: Family<Class, Gauge>,
    queue_depth: Gauge,
    send_rate: Gauge<f64, AtomicU64>,
    consent_events: Family<Kind, Gauge>,
    subscribers: Family<Status, Gauge>,
    reports: Family<KindSource, Gauge>,
    /// One scrape at a time refreshes the gauges and encodes.
    scrape: tokio::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "newsletter_http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let latency = Latency::new_with_constructor(latency_histogram);
        registry.register(
            "newsletter_http_request_duration_seconds",
            "Time to answer, by route",
            latency.clone(),
        );
        let deliveries = Family::<KindStatus, Gauge>::default();
        registry.register(
            "newsletter_deliveries",
            "Mails in the ledger by kind and status (sent, deferred, failed, ...)",
            deliveries.clone(),
        );
        let failures = Family::<Class, Gauge>::default();
        registry.register(
            "newsletter_failed_deliveries",
            "Failed mails by class of enhanced status code (5.1 no such user, 5.7 policy, ...)",
            failures.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "newsletter_queue_depth",
            "Mails queued, deferred or being sent",
            queue_depth.clone(),
        );
        let send_rate = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "newsletter_send_rate",
            "Mails sent per second over the last 10 seconds",
            send_rate.clone(),
        );
        let consent_events = Family::<Kind, Gauge>::default();
        registry.register(
            "newsletter_consent_events",
            "Sign-ups, confirmations, unsubscribes and preference changes logged",
            consent_events.clone(),
        );
        let subscribers = Family::<Status, Gauge>::default();
        registry.register(
            "newsletter_subscribers",
            "Subscribers by status",
            subscribers.clone(),
        );
        let reports = Family::<KindSource, Gauge>::default();
        registry.register(
            "newsletter_reports",
            "Bounce and complaint reports received after sending, by kind (hard, soft, complaint, \
             auto_reply, unknown) and source (smtp, imap, ses, postmark, sendgrid, mailgun)",
            reports.clone(),
        );
        Self {
            registry,
            reports,
            requests,
            latency,
            deliveries,
            failures,
            queue_depth,
            send_rate,
            consent_events,
            subscribers,
            scrape: tokio::sync::Mutex::new(()),
        }
    }
}

impl Metrics {
    /// Counts one answered request. `route` is a template of the router (or `unmatched`):
    /// never a raw path, which could hold a token and would make the label set unbounded.
    pub fn record(&self, route: &str, method: &axum::http::Method, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.into(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// The OpenMetrics text of everything, with the gauges set from `ledger` first.
    pub async fn encode(&self, ledger: &Ledger<'_>) -> String {
        let _one = self.scrape.lock().await;
        set_all(
            &self.deliveries,
            ledger.deliveries.iter().map(|(kind, status, n)| {
                (
                    KindStatus {
                        kind: kind.clone(),
                        status: status.clone(),
                    },
                    *n,
                )
            }),
        );
        set_all(
            &self.failures,
            ledger.failures.iter().map(|(class, n)| {
                (
                    Class {
                        class: class.clone(),
                    },
                    *n,
                )
            }),
        );
        self.queue_depth.set(ledger.queue_depth);
        self.send_rate.set(ledger.send_rate);
        set_all(
            &self.consent_events,
            ledger
                .consent_events
                .iter()
                .map(|(kind, n)| (Kind { kind: kind.clone() }, *n)),
        );
        set_all(
            &self.subscribers,
            ledger.subscribers.iter().map(|(status, n)| {
                (
                    Status {
                        status: status.clone(),
                    },
                    *n,
                )
            }),
        );
        set_all(
            &self.reports,
            ledger.reports.iter().map(|(kind, source, n)| {
                (
                    KindSource {
                        kind: kind.clone(),
                        source: source.clone(),
                    },
                    *n,
                )
            }),
        );
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Replaces every series of `family` with `values` (a status with no rows left disappears).
fn set_all<L>(family: &Family<L, Gauge>, values: impl Iterator<Item = (L, i64)>)
where
    L: Clone + std::hash::Hash + Eq,
{
    family.clear();
    for (labels, n) in values {
        family.get_or_create(&labels).set(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Ledger<'static> {
        Ledger {
            deliveries: &[],
            failures: &[],
            queue_depth: 0,
            send_rate: 0.0,
            consent_events: &[],
            subscribers: &[],
            reports: &[],
        }
    }

    #[tokio::test]
    async fn requests_and_latency_render_in_openmetrics_text() {
        let m = Metrics::default();
        let post = axum::http::Method::POST;
        m.record("/subscriptions", &post, 303, Duration::from_millis(7));
        m.record("/subscriptions", &post, 303, Duration::from_millis(300));
        let out = m.encode(&empty()).await;
        assert!(out.contains("newsletter_http_requests_total{route=\"/subscriptions\",method=\"POST\",status=\"303\"} 2"), "{out}");
        assert!(out.contains("newsletter_http_request_duration_seconds_bucket{le=\"0.01\",route=\"/subscriptions\"} 1"), "{out}");
        assert!(out.contains("newsletter_http_request_duration_seconds_bucket{le=\"0.5\",route=\"/subscriptions\"} 2"), "{out}");
        assert!(out.contains(
            "newsletter_http_request_duration_seconds_count{route=\"/subscriptions\"} 2"
        ));
        assert!(out.ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn made_up_methods_share_one_series() {
        let m = Metrics::default();
        for i in 0..500 {
            let method = axum::http::Method::from_bytes(format!("M{i}").as_bytes()).unwrap();
            m.record("unmatched", &method, 405, Duration::from_millis(1));
        }
        let out = m.encode(&empty()).await;
        assert!(out.contains("newsletter_http_requests_total{route=\"unmatched\",method=\"OTHER\",status=\"405\"} 500"), "{out}");
        assert!(!out.contains("M17"));
    }

    #[tokio::test]
    async fn a_status_with_no_rows_left_disappears_from_the_gauges() {
        let m = Metrics::default();
        let pending = [("pending".to_owned(), 3)];
        let ledger = Ledger {
            subscribers: &pending,
            ..empty()
        };
        assert!(m
            .encode(&ledger)
            .await
            .contains("newsletter_subscribers{status=\"pending\"} 3"));
        assert!(!m.encode(&empty()).await.contains("status=\"pending\""));
    }
}
