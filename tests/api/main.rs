//! Black-box tests: the real service, a real PostgreSQL database per test, a real SMTP server.

mod admin;
mod bad_input;
mod browser;
mod cli;
mod confirm;
mod delivery_faults;
mod health;
mod helpers;
mod recipients;
mod self_service;
mod signup;
mod smtp_server;
mod third_party_smtp;
mod unsubscribe;
mod updates;
