//! `spool run`: a consumer that runs a command for each message.
//!
//! Each message is claimed with this process's flock (so it returns to the queue at once
//! if `spool run` is killed), and its file is given to the command as standard input
//! through a fresh open, so the command never holds the lock. The command's exit status
//! decides: 0 acks, 100 fails for good, anything else retries after a backoff that doubles
//! with each attempt, until the attempts are used up. Each failed attempt is told on
//! standard error in one line (`report.rs`), unless `--quiet`. The command runs in its own
//! process group: a terminal's ^C reaches spool, which stops claiming and lets running
//! commands finish; a second signal is passed on to them.
//!
//! One loop does everything, in one thread: it polls the queue's waiter and sockets that
//! the signal handlers write to (SIGINT, SIGTERM, SIGCHLD), then judges what finished,
//! enforces leases, and claims more.
//!
//! The exit status, the first that applies: 130 or 143 when SIGINT or SIGTERM stopped run
//! before it drained its queue (with `--wait`, any such signal; without, when messages
//! were left ready, or the signal was passed on to the commands); 3 when an attempt
//! failed; else 0.

mod report;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

use super::failure::{Failure, Outcome};
use super::output::say_missing;
use super::watch::Watch;
use crate::cli::RunArgs;
use crate::clock::{after, now_ms};
use crate::exit::ExitStatus;
use crate::store::{Claim, Engine, Error, Hold, Queue, TakeOptions, Verdict};
use report::{Ending, Next};

/// Time between SIGTERM and SIGKILL for a command past its lease.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// Longest backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The bits of [`Watch::sleep`]'s answer: which of its extra descriptors are readable.
const SIGINT_BIT: u32 = 1;
const SIGTERM_BIT: u32 = 2;
const SIGCHLD_BIT: u32 = 4;

/// A command running for a message.
struct Job<C> {
    claimed: C,
    child: Child,
    pgid: Pid,
    started: Instant,
    terminated: Option<Instant>,
}

/// The sockets the signal handlers write a byte to, one per signal.
struct Signals {
    int: UnixStream,
    term: UnixStream,
    chld: UnixStream,
}

/// The signal that stopped run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Int,
    Term,
}

/// What one `spool run` keeps from its start to its end.
struct Runner<'a> {
    args: &'a RunArgs,
    /// What the commands need to reach the engine (`SPOOL_DIR`).
    environment: Vec<(&'static str, OsString)>,
    /// Attempts that failed (retried or moved to failed).
    failed: u64,
    /// The first SIGINT or SIGTERM, if one came.
    stopped_by: Option<Stop>,
    /// A later signal was passed on to running commands.
    passed_on: bool,
}

/// Runs `spool run`.
pub(super) fn run<E: Engine>(engine: &E, name: &str, args: RunArgs) -> Outcome {
    // Signals arrive as bytes on sockets, so one poll waits for interrupts, for children
    // (SIGCHLD) and for the queue.
    let pair = || UnixStream::pair().and_then(|(r, w)| r.set_nonblocking(true).map(|()| (r, w)));
    let sock_err = |e| Failure::Store(Error::io("socketpair", "signals", e));
    let (int_read, int_write) = pair().map_err(sock_err)?;
    let (term_read, term_write) = pair().map_err(sock_err)?;
    let (chld_read, chld_write) = pair().map_err(sock_err)?;
    let mut registered = Vec::new();
    for (sig, w) in [
        (signal_hook::consts::SIGINT, int_write),
        (signal_hook::consts::SIGTERM, term_write),
        (signal_hook::consts::SIGCHLD, chld_write),
    ] {
        let id = signal_hook::low_level::pipe::register(sig, w)
            .map_err(|e| Failure::Store(Error::io("sigaction", "signals", e)))?;
        registered.push(id);
    }
    let signals = Signals {
        int: int_read,
        term: term_read,
        chld: chld_read,
    };
    let mut runner = Runner {
        args: &args,
        environment: engine.environment(),
        failed: 0,
        stopped_by: None,
        passed_on: false,
    };
    let result = run_loop(engine, name, &mut runner, &signals);
    for id in registered {
        signal_hook::low_level::unregister(id);
    }
    result
}

fn run_loop<E: Engine>(
    engine: &E,
    name: &str,
    runner: &mut Runner<'_>,
    signals: &Signals,
) -> Outcome {
    let args = runner.args;
    let mut watch = Watch::new(engine, name, true);
    let mut jobs: VecDeque<Job<<E::Queue as Queue>::Claim>> = VecDeque::new();
    let mut started = 0u64;
    let mut stopping = false;
    let opts = TakeOptions {
        hold: Hold::Process,
        max_attempts: Some(args.max_attempts),
    };
    let limit_reached = |started: u64| args.max.is_some_and(|m| started >= m);
    loop {
        let Some(q) = watch.queue()? else {
            if !args.wait {
                // Nothing to run, as on an empty queue (status 0), but a mistyped name
                // must not pass for an empty queue.
                say_missing(name);
                return Ok(runner.end(|| true));
            }
            if stopping {
                return Ok(runner.end(|| false));
            }
            let ready = watch.sleep(None, &[signals.int.as_fd(), signals.term.as_fd()], true)?;
            stopping |= runner.take_signals(ready, signals, &[]);
            continue;
        };
        // Judge what finished, and enforce the time limit of what did not.
        let mut i = 0;
        while i < jobs.len() {
            let job = &mut jobs[i];
            match job.child.try_wait() {
                Ok(Some(status)) => {
                    if let Some(job) = jobs.remove(i) {
                        // A command stopped at the end of its lease did not finish its
                        // work, whatever it exits with: the message is retried.
                        let ending = match job.terminated {
                            Some(_) => Ending::LeaseEnded,
                            None => Ending::Exited(status),
                        };
                        runner.judge(q, job.claimed, ending)?;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => return Err(Failure::Store(Error::io("wait", "command", e))),
            }
            let elapsed = job.started.elapsed();
            match job.terminated {
                None if elapsed >= args.lease => {
                    let _ = kill_process_group(job.pgid, Signal::TERM);
                    job.terminated = Some(Instant::now());
                }
                Some(t) if t.elapsed() >= KILL_GRACE => {
                    let _ = kill_process_group(job.pgid, Signal::KILL);
                }
                _ => {}
            }
            i += 1;
        }
        // Claim and start more.
        let mut idle = false;
        let mut gone = false;
        while !stopping && jobs.len() < args.jobs as usize && !limit_reached(started) {
            let mut taken = match q.take(1, opts) {
                Ok(taken) => taken,
                // Removed while waited for: wait for it to be made again.
                Err(_) if args.wait && q.is_gone() => {
                    (gone, idle) = (true, true);
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let Some(claimed) = taken.pop() else {
                idle = true;
                break;
            };
            started += 1;
            // A command that cannot start is an error: nothing is wrong with the message.
            jobs.push_back(runner.spawn(q, claimed)?);
        }
        let done = jobs.is_empty() && (stopping || limit_reached(started) || (idle && !args.wait));
        if done {
            // Whether run was done anyway when a signal came (without --wait): nothing
            // left that it would have taken.
            let drained = || !args.wait && (limit_reached(started) || nothing_ready(q));
            return Ok(runner.end(drained));
        }
        if gone && jobs.is_empty() {
            watch.forget();
            continue;
        }
        // Sleep until a signal, a child, the queue, a lease, or a due message.
        let deadline = jobs
            .iter()
            .map(|job| match job.terminated {
                None => job.started + args.lease,
                Some(t) => t + KILL_GRACE,
            })
            .min();
        // With no room to claim, only signals and children matter, not the queue.
        let full = jobs.len() >= args.jobs as usize || stopping || limit_reached(started);
        let extra = [
            signals.int.as_fd(),
            signals.term.as_fd(),
            signals.chld.as_fd(),
        ];
        let ready = watch.sleep(deadline, &extra, !full)?;
        if ready & SIGCHLD_BIT != 0 {
            drain(&signals.chld);
        }
        if ready & (SIGINT_BIT | SIGTERM_BIT) != 0 {
            let pgids: Vec<Pid> = jobs.iter().map(|job| job.pgid).collect();
            stopping |= runner.take_signals(ready, signals, &pgids);
        }
    }
}

/// Whether `q` has no message ready to be taken (an error counts as some).
fn nothing_ready<Q: Queue>(q: &Q) -> bool {
    matches!(q.peek(1, |_| Ok(false)), Ok(0))
}

/// Reads what the signal handlers wrote: one byte per signal delivered.
fn drain(socket: &UnixStream) -> usize {
    let mut buf = [0u8; 64];
    let mut total = 0;
    let mut s = socket;
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        total += n;
    }
    total
}

impl Runner<'_> {
    /// Takes the SIGINTs and SIGTERMs that `ready` says came: the first stops run, the
    /// later ones are passed on to the process groups `running` as SIGTERM. Returns
    /// whether run stops.
    fn take_signals(&mut self, ready: u32, signals: &Signals, running: &[Pid]) -> bool {
        let ints = if ready & SIGINT_BIT != 0 {
            drain(&signals.int)
        } else {
            0
        };
        let terms = if ready & SIGTERM_BIT != 0 {
            drain(&signals.term)
        } else {
            0
        };
        let mut later = ints + terms;
        if later > 0 && self.stopped_by.is_none() {
            self.stopped_by = Some(if ints > 0 { Stop::Int } else { Stop::Term });
            later -= 1;
        }
        if later > 0 && !running.is_empty() {
            for &pgid in running {
                let _ = kill_process_group(pgid, Signal::TERM);
            }
            self.passed_on = true;
        }
        self.stopped_by.is_some()
    }

    /// Starts the command for `claimed`, a message of `q`.
    fn spawn<Q: Queue>(&self, q: &Q, claimed: Q::Claim) -> Result<Job<Q::Claim>, Failure> {
        let stdin = q
            .payload_for_child(&claimed)?
            .into_stdin()
            .map_err(|e| Error::io("open", "the message's payload", e))?;
        let mut cmd = Command::new(&self.args.command[0]);
        cmd.args(&self.args.command[1..]).stdin(stdin);
        // Where spool's own output was closed, the command writes to nothing rather than
        // to the unwritable /dev/null that holds the descriptor's place in spool.
        if crate::process::closed_at_start(1) {
            cmd.stdout(Stdio::null());
        }
        if crate::process::closed_at_start(2) {
            cmd.stderr(Stdio::null());
        }
        cmd.env("SPOOL_ID", claimed.id().to_string())
            .env("SPOOL_QUEUE", q.name())
            .env("SPOOL_ATTEMPT", claimed.attempts().to_string())
            .envs(self.environment.iter().map(|(k, v)| (k, v)))
            .process_group(0);
        match cmd.spawn() {
            Ok(child) => {
                let pgid = Pid::from_child(&child);
                Ok(Job {
                    claimed,
                    child,
                    pgid,
                    started: Instant::now(),
                    terminated: None,
                })
            }
            Err(e) => {
                let command = self.args.command[0].to_string_lossy().into_owned();
                q.give_back(vec![claimed])?;
                Err(Failure::Store(
                    Error::io("run", command, e).with_note("the message stays in the queue"),
                ))
            }
        }
    }

    /// Judges a message by how its command ended (ack, retry or fail), settles it so, and
    /// reports a failed attempt.
    fn judge<Q: Queue>(&mut self, q: &Q, claimed: Q::Claim, ending: Ending) -> Result<(), Failure> {
        let reason = format!("attempts-{}", ending.reason());
        let (verdict, next) = match ending.code() {
            Some(0) => (Verdict::Ack, None),
            Some(100) => (Verdict::Fail { reason: "exit-100" }, Some(Next::Failed)),
            _ if claimed.attempts() >= self.args.max_attempts => {
                (Verdict::Fail { reason: &reason }, Some(Next::Failed))
            }
            _ => {
                let exp = claimed.attempts().saturating_sub(1).min(20);
                let delay = self.args.backoff.saturating_mul(1 << exp).min(MAX_BACKOFF);
                let due_ms = after(now_ms(), delay.as_millis() as u64);
                (Verdict::Retry { due_ms }, Some(Next::RetryAt(due_ms)))
            }
        };
        let (id, attempt) = (claimed.id(), claimed.attempts());
        q.settle(claimed, verdict)?;
        if let Some(next) = next {
            self.failed += 1;
            if !self.args.quiet {
                let line = report::failed_attempt(
                    id,
                    q.name(),
                    attempt,
                    self.args.max_attempts,
                    ending,
                    next,
                );
                // A standard error that cannot be written changes nothing.
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
        Ok(())
    }

    /// Ends run and returns its exit status. `drained` says whether run had nothing left
    /// to do when a signal stopped it.
    fn end(&mut self, drained: impl FnOnce() -> bool) -> ExitStatus {
        let interrupted = match self.stopped_by {
            Some(stop) if self.passed_on || !drained() => Some(stop),
            _ => None,
        };
        match interrupted {
            Some(Stop::Int) => ExitStatus::Interrupted,
            Some(Stop::Term) => ExitStatus::Terminated,
            None if self.failed > 0 => ExitStatus::SomeFailed,
            None => ExitStatus::Success,
        }
    }
}
