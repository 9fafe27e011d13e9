//! Black-box tests: the real service, a real PostgreSQL database per test, a real SMTP server.

mod addresses;
mod admin;
mod archive;
mod bad_input;
mod browser;
mod cli;
mod confirm;
mod delivery_faults;
mod fuzz;
mod health;
mod helpers;
mod hostile;
mod imports;
mod recipients;
mod self_service;
mod sending;
mod signup;
mod smtp_server;
mod subscribers;
mod third_party_smtp;
mod unsubscribe;
mod updates;
