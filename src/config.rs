//! Typed settings. The only module that reads the environment.
//!
//! Layers: `config/default.toml` (compiled in), `config/local.toml`, `--config PATH`,
//! `DATABASE_URL` (for `database.url`), then `NEWSLETTER__SECTION__KEY` variables (so
//! `NEWSLETTER__DATABASE__URL` wins over `DATABASE_URL`: the variables are applied in name
//! order, and `D` sorts before `N`). Every key must exist in the
//! default file; a value of the wrong type or an unknown key stops the start with its name.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use toml::{Table, Value};

const DEFAULT_TOML: &str = include_str!("../config/default.toml");
const ENV_PREFIX: &str = "NEWSLETTER__";

/// A configuration error that names the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {message}")]
    File { path: String, message: String },
    #[error("configuration key `{key}`: {message}")]
    Key { key: String, message: String },
}

fn key_error(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// A string that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Checks `database.url` is a PostgreSQL URL (`postgres://` or `postgresql://`, any case; a
/// `mysql://` or `sqlite:` URL would otherwise fail later with a driver error). The error
/// never repeats the URL: it may hold a password.
fn database_url(raw: &str) -> Result<String, String> {
    let url = raw.trim();
    if url.is_empty() {
        return Err("must not be empty".into());
    }
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("postgres" | "postgresql") => Ok(url.to_owned()),
        Some(other)
            if other.len() <= 20
                && other
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Err(format!(
                "must be a PostgreSQL URL (postgres://user@host:5432/database), not {other}://"
            ))
        }
        _ => Err("must be a PostgreSQL URL such as postgres://user@host:5432/database".into()),
    }
}

/// The public URL of the service, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// Parses `server.base_url`: `http` or `https` (any case), a host, an optional port, and
    /// nothing else. The service answers at the root of its host, so a path (a prefix the
    /// proxy strips would break every page's links), a user name or password, a query and a
    /// fragment are refused, each by name. Scheme and host are kept in lower case, an
    /// international host in its A-label form, and a default port dropped (WHATWG URL rules,
    /// the `url` crate).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        let url = url::Url::parse(trimmed).map_err(|e| {
            format!("must be an absolute URL such as https://news.example.org ({e})")
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must start with http:// or https://".into());
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("must name a host")?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry a user name or password".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must not carry a query or a fragment".into());
        }
        if !matches!(url.path(), "" | "/") {
            return Err(format!(
                "must not carry a path ({}): the service answers at the root of its host; \
                 give it a host name of its own",
                url.path()
            ));
        }
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        Ok(Self(format!("{}://{host}{port}", url.scheme())))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// `base/path`, where `path` starts with `/`.
    pub fn join(&self, path: &str) -> String {
        format!("{}{}", self.0, path)
    }
    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
    /// The origin (RFC 6454): scheme, host and port, as browsers send it in `Origin`.
    pub fn origin(&self) -> &str {
        let after_scheme = self.0.find("://").map_or(0, |i| i + 3);
        self.0[after_scheme..]
            .find('/')
            .map_or(self.0.as_str(), |i| &self.0[..after_scheme + i])
    }
    /// Whether the host is this machine (`localhost`, 127.0.0.0/8, `::1`): a development set-up.
    pub fn is_loopback(&self) -> bool {
        let host = self.host().trim_matches(['[', ']']);
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
    /// The host part, used for Message-IDs and List-Id.
    pub fn host(&self) -> &str {
        let rest = self.0.split_once("://").map_or(self.0.as_str(), |(_, r)| r);
        let host_port = rest.split('/').next().unwrap_or(rest);
        host_port
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(host_port, |(host, _)| host)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub smtp: SmtpSettings,
    pub mail: MailSettings,
    pub security: SecuritySettings,
    pub signup: SignupSettings,
    pub worker: WorkerSettings,
    pub sending: SendingSettings,
    pub bounce: BounceSettings,
    pub inbound: InboundSettings,
    pub webhooks: WebhookSettings,
    pub preferences: PreferenceSettings,
    pub links: LinkSettings,
    pub admin: AdminSettings,
    pub feeds: FeedSettings,
    pub engagement: EngagementSettings,
    pub hygiene: HygieneSettings,
    /// Single sign-on through an OpenID Provider (`[oidc]`); `None` when not enabled.
    pub oidc: Option<OidcSettings>,
    /// Bearer token for /metrics; None: loopback clients only.
    pub metrics_token: Option<Secret>,
    pub templates: TemplateSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub base_url: BaseUrl,
    pub trust_forwarded_for: bool,
    pub max_body_bytes: usize,
    /// Leading bits of an IPv6 address that per-IP limits key on (1 to 128).
    pub ipv6_limit_prefix: u8,
    /// Time to send a request's whole header, from the connection's start or its last answer.
    pub header_read_timeout: Duration,
    /// Time to send a request's whole body.
    pub body_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// The organisation's time zone (`server.time_zone`): the archive's dates and slugs, and
    /// the zone staff schedule in by default.
    pub time_zone: chrono_tz::Tz,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: Secret,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// `None`: write `.eml` files to `outbox_dir`.
    pub url: Option<Secret>,
    pub outbox_dir: PathBuf,
    pub timeout: Duration,
    pub pool_size: u32,
    /// The name we greet the relay with (EHLO): a domain name or an IP address.
    pub helo_name: String,
}

#[derive(Debug, Clone)]
pub struct MailSettings {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    pub postal_address: String,
    pub dkim: Option<DkimSettings>,
}

#[derive(Debug, Clone)]
pub struct DkimSettings {
    /// `d=`, lower case.
    pub domain: String,
    /// One signature per key: the main one, then the Ed25519 one of dual signing.
    pub keys: Vec<DkimKey>,
}

#[derive(Debug, Clone)]
pub struct DkimKey {
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    pub private_key: Secret,
    /// The configuration key naming the key file, for error messages.
    pub file_key: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimAlgorithm {
    Rsa,
    Ed25519,
}

impl std::fmt::Display for DkimAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rsa => "rsa",
            Self::Ed25519 => "ed25519",
        })
    }
}

#[derive(Debug, Clone)]
pub struct SecuritySettings {
    pub secret_key: Secret,
}

#[derive(Debug, Clone)]
pub struct SignupSettings {
    /// A valid sign-up is answered no sooner than this after it arrived.
    pub min_answer: Duration,
    pub confirm_ttl: Duration,
    pub per_ip_per_minute: u32,
    pub resend_after: Duration,
    pub consent_text: String,
    pub consent_version: String,
    pub purge_unconfirmed_after: Duration,
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub poll_interval: Duration,
    pub batch_size: u32,
    pub lease: Duration,
    /// Delivery rows of an update written per statement.
    pub recipient_chunk: u32,
    /// Time between two runs of the housekeeping in one worker.
    pub housekeeping: Duration,
    /// An import job without progress for this long is taken over by another web process
    /// (its own stopped); web processes look for such jobs every half of it.
    pub import_lease: Duration,
    /// How long the refused rows of a finished import are kept (then only the counts).
    pub import_refused_kept: Duration,
}

#[derive(Debug, Clone)]
pub struct SendingSettings {
    /// Mails per second across all workers; `None`: no limit.
    pub rate_per_second: Option<u32>,
    pub burst: u32,
    /// Mails per second per recipient domain (lower-case), across all workers.
    pub domain_limits: BTreeMap<String, u32>,
    pub concurrency: u32,
    pub breaker: BreakerSettings,
    pub backoff: Vec<Duration>,
    pub give_up_after: Duration,
    pub stale_after: Duration,
    /// Two-person rule: updates to more than this many recipients wait for a second admin.
    /// `None`: no approval needed.
    pub approval_threshold: Option<u64>,
    /// Test mails per member of staff or API token in an hour.
    pub test_mails_per_hour: u32,
}

#[derive(Debug, Clone)]
pub struct FeedSettings {
    pub poll_every: Duration,
    pub timeout: Duration,
    pub max_bytes: u64,
    pub max_redirects: usize,
    pub allow_private_addresses: bool,
}

/// What the service learns from readers (`[engagement]`): aggregates only, never who read what.
#[derive(Debug, Clone)]
pub struct EngagementSettings {
    /// Each link in an update's body goes out as `/l/{code}` (one code per update and link,
    /// the same for every recipient), which counts the click per link and day and redirects.
    pub count_clicks: bool,
    /// `engagement.remember_last_activity`: a click on an update's counted link (which then
    /// carries the reader's signed activity token), a preferences-page visit or a confirmation
    /// sets one date on the subscriber, `last_active_on`; no per-link history is kept.
    pub remember_last_activity: bool,
}

/// List hygiene (`[hygiene]`): who has been inactive long enough is asked once whether they
/// still want the updates, and lapses (not mailed, not suppressed) without an answer.
#[derive(Debug, Clone)]
pub struct HygieneSettings {
    /// Nothing happens while false. Needs `engagement.remember_last_activity`.
    pub enabled: bool,
    /// Days without activity (or, never active, since confirming) before the question.
    pub inactive_days: u32,
    /// Updates sent to them since then, at least, before the question.
    pub min_updates: u32,
    /// Days to answer before they lapse.
    pub grace_days: u32,
}

#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub session_idle: Duration,
    pub login_failures_per_account: u32,
    pub login_failures_per_ip: u32,
    pub login_window: Duration,
    /// `admin.max_concurrent_logins`: password hashes a process computes at once for logins.
    pub max_concurrent_logins: usize,
    /// `admin.require_second_factor`: who must give a second factor to use the staff area.
    pub require_second_factor: SecondFactorRule,
}

/// Who must sign in with a second factor (`admin.require_second_factor`). A member who must
/// and has none is sent to enrolment after the password, and can do nothing else until done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactorRule {
    /// Nobody must (a member who enrolled still gives theirs).
    None,
    /// Admins must.
    Admin,
    /// Every member must.
    All,
}

impl SecondFactorRule {
    fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "none" => Ok(Self::None),
            "admin" => Ok(Self::Admin),
            "all" => Ok(Self::All),
            other => Err(format!("{other:?} is not one of none, admin, all")),
        }
    }

    /// Whether a member of `role` must give a second factor.
    pub fn applies_to(self, role: crate::domain::StaffRole) -> bool {
        match self {
            Self::None => false,
            Self::Admin => role == crate::domain::StaffRole::Admin,
            Self::All => true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BreakerSettings {
    pub window: u32,
    pub percent: u32,
    pub min_sends: u32,
}

#[derive(Debug, Clone)]
pub struct LinkSettings {
    pub per_ip_per_minute: u32,
}

#[derive(Debug, Clone)]
pub struct PreferenceSettings {
    /// (slug, label) of each topic, in the configured order.
    pub topics: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct BounceSettings {
    pub hard_limit: u32,
    pub soft_limit: u32,
    pub soft_window: Duration,
    /// Lower-case domain of VERP envelope senders; empty: VERP off.
    pub return_path_domain: String,
    /// Bytes of a report's raw text kept.
    pub max_report_bytes: usize,
    /// `sending.complaint_percent`: complaints per 100 delivered mails of an update above
    /// which it is paused (kept here, beside the other report settings).
    pub complaint_percent: f64,
    /// The bounce mailbox; None: no polling.
    pub imap: Option<ImapSettings>,
}

#[derive(Debug, Clone)]
pub struct ImapSettings {
    pub host: String,
    pub port: u16,
    /// `imaps://`: TLS from the first byte.
    pub tls: bool,
    pub user: String,
    pub password: Secret,
    pub folder: String,
    pub processed_folder: Option<String>,
    pub poll_interval: Duration,
}

/// Providers' webhook credentials; None: that provider's webhook is off.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The PEM text of the SNS signing certificate (read from `webhooks.ses_certificate_file`).
    pub ses_certificate_pem: Option<String>,
    /// The only SNS topic accepted.
    pub ses_topic_arn: Option<String>,
    /// (user, password)
    pub postmark: Option<(String, Secret)>,
    pub sendgrid_public_key: Option<String>,
    pub mailgun_signing_key: Option<Secret>,
    /// `webhooks.max_age_seconds`: how far a signed call's time may be from ours, either way.
    pub max_age: Duration,
}

#[derive(Debug, Clone)]
pub struct InboundSettings {
    /// None: no inbound SMTP listener.
    pub bind: Option<std::net::SocketAddr>,
    /// Lower-case; None: only VERP addresses are accepted.
    pub complaints_address: Option<String>,
    pub max_message_bytes: usize,
    pub max_sessions: usize,
    pub per_ip_per_minute: u32,
    pub timeout: Duration,
    /// Sessions one client (an IPv6 client: its network) may hold open at once.
    pub max_sessions_per_ip: usize,
    /// How long a session may last in all, whatever the client sends.
    pub session: Duration,
    /// Messages (reports) one client (an IPv6 client: its network) may hand in per minute.
    pub reports_per_ip_per_minute: u32,
}

#[derive(Debug, Clone)]
pub struct TemplateSettings {
    /// `templates.dir`: a folder whose files override the shipped (compiled-in) templates of
    /// the same path (`email/<name>/…`, `web/…`, `admin/…`); `None` (empty) uses the shipped.
    pub dir: Option<PathBuf>,
    /// `templates.max_output_bytes`: bytes one part of a mail template (or a digest intro) may
    /// render to; more stops the rendering with an error.
    pub max_output_bytes: usize,
    /// `templates.max_render_ms`: CPU time one rendering of a part may take.
    pub max_render: Duration,
}

impl TemplateSettings {
    /// The templates to load: the shipped ones, overlaid by `dir` when set.
    pub fn files(&self) -> crate::template_files::TemplateFiles {
        crate::template_files::TemplateFiles::with_override(self.dir.as_deref())
    }
}

/// `[oidc]`, once enabled: every key checked.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer URL as given (its discovery document is read from it).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// The ID token claim holding the e-mail address.
    pub email_claim: String,
    /// Lower-case A-label domains; empty: any.
    pub allowed_domains: Vec<String>,
    /// The role of a member made at their first sign-in; `None`: existing members only.
    pub default_role: Option<crate::domain::StaffRole>,
    pub button_label: String,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

impl Settings {
    /// Loads every layer from the process environment and the working directory.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut table = default_table();
        let local = Path::new("config/local.toml");
        if local.exists() {
            merge_file(&mut table, local)?;
        }
        if let Some(path) = config_file {
            merge_file(&mut table, path)?;
        }
        let vars: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) || k == "DATABASE_URL")
            .collect();
        merge_env(&mut table, &vars)?;
        Self::from_table(&table)
    }

    /// Settings from the defaults plus explicit `section.key` overrides (used by tests and tools).
    pub fn from_overrides<'a>(
        overrides: impl IntoIterator<Item = (&'a str, Value)>,
    ) -> Result<Self, ConfigError> {
        let mut table = default_table();
        for (key, value) in overrides {
            set_key(&mut table, key, value)?;
        }
        Self::from_table(&table)
    }

    fn from_table(t: &Table) -> Result<Self, ConfigError> {
        let r = Reader(t);
        let smtp_url = r.string("smtp.url")?;
        let reply_to = r.string("mail.reply_to")?;
        let secret_key = r.string("security.secret_key")?;
        if secret_key.chars().count() < 32 {
            return Err(key_error(
                "security.secret_key",
                "must be set to at least 32 characters (e.g. NEWSLETTER__SECURITY__SECRET_KEY=$(openssl rand -hex 32))",
            ));
        }
        let settings = Settings {
            server: ServerSettings {
                bind: r.parsed("server.bind")?,
                base_url: r.with("server.base_url", |s| BaseUrl::parse(&s))?,
                trust_forwarded_for: r.bool("server.trust_forwarded_for")?,
                max_body_bytes: r.positive("server.max_body_bytes")? as usize,
                ipv6_limit_prefix: match r.positive("server.ipv6_limit_prefix")? {
                    n @ 1..=128 => n as u8,
                    _ => {
                        return Err(key_error(
                            "server.ipv6_limit_prefix",
                            "expected a prefix length from 1 to 128",
                        ))
                    }
                },
                header_read_timeout: Duration::from_secs(
                    r.positive("server.header_read_timeout_seconds")?,
                ),
                body_read_timeout: Duration::from_secs(
                    r.positive("server.body_read_timeout_seconds")?,
                ),
                max_connections: r.positive("server.max_connections")? as usize,
                time_zone: r.with("server.time_zone", |s| {
                    s.parse::<chrono_tz::Tz>().map_err(|_| {
                        format!("{s:?} is not an IANA time zone such as America/New_York")
                    })
                })?,
            },
            database: DatabaseSettings {
                url: r.with("database.url", |s| database_url(&s).map(Secret::new))?,
                max_connections: r.positive("database.max_connections")? as u32,
                acquire_timeout: Duration::from_secs(
                    r.positive("database.acquire_timeout_seconds")?,
                ),
            },
            smtp: SmtpSettings {
                url: (!smtp_url.trim().is_empty()).then(|| Secret::new(smtp_url.trim())),
                outbox_dir: PathBuf::from(r.non_empty("smtp.outbox_dir")?),
                timeout: Duration::from_secs(r.positive("smtp.timeout_seconds")?),
                pool_size: r.positive("smtp.pool_size")? as u32,
                helo_name: r.helo_name()?,
            },
            mail: MailSettings {
                from: r.parsed("mail.from")?,
                reply_to: if reply_to.trim().is_empty() {
                    None
                } else {
                    Some(r.parsed("mail.reply_to")?)
                },
                postal_address: r.string("mail.postal_address")?.trim().to_owned(),
                dkim: r.dkim()?,
            },
            security: SecuritySettings {
                secret_key: Secret::new(secret_key),
            },
            signup: SignupSettings {
                confirm_ttl: hours(r.positive("signup.confirm_ttl_hours")?),
                per_ip_per_minute: r.positive("signup.per_ip_per_minute")? as u32,
                resend_after: Duration::from_secs(60 * r.positive("signup.resend_after_minutes")?),
                min_answer: Duration::from_millis(r.non_negative("signup.min_answer_ms")?),
                consent_text: r.non_empty("signup.consent_text")?,
                consent_version: r.non_empty("signup.consent_version")?,
                purge_unconfirmed_after: hours(24 * r.positive("signup.purge_unconfirmed_days")?),
            },
            worker: WorkerSettings {
                poll_interval: Duration::from_millis(r.positive("worker.poll_interval_ms")?),
                batch_size: r.positive("worker.batch_size")? as u32,
                lease: Duration::from_secs(r.positive("worker.lease_seconds")?),
                recipient_chunk: r.positive("worker.recipient_chunk")?.min(1_000_000) as u32,
                housekeeping: Duration::from_secs(r.positive("worker.housekeeping_seconds")?),
                import_lease: Duration::from_secs(r.positive("worker.import_lease_seconds")?),
                import_refused_kept: Duration::from_secs(
                    r.positive("worker.import_refused_days")?.min(36_500) * 86_400,
                ),
            },
            sending: SendingSettings {
                rate_per_second: Some(r.non_negative("sending.rate_per_second")? as u32)
                    .filter(|r| *r > 0),
                burst: r.non_negative("sending.burst")? as u32,
                domain_limits: r.domain_limits("sending.domain_limits")?,
                concurrency: r.positive("sending.concurrency")? as u32,
                breaker: BreakerSettings {
                    window: r.positive("sending.breaker_window")? as u32,
                    percent: r.positive("sending.breaker_percent")?.min(100) as u32,
                    min_sends: r.positive("sending.breaker_min_sends")? as u32,
                },

                backoff: r.backoff("sending.backoff_seconds")?,
                give_up_after: hours(r.positive("sending.give_up_after_hours")?),
                stale_after: hours(r.positive("sending.stale_after_hours")?),
                approval_threshold: r
                    .bool("sending.require_approval")?
                    .then(|| r.non_negative("sending.approval_threshold"))
                    .transpose()?,
                test_mails_per_hour: r.positive("sending.test_mails_per_hour")?.min(10_000) as u32,
            },
            admin: AdminSettings {
                session_idle: Duration::from_secs(60 * r.positive("admin.session_idle_minutes")?),
                login_failures_per_account: r.positive("admin.login_failures_per_account")? as u32,
                login_failures_per_ip: r.positive("admin.login_failures_per_ip")? as u32,
                login_window: Duration::from_secs(60 * r.positive("admin.login_window_minutes")?),
                max_concurrent_logins: r.positive("admin.max_concurrent_logins")? as usize,
                require_second_factor: r.with("admin.require_second_factor", |raw| {
                    SecondFactorRule::parse(&raw)
                })?,
            },
            feeds: FeedSettings {
                poll_every: Duration::from_secs(60 * r.positive("feeds.poll_minutes")?),
                timeout: Duration::from_secs(r.positive("feeds.timeout_seconds")?),
                max_bytes: r.positive("feeds.max_bytes")?,
                max_redirects: r.non_negative("feeds.max_redirects")?.min(20) as usize,
                allow_private_addresses: r.bool("feeds.allow_private_addresses")?,
            },
            engagement: EngagementSettings {
                count_clicks: r.bool("engagement.count_clicks")?,
                remember_last_activity: r.bool("engagement.remember_last_activity")?,
            },
            hygiene: r.hygiene()?,
            oidc: r.oidc()?,
            metrics_token: Some(r.string("metrics.token")?)
                .filter(|t| !t.trim().is_empty())
                .map(|t| Secret::new(t.trim())),
            links: LinkSettings {
                per_ip_per_minute: r.positive("links.per_ip_per_minute")? as u32,
            },
            preferences: PreferenceSettings {
                topics: r.topics("preferences.topics")?,
            },
            bounce: BounceSettings {
                hard_limit: r.positive("bounce.hard_limit")? as u32,
                soft_limit: r.positive("bounce.soft_limit")? as u32,
                soft_window: hours(24 * r.positive("bounce.soft_window_days")?),
                return_path_domain: r.with("bounce.return_path_domain", |d| {
                    let d = d.trim().to_ascii_lowercase();
                    let ok = d.is_empty()
                        || (d.contains('.')
                            && d.split('.').all(|l| {
                                !l.is_empty()
                                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                            }));
                    ok.then_some(d)
                        .ok_or_else(|| "expected a domain like bounces.example.org".to_owned())
                })?,
                max_report_bytes: r.positive("bounce.max_report_bytes")? as usize,
                imap: r.imap()?,
                complaint_percent: r.with_value("sending.complaint_percent", |v| {
                    v.as_float()
                        .or_else(|| v.as_integer().map(|i| i as f64))
                        .filter(|p| (0.0..=100.0).contains(p))
                        .ok_or("expected a percentage from 0 to 100, e.g. 0.3")
                })?,
            },
            webhooks: r.webhooks()?,
            inbound: InboundSettings {
                bind: Some(r.string("inbound.bind")?)
                    .filter(|b| !b.trim().is_empty())
                    .map(|_| r.parsed("inbound.bind"))
                    .transpose()?,
                complaints_address: r.with("inbound.complaints_address", |a| {
                    let a = a.trim().to_ascii_lowercase();
                    match a.split_once('@') {
                        _ if a.is_empty() => Ok(None),
                        Some((l, d)) if !l.is_empty() && d.contains('.') => Ok(Some(a)),
                        _ => Err("expected an address like abuse-reports@example.org".to_owned()),
                    }
                })?,
                max_message_bytes: r.positive("inbound.max_message_bytes")? as usize,
                max_sessions: r.positive("inbound.max_sessions")? as usize,
                per_ip_per_minute: r.positive("inbound.per_ip_per_minute")? as u32,
                timeout: Duration::from_secs(r.positive("inbound.timeout_seconds")?),
                max_sessions_per_ip: r.positive("inbound.max_sessions_per_ip")? as usize,
                session: Duration::from_secs(r.positive("inbound.session_seconds")?),
                reports_per_ip_per_minute: r.positive("inbound.reports_per_ip_per_minute")? as u32,
            },
            templates: TemplateSettings {
                dir: Some(r.string("templates.dir")?)
                    .filter(|d| !d.trim().is_empty())
                    .map(PathBuf::from),
                max_output_bytes: r.positive("templates.max_output_bytes")? as usize,
                max_render: Duration::from_millis(r.positive("templates.max_render_ms")?),
            },
            log: LogSettings {
                format: r.with("log.format", |s| match s.as_str() {
                    "text" => Ok(LogFormat::Text),
                    "json" => Ok(LogFormat::Json),
                    _ => Err("must be \"text\" or \"json\"".to_owned()),
                })?,
                level: r.non_empty("log.level")?,
            },
        };
        if settings.smtp.timeout >= settings.worker.lease {
            return Err(key_error(
                "smtp.timeout_seconds",
                "must be shorter than worker.lease_seconds",
            ));
        }
        Ok(settings)
    }
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

fn default_table() -> Table {
    DEFAULT_TOML
        .parse::<Table>()
        .expect("config/default.toml is valid TOML (checked by a unit test)")
}

fn merge_file(table: &mut Table, path: &Path) -> Result<(), ConfigError> {
    let file_error = |message: String| ConfigError::File {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let layer: Table = text
        .parse()
        .map_err(|e: toml::de::Error| file_error(e.to_string()))?;
    merge_table(table, "", layer)
}

fn merge_env(table: &mut Table, vars: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (name, raw) in vars {
        let key = if name == "DATABASE_URL" {
            "database.url".to_owned()
        } else {
            let rest = &name[ENV_PREFIX.len()..];
            if !rest.contains("__") {
                return Err(key_error(name, "expected NEWSLETTER__SECTION__KEY"));
            }
            rest.to_lowercase().replace("__", ".")
        };
        let current = lookup(table, &key).ok_or_else(|| key_error(&key, "unknown key"))?;
        let value =
            env_value(current, raw).map_err(|m| key_error(&key, format!("{m} (from {name})")))?;
        set_key(table, &key, value)?;
    }
    Ok(())
}

/// Reads an environment string as the type the key has in the defaults.
fn env_value(current: &Value, raw: &str) -> Result<Value, String> {
    match current {
        Value::String(_) => Ok(Value::String(raw.to_owned())),
        Value::Integer(_) => raw
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("expected an integer, got {raw:?}")),
        Value::Boolean(_) => match raw.trim() {
            "true" | "1" => Ok(Value::Boolean(true)),
            "false" | "0" => Ok(Value::Boolean(false)),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
        _ => format!("v = {raw}")
            .parse::<Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .ok_or_else(|| format!("expected a TOML value, got {raw:?}")),
    }
}

fn lookup<'a>(table: &'a Table, key: &str) -> Option<&'a Value> {
    let mut segments = key.split('.');
    let mut value = table.get(segments.next()?)?;
    for segment in segments {
        value = value.as_table()?.get(segment)?;
    }
    Some(value)
}

/// A table in the defaults that has keys is a section (recursed into when merging); an empty
/// table, such as `sending.domain_limits`, is a value.
fn is_section(value: &Value) -> bool {
    value.as_table().is_some_and(|t| !t.is_empty())
}

fn set_key(table: &mut Table, key: &str, value: Value) -> Result<(), ConfigError> {
    let current = lookup(table, key).ok_or_else(|| key_error(key, "unknown key"))?;
    if is_section(current) {
        return Err(key_error(key, "is a section: set its keys one by one"));
    }
    if current.type_str() != value.type_str() {
        return Err(key_error(
            key,
            format!(
                "expected a {}, got a {}",
                current.type_str(),
                value.type_str()
            ),
        ));
    }
    let (parent, name) = key
        .rsplit_once('.')
        .ok_or_else(|| key_error(key, "expected section.key"))?;
    let mut target = &mut *table;
    for segment in parent.split('.') {
        target = target
            .get_mut(segment)
            .and_then(Value::as_table_mut)
            .expect("lookup checked the path");
    }
    target.insert(name.to_owned(), value);
    Ok(())
}

/// Applies every key of `layer` under `prefix`, recursing into sections.
fn merge_table(table: &mut Table, prefix: &str, layer: Table) -> Result<(), ConfigError> {
    for (name, value) in layer {
        let key = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}.{name}")
        };
        let section = lookup(table, &key).is_some_and(is_section);
        match value {
            Value::Table(inner) if section => merge_table(table, &key, inner)?,
            value if prefix.is_empty() => {
                return Err(key_error(
                    &key,
                    format!("expected a [section] table, got a {}", value.type_str()),
                ))
            }
            value => set_key(table, &key, value)?,
        }
    }
    Ok(())
}

/// Typed access to the merged table; every error names its key.
struct Reader<'a>(&'a Table);

impl Reader<'_> {
    fn value(&self, key: &str) -> Result<&Value, ConfigError> {
        lookup(self.0, key).ok_or_else(|| key_error(key, "missing"))
    }
    fn string(&self, key: &str) -> Result<String, ConfigError> {
        self.value(key)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| key_error(key, "expected a string"))
    }
    fn non_empty(&self, key: &str) -> Result<String, ConfigError> {
        let s = self.string(key)?;
        if s.trim().is_empty() {
            return Err(key_error(key, "must not be empty"));
        }
        Ok(s)
    }
    fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        self.value(key)?
            .as_bool()
            .ok_or_else(|| key_error(key, "expected true or false"))
    }
    fn positive(&self, key: &str) -> Result<u64, ConfigError> {
        match self.value(key)?.as_integer() {
            Some(n) if n > 0 => Ok(n as u64),
            _ => Err(key_error(key, "expected a positive integer")),
        }
    }
    /// `smtp.helo_name`, or else the host of `server.base_url`.
    fn helo_name(&self) -> Result<String, ConfigError> {
        let name = self.string("smtp.helo_name")?.trim().to_ascii_lowercase();
        if name.is_empty() {
            return self.with("server.base_url", |s| {
                BaseUrl::parse(&s).map(|u| u.host().to_owned())
            });
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if name.parse::<std::net::IpAddr>().is_ok() || name.split('.').all(label_ok) {
            Ok(name)
        } else {
            Err(key_error(
                "smtp.helo_name",
                "must be a domain name (e.g. news.example.org) or an IP address",
            ))
        }
    }
    fn dkim(&self) -> Result<Option<DkimSettings>, ConfigError> {
        let selector = self.string("mail.dkim.selector")?.trim().to_owned();
        let domain = self.string("mail.dkim.domain")?.trim().to_lowercase();
        let key_file = self.string("mail.dkim.private_key_file")?.trim().to_owned();
        let algorithm = self.with("mail.dkim.algorithm", |a| match a.as_str() {
            "rsa" => Ok(DkimAlgorithm::Rsa),
            "ed25519" => Ok(DkimAlgorithm::Ed25519),
            _ => Err("must be \"rsa\" or \"ed25519\"".to_owned()),
        })?;
        match (selector.is_empty(), domain.is_empty(), key_file.is_empty()) {
            (true, true, true) => return Ok(None),
            (false, false, false) => {}
            _ => {
                return Err(key_error(
                    "mail.dkim",
                    "set all of selector, domain and private_key_file, or none",
                ))
            }
        }
        let read = |key: &str, file: &str| {
            std::fs::read_to_string(file)
                .map(|k| Secret::new(k.trim()))
                .map_err(|e| key_error(key, format!("{file}: {e}")))
        };
        let mut keys = vec![DkimKey {
            selector,
            algorithm,
            private_key: read("mail.dkim.private_key_file", &key_file)?,
            file_key: "mail.dkim.private_key_file",
        }];
        let ed_selector = self.string("mail.dkim.ed25519_selector")?.trim().to_owned();
        let ed_file = self
            .string("mail.dkim.ed25519_private_key_file")?
            .trim()
            .to_owned();
        match (ed_selector.is_empty(), ed_file.is_empty()) {
            (true, true) => {}
            (false, false) if algorithm == DkimAlgorithm::Rsa => keys.push(DkimKey {
                selector: ed_selector,
                algorithm: DkimAlgorithm::Ed25519,
                private_key: read("mail.dkim.ed25519_private_key_file", &ed_file)?,
                file_key: "mail.dkim.ed25519_private_key_file",
            }),
            (false, false) => {
                return Err(key_error(
                    "mail.dkim.ed25519_selector",
                    "a second, Ed25519 signature goes beside an RSA one: set mail.dkim.algorithm = \"rsa\"",
                ))
            }
            _ => {
                return Err(key_error(
                    "mail.dkim.ed25519_selector",
                    "set both ed25519_selector and ed25519_private_key_file, or neither",
                ))
            }
        }
        Ok(Some(DkimSettings { domain, keys }))
    }
    fn topics(&self, key: &str) -> Result<Vec<(String, String)>, ConfigError> {
        let items = self
            .value(key)?
            .as_array()
            .ok_or_else(|| key_error(key, "expected an array of \"slug: Label\" strings"))?;
        items
            .iter()
            .map(|item| {
                let (slug, label) = item
                    .as_str()
                    .and_then(|s| s.split_once(':'))
                    .ok_or_else(|| key_error(key, format!("{item:?}: expected \"slug: Label\"")))?;
                let slug = crate::domain::ListSlug::parse(slug)
                    .map_err(|e| key_error(key, e))?
                    .as_str()
                    .to_owned();
                Ok((slug, label.trim().to_owned()))
            })
            .collect()
    }
    fn non_negative(&self, key: &str) -> Result<u64, ConfigError> {
        match self.value(key)?.as_integer() {
            Some(n) if n >= 0 => Ok(n as u64),
            _ => Err(key_error(key, "expected an integer of 0 or more")),
        }
    }
    fn domain_limits(&self, key: &str) -> Result<BTreeMap<String, u32>, ConfigError> {
        let table = self
            .value(key)?
            .as_table()
            .ok_or_else(|| key_error(key, "expected a table like { \"gmail.com\" = 10 }"))?;
        table
            .iter()
            .map(|(domain, limit)| match limit.as_integer() {
                Some(n) if n > 0 && domain.contains('.') => Ok((domain.to_lowercase(), n as u32)),
                _ => Err(key_error(
                    key,
                    format!("{domain:?}: expected a domain and a positive integer"),
                )),
            })
            .collect()
    }
    fn with<T>(
        &self,
        key: &str,
        f: impl FnOnce(String) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        f(self.string(key)?).map_err(|m| key_error(key, m))
    }
    fn hygiene(&self) -> Result<HygieneSettings, ConfigError> {
        let days = |key: &str| -> Result<u32, ConfigError> {
            let n = self.positive(key)?;
            u32::try_from(n)
                .ok()
                .filter(|n| *n <= 3650)
                .ok_or_else(|| key_error(key, "must be at most 3650"))
        };
        let hygiene = HygieneSettings {
            enabled: self.bool("hygiene.enabled")?,
            inactive_days: days("hygiene.inactive_days")?,
            min_updates: days("hygiene.min_updates")?,
            grace_days: days("hygiene.grace_days")?,
        };
        if hygiene.enabled && !self.bool("engagement.remember_last_activity")? {
            return Err(key_error(
                "hygiene.enabled",
                "needs engagement.remember_last_activity = true: without a last activity nobody \
                 can be told inactive",
            ));
        }
        Ok(hygiene)
    }
    fn imap(&self) -> Result<Option<ImapSettings>, ConfigError> {
        let raw = self.string("bounce.imap_url")?;
        if raw.trim().is_empty() {
            return Ok(None);
        }
        let bad = |m: &str| key_error("bounce.imap_url", m.to_owned());
        let url = url::Url::parse(raw.trim())
            .map_err(|_| bad("expected imaps://user:password@host:993"))?;
        let tls = match url.scheme() {
            "imaps" => true,
            "imap" => false,
            _ => return Err(bad("expected an imaps:// (or imap://) URL")),
        };
        let host = url.host_str().ok_or_else(|| bad("no host"))?.to_owned();
        if !tls && !matches!(host.as_str(), "127.0.0.1" | "::1" | "[::1]" | "localhost") {
            return Err(bad(
                "imap:// (no TLS) only for a server on this machine: use imaps://",
            ));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| bad("the user and password must be UTF-8"))
        };
        let user = decode(url.username())?;
        let password = decode(url.password().unwrap_or(""))?;
        if user.is_empty() {
            return Err(bad("no user name"));
        }
        let folder = self.non_empty("bounce.imap_folder")?.trim().to_owned();
        let processed = self
            .string("bounce.imap_processed_folder")?
            .trim()
            .to_owned();
        Ok(Some(ImapSettings {
            port: url.port().unwrap_or(if tls { 993 } else { 143 }),
            host,
            tls,
            user,
            password: Secret::new(password),
            folder,
            processed_folder: (!processed.is_empty()).then_some(processed),
            poll_interval: Duration::from_secs(self.positive("bounce.imap_poll_seconds")?),
        }))
    }
    fn webhooks(&self) -> Result<WebhookSettings, ConfigError> {
        let set = |key: &str| -> Result<Option<String>, ConfigError> {
            Ok(Some(self.string(key)?.trim().to_owned()).filter(|v| !v.is_empty()))
        };
        let ses_certificate_pem = set("webhooks.ses_certificate_file")?
            .map(|path| {
                std::fs::read_to_string(&path).map_err(|e| {
                    key_error(
                        "webhooks.ses_certificate_file",
                        format!("reading {path}: {e}"),
                    )
                })
            })
            .transpose()?;
        let ses_topic_arn = set("webhooks.ses_topic_arn")?;
        if ses_certificate_pem.is_some() != ses_topic_arn.is_some() {
            return Err(key_error(
                "webhooks.ses_topic_arn",
                "set both webhooks.ses_certificate_file and webhooks.ses_topic_arn, or neither",
            ));
        }
        let postmark = match (
            set("webhooks.postmark_username")?,
            set("webhooks.postmark_password")?,
        ) {
            (Some(user), Some(password)) => Some((user, Secret::new(password))),
            (None, None) => None,
            _ => return Err(key_error(
                "webhooks.postmark_password",
                "set both webhooks.postmark_username and webhooks.postmark_password, or neither",
            )),
        };
        Ok(WebhookSettings {
            ses_certificate_pem,
            ses_topic_arn,
            postmark,
            sendgrid_public_key: set("webhooks.sendgrid_public_key")?,
            mailgun_signing_key: set("webhooks.mailgun_signing_key")?.map(Secret::new),
            max_age: Duration::from_secs(self.positive("webhooks.max_age_seconds")?),
        })
    }
    fn with_value<T>(
        &self,
        key: &str,
        f: impl FnOnce(&Value) -> Result<T, &'static str>,
    ) -> Result<T, ConfigError> {
        f(self.value(key)?).map_err(|m| key_error(key, m))
    }
    fn parsed<T: std::str::FromStr>(&self, key: &str) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.with(key, |s| s.trim().parse::<T>().map_err(|e| e.to_string()))
    }
    /// `[oidc]`: `None` unless `oidc.enabled`; then every key must make sense.
    fn oidc(&self) -> Result<Option<OidcSettings>, ConfigError> {
        if !self.bool("oidc.enabled")? {
            return Ok(None);
        }
        let issuer = self.with("oidc.issuer", |raw| {
            let raw = raw.trim();
            let url = url::Url::parse(raw).map_err(|_| {
                "expected the provider's issuer URL, e.g. https://accounts.google.com"
            })?;
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            match url.scheme() {
                "https" => {}
                "http" if loopback => {}
                "http" => {
                    return Err("must be https (http only for a provider on this machine)".into())
                }
                _ => return Err("expected an https:// URL".into()),
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err("an issuer URL has no query or fragment".into());
            }
            Ok(raw.to_owned())
        })?;
        let client_id = self.non_empty("oidc.client_id")?.trim().to_owned();
        let client_secret = Secret::new(self.non_empty("oidc.client_secret")?.trim());
        let email_claim = self.non_empty("oidc.email_claim")?.trim().to_owned();
        let key = "oidc.allowed_domains";
        let allowed_domains = self
            .value(key)?
            .as_array()
            .ok_or_else(|| key_error(key, "expected an array of domains, e.g. [\"example.org\"]"))?
            .iter()
            .map(|item| {
                let raw = item.as_str().ok_or_else(|| {
                    key_error(key, format!("{item:?}: expected a domain in quotes"))
                })?;
                // The domain as an address's domain is written once parsed (lower case,
                // A-label), so the comparison at sign-in is plain equality.
                let domain = raw.trim().trim_start_matches('@');
                crate::domain::EmailAddress::parse(&format!("postmaster@{domain}"))
                    .ok()
                    .filter(|_| !domain.contains('@'))
                    .map(|a| a.domain().to_owned())
                    .ok_or_else(|| {
                        key_error(key, format!("{raw:?} is not a domain such as example.org"))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let default_role = self.with("oidc.default_role", |role| match role.trim() {
            "" => Ok(None),
            role => crate::domain::StaffRole::parse(role)
                .map(Some)
                .map_err(|_| {
                    "must be \"\" (existing members only), \"editor\" or \"admin\"".into()
                }),
        })?;
        if default_role.is_some() && allowed_domains.is_empty() {
            return Err(key_error(
                "oidc.allowed_domains",
                "must list your domains when oidc.default_role is set: else anyone with an account at the provider gets a staff account here",
            ));
        }
        let button_label = self.non_empty("oidc.button_label")?.trim().to_owned();
        if button_label.chars().count() > 80 {
            return Err(key_error("oidc.button_label", "at most 80 characters"));
        }
        Ok(Some(OidcSettings {
            issuer,
            client_id,
            client_secret,
            email_claim,
            allowed_domains,
            default_role,
            button_label,
        }))
    }
    fn backoff(&self, key: &str) -> Result<Vec<Duration>, ConfigError> {
        let steps = self
            .value(key)?
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| key_error(key, "expected a non-empty array of seconds"))?;
        steps
            .iter()
            .map(|v| match v.as_integer() {
                Some(n) if n > 0 => Ok(Duration::from_secs(n as u64)),
                _ => Err(key_error(key, "every step must be a positive integer")),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn with_key() -> Vec<(&'static str, Value)> {
        vec![("security.secret_key", Value::String(KEY.into()))]
    }

    #[test]
    fn defaults_load_once_a_secret_key_is_given() {
        let s = Settings::from_overrides(with_key()).unwrap();
        assert_eq!(s.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.server.base_url.as_str(), "http://127.0.0.1:8080");
        assert_eq!(s.signup.confirm_ttl, Duration::from_secs(72 * 3600));
        assert_eq!(s.signup.per_ip_per_minute, 5);
        assert!(s.smtp.url.is_none());
    }

    #[test]
    fn the_staff_area_and_the_approval_rule_have_defaults_and_take_overrides() {
        let s = Settings::from_overrides(with_key()).unwrap();
        assert_eq!(s.admin.session_idle, Duration::from_secs(120 * 60));
        assert_eq!(s.sending.approval_threshold, None, "off by default");
        let mut o = with_key();
        o.push(("sending.require_approval", Value::Boolean(true)));
        o.push(("sending.approval_threshold", Value::Integer(500)));
        o.push(("admin.session_idle_minutes", Value::Integer(30)));
        let s = Settings::from_overrides(o).unwrap();
        assert_eq!(s.sending.approval_threshold, Some(500));
        assert_eq!(s.sending.test_mails_per_hour, 20);
        assert_eq!(s.server.time_zone, chrono_tz::America::New_York);
        assert_eq!(s.admin.session_idle, Duration::from_secs(30 * 60));
        let mut bad = with_key();
        bad.push(("admin.session_idle_minutes", Value::Integer(0)));
        let err = Settings::from_overrides(bad).unwrap_err().to_string();
        assert!(err.contains("admin.session_idle_minutes"), "{err}");
    }

    /// `[oidc]` enabled with a provider on this machine and `extra` keys.
    fn oidc(extra: &[(&'static str, Value)]) -> Result<Settings, ConfigError> {
        let mut o = with_key();
        o.extend([
            ("oidc.enabled", Value::Boolean(true)),
            ("oidc.issuer", Value::String("http://127.0.0.1:9000".into())),
            ("oidc.client_id", Value::String("newsletter".into())),
            ("oidc.client_secret", Value::String("s3cret".into())),
        ]);
        o.extend(extra.iter().cloned());
        Settings::from_overrides(o)
    }

    fn domains(list: &[&str]) -> Value {
        Value::Array(list.iter().map(|d| Value::String((*d).into())).collect())
    }

    #[test]
    fn single_sign_on_is_off_by_default_and_needs_nothing_then() {
        assert!(Settings::from_overrides(with_key()).unwrap().oidc.is_none());
    }

    #[test]
    fn single_sign_on_takes_its_keys_and_spells_domains_as_addresses_do() {
        let settings = oidc(&[
            (
                "oidc.allowed_domains",
                domains(&["Example.ORG", "bücher.example"]),
            ),
            ("oidc.default_role", Value::String("editor".into())),
        ])
        .unwrap();
        let oidc = settings.oidc.unwrap();
        assert_eq!(
            oidc.allowed_domains,
            ["example.org", "xn--bcher-kva.example"]
        );
        assert_eq!(oidc.default_role, Some(crate::domain::StaffRole::Editor));
        assert_eq!(oidc.email_claim, "email");
        assert_eq!(oidc.button_label, "Sign in with single sign-on");
        assert!(!format!("{oidc:?}").contains("s3cret"));
    }

    #[test]
    fn a_bad_single_sign_on_setting_names_its_key() {
        let text = |extra: &[(&'static str, Value)]| oidc(extra).unwrap_err().to_string();
        for (key, value, named) in [
            ("oidc.issuer", "", "oidc.issuer"),
            ("oidc.issuer", "http://idp.example.org", "oidc.issuer"),
            (
                "oidc.issuer",
                "https://idp.example.org/?tenant=1",
                "oidc.issuer",
            ),
            ("oidc.client_id", " ", "oidc.client_id"),
            ("oidc.client_secret", "", "oidc.client_secret"),
            ("oidc.email_claim", "", "oidc.email_claim"),
            ("oidc.default_role", "owner", "oidc.default_role"),
            ("oidc.button_label", "", "oidc.button_label"),
        ] {
            let err = text(&[(key, Value::String(value.into()))]);
            assert!(err.contains(named), "{key} = {value:?}: {err}");
        }
        for list in [&["not a domain"][..], &["ann@example.org"], &["localhost"]] {
            let err = text(&[("oidc.allowed_domains", domains(list))]);
            assert!(err.contains("oidc.allowed_domains"), "{list:?}: {err}");
        }
    }

    #[test]
    fn a_default_role_needs_allowed_domains() {
        let err = oidc(&[("oidc.default_role", Value::String("admin".into()))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("oidc.allowed_domains"), "{err}");
        assert!(oidc(&[]).unwrap().oidc.unwrap().allowed_domains.is_empty());
    }

    #[test]
    fn a_missing_secret_key_names_the_key() {
        let err = Settings::from_overrides([]).unwrap_err().to_string();
        assert!(err.contains("security.secret_key"), "{err}");
    }

    #[test]
    fn an_unknown_key_names_the_key() {
        let mut o = with_key();
        o.push(("server.bnid", Value::String("x".into())));
        let err = Settings::from_overrides(o).unwrap_err().to_string();
        assert!(
            err.contains("server.bnid") && err.contains("unknown"),
            "{err}"
        );
    }

    #[test]
    fn environment_values_take_the_type_of_the_key() {
        let mut t = default_table();
        let vars = BTreeMap::from([
            (
                "NEWSLETTER__SIGNUP__PER_IP_PER_MINUTE".to_owned(),
                "9".to_owned(),
            ),
            (
                "NEWSLETTER__SECURITY__SECRET_KEY".to_owned(),
                KEY.to_owned(),
            ),
            (
                "NEWSLETTER__SENDING__BACKOFF_SECONDS".to_owned(),
                "[1, 2]".to_owned(),
            ),
            ("DATABASE_URL".to_owned(), "postgres://x@h/db".to_owned()),
        ]);
        merge_env(&mut t, &vars).unwrap();
        let s = Settings::from_table(&t).unwrap();
        assert_eq!(s.signup.per_ip_per_minute, 9);
        assert_eq!(
            s.sending.backoff,
            vec![Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert_eq!(s.database.url.expose(), "postgres://x@h/db");
    }

    #[test]
    fn a_badly_typed_environment_value_names_key_and_variable() {
        let mut t = default_table();
        let vars = BTreeMap::from([(
            "NEWSLETTER__SIGNUP__PER_IP_PER_MINUTE".to_owned(),
            "lots".to_owned(),
        )]);
        let err = merge_env(&mut t, &vars).unwrap_err().to_string();
        assert!(err.contains("signup.per_ip_per_minute"), "{err}");
        assert!(
            err.contains("NEWSLETTER__SIGNUP__PER_IP_PER_MINUTE"),
            "{err}"
        );
    }

    #[test]
    fn invalid_values_name_their_key() {
        for (key, value) in [
            ("server.bind", Value::String("nowhere".into())),
            ("server.base_url", Value::String("ftp://x".into())),
            ("mail.from", Value::String("not an address".into())),
            ("log.format", Value::String("xml".into())),
            ("database.max_connections", Value::Integer(0)),
        ] {
            let mut o = with_key();
            o.push((key, value));
            let err = Settings::from_overrides(o).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn domain_limits_are_read_from_a_table_and_checked() {
        let mut o = with_key();
        o.push((
            "sending.domain_limits",
            "v = { \"Gmail.com\" = 10 }".parse::<Table>().unwrap()["v"].clone(),
        ));
        let s = Settings::from_overrides(o).unwrap();
        assert_eq!(
            s.sending.domain_limits,
            BTreeMap::from([("gmail.com".to_owned(), 10)])
        );
        let mut bad = with_key();
        bad.push((
            "sending.domain_limits",
            "v = { \"gmail.com\" = 0 }".parse::<Table>().unwrap()["v"].clone(),
        ));
        assert!(Settings::from_overrides(bad)
            .unwrap_err()
            .to_string()
            .contains("sending.domain_limits"));
    }

    #[test]
    fn dkim_needs_all_three_keys_or_none() {
        let mut o = with_key();
        o.push(("mail.dkim.selector", Value::String("news".into())));
        let err = Settings::from_overrides(o).unwrap_err().to_string();
        assert!(err.contains("mail.dkim"), "{err}");
        let mut missing = with_key();
        missing.push(("mail.dkim.selector", Value::String("news".into())));
        missing.push(("mail.dkim.domain", Value::String("example.org".into())));
        missing.push((
            "mail.dkim.private_key_file",
            Value::String("/nonexistent/key".into()),
        ));
        let err = Settings::from_overrides(missing).unwrap_err().to_string();
        assert!(err.contains("mail.dkim.private_key_file"), "{err}");
    }

    #[test]
    fn nested_keys_come_from_files_and_the_environment() {
        let mut t = default_table();
        merge_table(
            &mut t,
            "",
            "[mail.dkim]\nalgorithm = \"ed25519\"\n".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(
            lookup(&t, "mail.dkim.algorithm").unwrap().as_str(),
            Some("ed25519")
        );
        let vars = BTreeMap::from([(
            "NEWSLETTER__MAIL__DKIM__SELECTOR".to_owned(),
            "s1".to_owned(),
        )]);
        merge_env(&mut t, &vars).unwrap();
        assert_eq!(
            lookup(&t, "mail.dkim.selector").unwrap().as_str(),
            Some("s1")
        );
        let err = merge_table(&mut t, "", "[mail]\ndkim = 1\n".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("mail.dkim"), "{err}");
    }

    #[test]
    fn only_localhost_127_and_ipv6_loopback_hosts_are_loopback() {
        for local in [
            "http://localhost:8080",
            "http://127.0.0.1",
            "http://127.9.9.9:80/",
            "http://[::1]:8080",
        ] {
            assert!(BaseUrl::parse(local).unwrap().is_loopback(), "{local}");
        }
        for public in [
            "https://news.example.org",
            "http://128.0.0.1",
            "http://localhost.example.org",
            "http://[::2]",
        ] {
            assert!(!BaseUrl::parse(public).unwrap().is_loopback(), "{public}");
        }
    }

    #[test]
    fn base_url_refuses_a_path_credentials_a_query_and_other_schemes_by_name() {
        for (raw, named) in [
            ("https://example.org/newsletter", "path"),
            ("https://ana:pw@example.org", "user name or password"),
            ("https://example.org/?a=1", "query"),
            ("https://example.org/#top", "fragment"),
            ("ftp://example.org", "http:// or https://"),
            ("example.org", "absolute URL"),
            ("https://", "absolute URL"),
        ] {
            let refused = BaseUrl::parse(raw).unwrap_err();
            assert!(refused.contains(named), "{raw}: {refused}");
        }
    }

    #[test]
    fn base_url_takes_any_case_of_scheme_and_host_and_keeps_them_lower() {
        for (raw, kept) in [
            ("HTTPS://News.Example.ORG/", "https://news.example.org"),
            ("Http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("https://example.org:443", "https://example.org"),
            ("https://bücher.example", "https://xn--bcher-kva.example"),
            ("  https://[::1]:8080/ ", "https://[::1]:8080"),
        ] {
            assert_eq!(BaseUrl::parse(raw).unwrap().as_str(), kept, "{raw}");
        }
        assert!(BaseUrl::parse("HTTPS://x.example").unwrap().is_https());
    }

    #[test]
    fn database_url_must_be_postgresql_and_the_error_never_shows_the_password() {
        for ok in [
            "postgres://a@h/db",
            "postgresql://a:pw@h:5432/db",
            "POSTGRES://h/db",
        ] {
            assert!(database_url(ok).is_ok(), "{ok}");
        }
        let refused = database_url("mysql://root:hunter2@h/db").unwrap_err();
        assert!(refused.contains("mysql://"), "{refused}");
        assert!(!refused.contains("hunter2"), "{refused}");
        for bad in [
            "",
            "sqlite:db.sqlite",
            "h:5432/db",
            "mysql:root:hunter2@h/db",
        ] {
            let refused = database_url(bad).unwrap_err();
            assert!(!refused.contains("hunter2"), "{refused}");
        }
    }

    #[test]
    fn base_url_host_drops_scheme_port_and_path() {
        assert_eq!(
            BaseUrl::parse("https://news.example.org/").unwrap().host(),
            "news.example.org"
        );
        assert_eq!(
            BaseUrl::parse("http://127.0.0.1:8080").unwrap().host(),
            "127.0.0.1"
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let s = Settings::from_overrides(with_key()).unwrap();
        assert!(!format!("{s:?}").contains(KEY));
    }
}
