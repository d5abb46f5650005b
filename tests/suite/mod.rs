//! The integration tests, one module per command or concern (the index is in tests.rs).

mod binary;
mod claims;
mod clear;
mod cli;
mod compat;
mod completions;
mod concurrency;
mod crash;
mod docs;
mod faults;
mod generated;
mod hostile;
mod layout;
mod len_stats;
mod list;
mod names;
mod netfs;
mod peek;
mod pop;
mod push;
mod queues;
mod roots;
mod run;
mod schedule;
mod shell;
mod wait;
