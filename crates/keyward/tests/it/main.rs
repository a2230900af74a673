#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Integration tests: each starts the real `keyward` binary on a free
//! loopback port (see `harness`).

mod access;
mod at_rest;
mod audit;
mod backup;
mod bad_input;
mod ccxt_e2e;
mod connections;
mod fund_movers;
mod guards;
mod hardening;
mod harness;
mod hsm;
mod incident;
mod key_terms;
mod keygen;
mod keys;
mod ledger;
mod nodes;
mod persistence;
mod pg;
mod pipeline;
mod proxy;
mod rotation;
mod run;
mod scan;
mod scheduled_roll;
mod seal;
mod secrets;
mod server_start;
mod sign;
mod staged_rotation;
mod tokens;
mod verify_api;
