//! newsletter: an e-mail newsletter and subscriber-management service.
//!
//! Code map: `config` reads settings (the only module that reads the environment); `domain`
//! holds the parsed types (no I/O); `store` holds all SQL; `ops` the operations and their
//! rules, the doors' only way to `store`; `routes` the HTTP handlers; `mail` templates,
//! message building and transports (no SQL); `worker` claims queued mail from the delivery
//! ledger and sends it; `bounce` classifies and records the bounces and complaints that come
//! back later (inbound SMTP listener); `limits` the per-IP rate limiter of the HTTP and SMTP
//! listeners; `app` wires them together; `cli` is the command line.
//! See ARCHITECTURE.md.

/// This build's version and the git commit it was built from (`newsletter --version`, the
/// start banner): `0.1.0 (commit 1a2b3c4d5e6f)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("NEWSLETTER_GIT_COMMIT"),
    ")"
);

pub mod app;
pub mod batched;
pub mod bench;
pub mod bounce;
pub mod cli;
pub mod config;
pub mod domain;
pub mod fetch;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod ops;
pub mod routes;
pub mod store;
pub mod telemetry;
pub mod template_files;
pub mod worker;
