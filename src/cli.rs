//! The command-line interface: clap declarations only. Doc comments are the `--help` text;
//! the man page and shell completions are generated from these definitions.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand, ValueEnum, ValueHint};

mod values;
pub use values::{Count, Dur, Key, Time, Token, TokenOrId};

/// Durable message queues in a spool directory: one file per message, no daemon
///
/// spool keeps message queues in a directory. Consumers take the oldest ready message of
/// the highest priority first (priorities 0 to 9, first-in, first-out within one);
/// delayed messages wait until their time, then join the back of their priority. Each
/// message is one file, written under a temporary name, synced, and published by a
/// rename under a sequence number; advisory locks let any number of processes push and
/// pop at the same time. A push that exits 0 survives a power cut. Pop and peek cost the
/// same however deep the queue is.
#[derive(Debug, Parser)]
#[command(
    name = "spool",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "Examples:\n  echo hello | spool push\n  spool pop\n  producer | spool -q jobs push --lines\n  spool -q jobs pop -n 10 --lines | consumer\n\nExit status: 0 success, 1 nothing to return, 2 error, 3 run or fsck found failures (relay: messages refused), 75 relay could not reach the other place, run and relay stopped by SIGINT or SIGTERM exit as killed by the signal (the shell reports 130 or 143)."
)]
pub struct Cli {
    /// Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]
    #[arg(long, global = true, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub dir: Option<PathBuf>,

    /// PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL);
    /// without it, the spool directory
    ///
    /// What the URL leaves out comes from PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD,
    /// the password file ~/.pgpass (PGPASSFILE), PGSSLMODE and PGSSLROOTCERT, as in psql.
    /// sslmode: disable, allow, prefer (the default: TLS when the server offers it),
    /// require (TLS, the certificate not checked unless a root certificate is there),
    /// verify-ca (the chain), verify-full (the chain and the host name); sslrootcert=FILE
    /// [default: ~/.postgresql/root.crt], or system for the Mozilla roots
    #[arg(long, global = true, value_name = "URL", value_hint = ValueHint::Url, conflicts_with = "dir")]
    pub url: Option<OsString>,

    /// Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with '.' [default: $SPOOL_QUEUE, else default]
    #[arg(short, long, global = true, value_name = "NAME")]
    pub queue: Option<OsString>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. Their arguments are built only for the subcommand being run (`defer`),
/// which saves start-up time: every spool command is a process of its own. So the argument
/// structs below carry plain comments: a doc comment on one would replace the help text of
/// its variant here.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Add messages to the queue
    ///
    /// Each MESSAGE argument is one message. With none, all of standard input is one
    /// message (binary-safe, any size, streamed to disk). A message is on disk, fsynced,
    /// when push exits 0. Several messages are published together, in order.
    #[command(
        after_help = "Examples:\n  spool push 'first job' 'second job'\n  tar c dir | spool -q backups push\n  find . -name '*.log' | spool push --lines\n  find . -print0 | spool push -0 --print-id\n  spool -q index push --key rebuild-index 'rebuild the index'"
    )]
    Push(PushArgs),

    /// Remove the next message (the oldest of the highest priority) and write it out
    ///
    /// The message is deleted only after its bytes were written and flushed; if that
    /// fails (closed pipe, full disk) it stays in the queue and pop exits 2. Exits 1 when
    /// the queue is empty.
    #[command(
        after_help = "Examples:\n  spool pop > job.txt\n  spool -q jobs pop -n 100 --lines | xargs -n1 process\n  while msg=$(spool pop); do echo \"got $msg\"; done"
    )]
    Pop(TakeArgs),

    /// Write the next message to standard output without removing it
    ///
    /// Exits 1 when the queue is empty.
    #[command(after_help = "Examples:\n  spool peek\n  spool peek -n 5 --lines")]
    Peek(TakeArgs),

    /// Take the next message under a lease and print its claim token
    ///
    /// The message stays claimed until `spool ack TOKEN` deletes it, `spool nack TOKEN`
    /// returns it, or its lease ends and it returns by itself. Each claim counts as an
    /// attempt; a message claimed --max-attempts times moves to the failed state instead.
    /// Exits 1 when there is nothing to claim.
    #[command(
        after_help = "Example: a worker that never loses a job\n  while token=$(spool claim --wait --lease 10m); do\n    if spool show \"$token\" | process; then spool ack \"$token\"\n    else spool nack \"$token\" --delay 1m; fi\n  done"
    )]
    Claim(ClaimArgs),

    /// Print the payload of a message in any state, by claim token or id
    #[command(after_help = "Examples:\n  spool show 42\n  spool show \"$token\" | process")]
    Show(ShowArgs),

    /// Delete a claimed message: its work is done
    ///
    /// Exits 2, changing nothing, when the token is no longer valid: the lease ended
    /// and the message was claimed again, or it was already acked or nacked.
    #[command(after_help = "Example:\n  spool ack \"$token\"")]
    Ack(TokenArgs),

    /// Return a claimed message behind the waiting ones (after --delay, if given)
    #[command(after_help = "Example:\n  spool nack \"$token\" --delay 30s")]
    Nack(NackArgs),

    /// Renew the lease of a claimed message
    #[command(after_help = "Example:\n  spool extend \"$token\" --lease 10m")]
    Extend(ExtendArgs),

    /// Move failed messages back to ready, with their attempts reset
    #[command(after_help = "Examples:\n  spool requeue 42 43\n  spool requeue --all")]
    Requeue(RequeueArgs),

    /// Run a command for each message, with the payload on its standard input
    ///
    /// Exit 0 acks the message; exit 100 fails it at once (permanent); any other exit, or
    /// death by a signal, retries it after an exponential backoff until --max-attempts,
    /// then fails it. Each failed attempt is reported on standard error in one line (unless
    /// --quiet): the message, the attempt, how the command ended, and when the message is
    /// retried or that it moved to failed. The command gets SPOOL_ID, SPOOL_QUEUE,
    /// SPOOL_ATTEMPT and SPOOL_DIR. With -j above 1, the commands' output passes through
    /// spool a whole line at a time, so that no command's line is cut by another's (a last
    /// line without a newline is written when its command ends; a line over 1 MiB, in
    /// pieces). Without
    /// --wait, run drains what is available and exits. SIGINT or SIGTERM stops claiming and
    /// lets running commands finish; a second one is passed on to them.
    /// Exit status: killed by the signal (the shell reports 130 or 143) when SIGINT or
    /// SIGTERM stopped it before the queue was drained (with --wait: always), once its
    /// commands finished; else 2 on errors; else 3 when any message failed or was retried;
    /// else 0 (every message succeeded, or there were none).
    #[command(
        after_help = "Examples:\n  spool -q mail run -- sendmail -t\n  spool -q jobs run --wait -j 4 --lease 10m -- sh -c 'process \"$SPOOL_ID\"'\n  spool -q nightly run -j 4 --joblog nightly.log -- ./job.sh\n  # crontab: mails you which job failed, and why\n  */5 * * * * spool -q nightly run -- ./job.sh || echo \"spool run: failures\""
    )]
    Run(RunArgs),

    /// Carry the queue's messages to another place (--to), or another place's to the queue
    /// (--from), through outages
    ///
    /// PLACE is a PostgreSQL URL (postgres://…) or a spool directory. A message leaves its
    /// source only once the destination committed it, in batches (one transaction, one
    /// sync each), keeping its payload, priority and time to live, in the source's order;
    /// delayed messages go when they fall due. Each carries its own key, else the key
    /// relay:IDENTITY:ID, IDENTITY the source queue's (see push --key), so that one sent
    /// twice, by a relay killed between the two steps, is added once while the
    /// destination holds it. One relay per source queue: a second that waits is refused,
    /// a second without --wait exits 75. A message the destination refuses (too large)
    /// or that cannot be read moves to the source's failed state (reason refused or
    /// unreadable) and the relay goes on. Without --wait, relay forwards what is there
    /// and exits; with --wait it keeps running, woken by new messages, and when either
    /// side fails it retries (from 250 ms, doubling, up to 10 s), saying on standard
    /// error, one line each, since when it was down and when it came back. SIGINT or
    /// SIGTERM stops it after the batch in flight.
    /// Exit status: 0 everything forwarded; 3 some moved to failed; 75 PLACE could not be
    /// reached or failed, or another relay was running (try again later), with what
    /// could be forwarded forwarded; 2 other errors; killed by the signal when SIGINT or
    /// SIGTERM stopped it.
    #[command(
        after_help = "Examples:\n  # CENTRAL: a URL (postgres://spool@db.example/queues) or a spool directory\n  spool -q outbox relay --to \"$CENTRAL\" --to-queue jobs\n  spool -q inbox relay --from \"$CENTRAL\" --from-queue work\n  # crontab: forward every minute; cron mails the line when the other place was away\n  * * * * * spool -q outbox relay --to \"$CENTRAL\" || echo \"relay: exit $?\""
    )]
    Relay(RelayArgs),

    /// List messages in order: id, size, enqueue time, preview (and state details)
    #[command(
        after_help = "Examples:\n  spool list\n  spool list --state failed\n  spool list --json | jq -r .id"
    )]
    List(ListArgs),

    /// Print the number of waiting messages
    #[command(after_help = "Example:\n  [ \"$(spool -q jobs len)\" -gt 100 ] && echo backlog")]
    Len,

    /// Print counts, bytes, the age of the oldest message, and the queue's rates, expected
    /// wait and trend
    ///
    /// Arrivals (λ) and consumption (R, popped, acked or failed for good) are measured per
    /// second over the span observed; load is ρ = λ / R; wait is L / R, how long a message
    /// pushed now waits (L: the waiting messages); trend is draining (with the time to
    /// empty), steady, growing (with λ − R), stalled (nothing consumed lately), unknown or
    /// idle.
    #[command(
        after_help = "Examples:\n  spool stats\n  spool stats --all --json\n  spool stats --format openmetrics > spool.prom.tmp && mv spool.prom.tmp spool.prom"
    )]
    Stats(StatsArgs),

    /// Remove every waiting message (ready and delayed) and print how many were removed
    #[command(after_help = "Examples:\n  spool -q scratch clear\n  spool clear --state failed")]
    Clear(ClearArgs),

    /// Check a queue for damage, and repair it with --repair
    ///
    /// Reports temporary files left by crashes, entries that are not spool's (symlinks,
    /// FIFOs, files with several links, foreign names, unreadable files), a counter behind
    /// the highest id, a head above the first message, claims of dead processes and ended
    /// leases. --repair removes spool's own leftovers, moves what it cannot use into
    /// corrupt/ (it never deletes a message), returns claims and fixes the counters.
    /// Exit status: 0 nothing wrong (or all repaired), 3 problems found, 2 error.
    #[command(after_help = "Examples:\n  spool fsck\n  spool -q jobs fsck --repair")]
    Fsck(FsckArgs),

    /// List the queues of the spool
    #[command(
        after_help = "Example:\n  for q in $(spool queues); do echo \"$q $(spool -q \"$q\" len)\"; done"
    )]
    Queues,

    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  spool completions bash > ~/.local/share/bash-completion/completions/spool\n  spool completions zsh > ~/.zfunc/_spool  # with fpath=(~/.zfunc $fpath) in ~/.zshrc\n  spool completions fish > ~/.config/fish/completions/spool.fish"
    )]
    Completions(CompletionsArgs),
}

// Arguments of `push`.
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

    /// Add nothing if a message with this key is ready, delayed or claimed (one message)
    #[arg(long, value_name = "KEY", value_parser = Key, conflicts_with_all = ["lines", "null"])]
    pub key: Option<String>,

    /// Invisible for this long (500ms, 30s, 5m, 2h, 1d, 1h30m)
    #[arg(long, value_name = "DUR", value_parser = Dur::any(), allow_hyphen_values = true, conflicts_with = "at")]
    pub delay: Option<Duration>,

    /// Invisible until this time (RFC 3339, or unix seconds)
    #[arg(long, value_name = "TIME", value_parser = Time, allow_hyphen_values = true)]
    pub at: Option<SystemTime>,

    /// Priority, 0 to 9: higher first, first-in first-out within a priority
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = Count::<u8>::new(0, 9), allow_negative_numbers = true)]
    pub priority: u8,

    /// Moves to failed (reason "expired") if not consumed within this time
    #[arg(long, value_name = "DUR", value_parser = Dur::any(), allow_hyphen_values = true)]
    pub ttl: Option<Duration>,
}

// Arguments of `relay`.
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// Forward the queue's messages to PLACE: a PostgreSQL URL or a spool directory
    #[arg(long, value_name = "PLACE", value_hint = ValueHint::AnyPath, required_unless_present = "from", conflicts_with = "from")]
    pub to: Option<OsString>,

    /// Bring PLACE's messages into the queue: a PostgreSQL URL or a spool directory
    #[arg(long, value_name = "PLACE", value_hint = ValueHint::AnyPath)]
    pub from: Option<OsString>,

    /// The queue at PLACE that --to forwards to [default: the same name]
    #[arg(long, value_name = "NAME", requires = "to")]
    pub to_queue: Option<String>,

    /// The queue at PLACE that --from takes from [default: the same name]
    #[arg(long, value_name = "NAME", requires = "from")]
    pub from_queue: Option<String>,

    /// Keep running: forward messages as they come, and wait out outages
    #[arg(short, long)]
    pub wait: bool,

    /// Up to N messages per batch (one transaction, one sync)
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = Count::<usize>::new(1, 100_000), allow_negative_numbers = true)]
    pub batch: usize,
}

// Options of the commands that can wait for a message.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Wait for a message instead of exiting 1 when there is none
    #[arg(short, long)]
    pub wait: bool,

    /// With --wait: exit 1 after this long (500ms, 30s, 5m, 2h, 1d, 1h30m)
    #[arg(long, value_name = "DUR", value_parser = Dur::any(), allow_hyphen_values = true, requires = "wait")]
    pub timeout: Option<Duration>,
}

// Arguments of `pop` and `peek`.
#[derive(Debug, Args)]
pub struct TakeArgs {
    /// Up to N messages (N > 1 needs --lines or --null to frame them)
    #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 1, value_parser = Count::<u64>::new(1, u64::MAX), allow_negative_numbers = true)]
    pub count: u64,

    /// Follow each message with a newline, in the same write up to 64 KiB
    #[arg(short, long, conflicts_with = "null")]
    pub lines: bool,

    /// Follow each message with a NUL byte, in the same write up to 64 KiB
    #[arg(short = '0', long)]
    pub null: bool,

    #[command(flatten)]
    pub wait: WaitArgs,
}

// Arguments of `claim`.
#[derive(Debug, Args)]
pub struct ClaimArgs {
    /// How long the claim holds before the message returns by itself
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = Dur::positive(), allow_hyphen_values = true)]
    pub lease: Duration,

    /// A message already claimed this many times moves to failed instead
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = Count::<u32>::new(1, u32::MAX as u64), allow_negative_numbers = true)]
    pub max_attempts: u32,

    #[command(flatten)]
    pub wait: WaitArgs,
}

// Arguments of `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A claim token (42.9f3a0c1d2e4b5a67) or a message id (42)
    #[arg(value_name = "TOKEN|ID", value_parser = TokenOrId)]
    pub what: String,
}

// Arguments of `ack`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The claim token printed by `spool claim`
    #[arg(value_name = "TOKEN", value_parser = Token)]
    pub token: String,
}

// Arguments of `nack`.
#[derive(Debug, Args)]
pub struct NackArgs {
    /// The claim token printed by `spool claim`
    #[arg(value_name = "TOKEN", value_parser = Token)]
    pub token: String,

    /// Invisible for this long before it is ready again
    #[arg(long, value_name = "DUR", value_parser = Dur::any(), allow_hyphen_values = true)]
    pub delay: Option<Duration>,
}

// Arguments of `extend`.
#[derive(Debug, Args)]
pub struct ExtendArgs {
    /// The claim token printed by `spool claim`
    #[arg(value_name = "TOKEN", value_parser = Token)]
    pub token: String,

    /// The new lease, from now
    #[arg(long, value_name = "DUR", value_parser = Dur::positive(), allow_hyphen_values = true)]
    pub lease: Duration,
}

// Arguments of `requeue`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["ids", "all"])))]
pub struct RequeueArgs {
    /// Ids of failed messages
    #[arg(value_name = "ID", value_parser = Count::<u64>::new(1, u64::MAX), allow_negative_numbers = true)]
    pub ids: Vec<u64>,

    /// Every failed message
    #[arg(long)]
    pub all: bool,
}

// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Keep consuming, waking at once on pushes, instead of exiting when the queue is empty
    #[arg(short, long)]
    pub wait: bool,

    /// Run up to N commands at a time
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 1, value_parser = Count::<u32>::new(1, 1024), allow_negative_numbers = true)]
    pub jobs: u32,

    /// Stop after N messages (a message retried counts again)
    #[arg(long, value_name = "N", value_parser = Count::<u64>::new(1, u64::MAX), allow_negative_numbers = true)]
    pub max: Option<u64>,

    /// Time limit of each command: then it gets SIGTERM, 5 seconds later SIGKILL, and the
    /// message is retried
    #[arg(long, value_name = "DUR", default_value = "5m", value_parser = Dur::positive(), allow_hyphen_values = true)]
    pub lease: Duration,

    /// A message that failed this many times moves to failed
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = Count::<u32>::new(1, u32::MAX as u64), allow_negative_numbers = true)]
    pub max_attempts: u32,

    /// First retry delay, doubling with each attempt (capped at 1h)
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = Dur::any(), allow_hyphen_values = true)]
    pub backoff: Duration,

    /// Append a line for each finished command to FILE, in GNU parallel's joblog format:
    /// Seq (the message id), Host, Starttime, JobRuntime, Send (payload bytes), Receive
    /// (bytes of standard output), Exitval, Signal, Command; the header only into an empty
    /// file
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub joblog: Option<PathBuf>,

    /// Keep each command's output together: held until the command ends, then written,
    /// standard output then standard error [default: with -j above 1, whole lines as they
    /// come]
    #[arg(long)]
    pub group: bool,

    /// Do not report failed attempts on standard error
    #[arg(long)]
    pub quiet: bool,

    /// On a terminal, keep a status line at the bottom of standard error: commands done,
    /// failed attempts (retries included), commands running, then messages waiting, the
    /// consumption rate and the time to empty (the estimate of stats, read every second,
    /// less often on a deep queue)
    #[arg(long)]
    pub progress: bool,

    /// The command and its arguments: from the first word that is not one of run's options,
    /// or after --
    #[arg(
        value_name = "COMMAND",
        value_hint = ValueHint::CommandWithArguments,
        required = true,
        trailing_var_arg = true
    )]
    pub command: Vec<OsString>,
}

/// States for `list --state` and `clear --state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateArg {
    /// Waiting to be taken
    Ready,
    /// Waiting for their time
    Delayed,
    /// Taken, not yet acked
    Claimed,
    /// Dead letters
    Failed,
    /// Every state
    All,
}

// Arguments of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// One JSON object per line: id, state, size, enqueued (RFC 3339), attempts, priority,
    /// and when present until, expires, reason; then preview (escaped, and
    /// preview_escaped true, when not UTF-8)
    #[arg(long)]
    pub json: bool,

    /// Which messages
    #[arg(long, value_enum, default_value = "ready")]
    pub state: StateArg,
}

// Arguments of `clear`.
#[derive(Debug, Args)]
pub struct ClearArgs {
    /// Which messages [default: ready and delayed]
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
}

// Arguments of `fsck`.
#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Repair what is found
    #[arg(long)]
    pub repair: bool,
}

// Arguments of `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// What to print: text, json (an object per queue and line) or openmetrics (for
    /// Prometheus; every queue unless -q or SPOOL_QUEUE names one)
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = StatsFormat::Text)]
    pub format: StatsFormat,

    /// Short for --format json
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// Every queue of the spool
    #[arg(long)]
    pub all: bool,

    /// Refresh until interrupted: on a terminal redrawn, with a chart of the depth over
    /// the last minutes; in a pipe one line per queue and interval
    #[arg(long)]
    pub watch: bool,

    /// Time between refreshes of --watch
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = Dur::positive(), requires = "watch", allow_hyphen_values = true)]
    pub interval: Duration,

    /// Whether a queue was named (-q or SPOOL_QUEUE), set after parsing.
    #[arg(skip)]
    pub queue_named: bool,
}

/// Formats of `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    /// For people: a line per fact, or a table with --all
    Text,
    /// One JSON object per queue and line
    Json,
    /// The OpenMetrics text format, which Prometheus and node_exporter's textfile collector read
    Openmetrics,
}

// Arguments of `completions`.
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
