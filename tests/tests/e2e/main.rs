//! End-to-end tests: the real `bifrost` and `agent` binaries on loopback.

mod auth;
mod bad_input;
mod cli;
mod copy;
mod faults;
mod security;
mod support;
