//! Integration tests: real restic 0.14, real repositories, the real binary.

mod common;
mod services;

mod backends;
mod cloud_apis;
mod docker;
mod exit_codes;
mod fixtures;
mod history;
mod holders;
mod hostile;
mod kernel;
mod live;
mod memory;
mod package;
mod password;
mod peers;
mod run;
mod sealed;
mod serve;
mod snapshots;
mod unlock;
mod unreadable;
mod web;
