//! The one test harness: every integration test goes through it.
//!
//! A test builds a [`Fixture`] for an [`Engine`] (a fresh store of its own, never the
//! user's), runs the real `spool` binary through a [`Cmd`] (one runner: a clean
//! environment, its own process group, a time limit after which the command is killed and
//! the test fails naming it) and checks the [`Output`] (exact standard output, standard
//! error, exit status). Tests of behaviour that every engine must have are listed in
//! [`engine_tests!`], which runs each once per engine; tests of the local engine's files
//! take a plain `#[test]`. A test that cannot run here (no strace, not root) calls
//! [`skip`], which prints `SKIPPED: <reason>` and passes, or fails when `CI=true`.
//!
//! One concern a file: `engine` (the engines and the macro), `fixture` (a store per test
//! and its shortcuts), `command` (the runner and processes), `output` (what a command
//! did, and its assertions), `strace` (fault injection), `clock` (time and a seeded
//! random stream), `skip` (what the machine lacks), `files` (files, mounts and witnesses
//! outside spool), `queue` (reading a queue through spool, for the fault tests),
//! `postgres` (a throwaway PostgreSQL server shared by the run, a database per test),
//! `netns` (network namespaces linked by veth pairs: a second host whose link can be cut).

mod clock;
mod command;
mod engine;
mod files;
mod fixture;
mod netns;
mod output;
mod postgres;
mod queue;
mod skip;
mod strace;

pub use clock::*;
pub use command::*;
pub use engine::*;
pub use files::*;
pub use fixture::*;
pub use netns::*;
pub use output::*;
pub use postgres::*;
pub use queue::*;
pub use skip::*;
pub use strace::*;

pub(crate) use engine::{each_engine, engine_tests};
