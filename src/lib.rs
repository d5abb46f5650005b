//! spool: durable message queues in a spool directory.
//!
//! Each message is one file, written to a temporary name, fsynced, and published by a
//! no-replace rename under a per-queue sequence number; flock advisory locks let any
//! number of processes push and pop at once. There is no daemon: the filesystem is the
//! database. The on-disk format is described in `docs/FORMAT.md` and in
//! [`store::local`].
//!
//! Modules:
//! - [`cli`]: the clap definition (help text, man page and completions come from it);
//! - [`app`]: the entry: parses the command line, reports errors and the exit status;
//! - `cmd`: the commands, one file per family, dispatched by one `match`;
//! - [`exit`]: the exit statuses;
//! - `process`: process start-up (standard descriptors, signals, panics);
//! - [`store`]: the queues themselves, knowing nothing of the command line: the engine
//!   seam and its engines ([`store::local`], the spool directory);
//! - [`clock`]: unix milliseconds, and deadlines held to the calendar's end;
//! - [`timefmt`]: RFC 3339 (with jiff's calendar), durations and short ages;
//! - [`excerpt`]: user input cut and escaped for error messages.

pub mod app;
pub mod cli;
pub mod clock;
mod cmd;
pub mod excerpt;
pub mod exit;
pub mod health;
mod process;
pub mod store;
pub mod timefmt;
