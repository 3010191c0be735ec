//! End-to-end tests: the real `bifrost` and `agent` binaries on loopback.
// A failed unwrap in a test is a failed test with its location: what a test should do.
#![allow(clippy::unwrap_used)]

mod accounts;
mod audit;
mod auth;
mod bad_input;
mod cli;
mod cloud;
mod console_api;
mod copy;
mod destinations;
mod diskfull;
mod drain;
mod durability;
mod edge;
mod fake_agent;
mod faults;
mod hostile;
mod incremental;
mod lanes;
mod metrics;
mod names;
mod objects;
mod raw;
mod resume;
mod roles;
mod roots;
mod security;
mod seed;
mod support;
mod sync;
mod tokens;
mod unauth;
mod update;
