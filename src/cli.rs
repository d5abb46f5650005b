//! The command-line interface: clap declarations only. Doc comments are the `--help` text;
//! the man page and shell completions are generated from these definitions.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Durable message queues in a spool directory: one file per message, no daemon
///
/// spool keeps first-in, first-out message queues in a directory. Each message is one
/// file, written under a temporary name, synced, and published by a rename under a
/// sequence number; advisory locks let any number of processes push and pop at the
/// same time. A push that exits 0 survives a power cut. Pop and peek cost the same
/// however deep the queue is.
#[derive(Debug, Parser)]
#[command(
    name = "spool",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Examples:\n  echo hello | spool push\n  spool pop\n  producer | spool -q jobs push --lines\n  spool -q jobs pop -n 10 --lines | consumer\n\nExit status: 0 success, 1 nothing to return, 2 error."
)]
pub struct Cli {
    /// Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with '.' [default: $SPOOL_QUEUE, else default]
    #[arg(short, long, global = true, value_name = "NAME")]
    pub queue: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add messages to the queue
    ///
    /// Each MESSAGE argument is one message. With none, all of standard input is one
    /// message (binary-safe, any size, streamed to disk). A message is on disk, fsynced,
    /// when push exits 0. Several messages are published together, in order.
    #[command(
        after_help = "Examples:\n  spool push 'first job' 'second job'\n  tar c dir | spool -q backups push\n  find . -name '*.log' | spool push --lines\n  find . -print0 | spool push -0 --print-id"
    )]
    Push(PushArgs),

    /// Remove the oldest message and write it to standard output
    ///
    /// The message is deleted only after its bytes were written and flushed; if that
    /// fails (closed pipe, full disk) it stays in the queue and pop exits 2. Exits 1 when
    /// the queue is empty.
    #[command(
        after_help = "Examples:\n  spool pop > job.txt\n  spool -q jobs pop -n 100 --lines | xargs -n1 process\n  while msg=$(spool pop); do echo \"got $msg\"; done"
    )]
    Pop(TakeArgs),

    /// Write the oldest message to standard output without removing it
    ///
    /// Exits 1 when the queue is empty.
    #[command(after_help = "Examples:\n  spool peek\n  spool peek -n 5 --lines")]
    Peek(TakeArgs),

    /// List waiting messages in order: id, size, enqueue time, preview
    #[command(after_help = "Examples:\n  spool list\n  spool list --json | jq -r .id")]
    List(ListArgs),

    /// Print the number of waiting messages
    #[command(after_help = "Example:\n  [ \"$(spool -q jobs len)\" -gt 100 ] && echo backlog")]
    Len,

    /// Print counts, bytes and the age of the oldest message
    #[command(after_help = "Examples:\n  spool stats\n  spool stats --all --json")]
    Stats(StatsArgs),

    /// Remove every waiting message and print how many were removed
    #[command(after_help = "Example:\n  spool -q scratch clear")]
    Clear,

    /// List the queues of the spool
    #[command(
        after_help = "Example:\n  for q in $(spool queues); do echo \"$q $(spool -q \"$q\" len)\"; done"
    )]
    Queues,

    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  spool completions bash > /etc/bash_completion.d/spool\n  spool completions zsh > \"${fpath[1]}/_spool\"\n  spool completions fish > ~/.config/fish/completions/spool.fish"
    )]
    Completions(CompletionsArgs),
}

/// Arguments of `push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Messages to push, one per argument [default: all of standard input, as one message]
    #[arg(value_name = "MESSAGE", conflicts_with_all = ["lines", "null"])]
    pub messages: Vec<OsString>,

    /// Read standard input as one message per line (the newline is removed)
    #[arg(short, long, conflicts_with = "null")]
    pub lines: bool,

    /// Read standard input as one message per NUL-terminated record
    #[arg(short = '0', long)]
    pub null: bool,

    /// Print the id of each new message, one per line
    #[arg(long)]
    pub print_id: bool,
}

/// Arguments of `pop` and `peek`.
#[derive(Debug, Args)]
pub struct TakeArgs {
    /// Up to N messages (N > 1 needs --lines or --null to frame them)
    #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,

    /// Follow each message with a newline
    #[arg(short, long, conflicts_with = "null")]
    pub lines: bool,

    /// Follow each message with a NUL byte
    #[arg(short = '0', long)]
    pub null: bool,
}

/// Arguments of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// One JSON object per line: id, size, enqueued (RFC 3339), preview
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// One JSON object (per queue with --all)
    #[arg(long)]
    pub json: bool,

    /// Every queue of the spool
    #[arg(long)]
    pub all: bool,
}

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Shells with completion scripts.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    /// GNU Bash
    Bash,
    /// Z shell
    Zsh,
    /// fish
    Fish,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
