//! Black-box tests: the real service, a real PostgreSQL database per test, a real SMTP server.

mod addresses;
mod admin;
mod archive;
mod bad_input;
mod bounces;
mod browser;
pub mod cli;
mod confirm;
mod delivery_faults;
mod dkim;
mod fuzz;
mod health;
mod helpers;
mod hostile;
mod mail_headers;
mod mail_layout;
mod mail_text;
mod mailbox;
mod recipients;
mod self_service;
mod sending;
mod signup;
mod smtp_server;
mod third_party_smtp;
mod unsubscribe;
mod updates;
mod webhooks;
