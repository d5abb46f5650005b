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
//! One loop does everything, in one thread: it polls the queue's waiter, sockets that the
//! signal handlers write to (SIGINT, SIGTERM, SIGCHLD), and the pipes of the commands'
//! output when it is captured (`relay.rs`), then judges what finished, enforces leases,
//! and claims more. `--joblog` records each finished command (`joblog.rs`); `--progress`
//! keeps a status line on a terminal (`progress.rs`). Each command costs descriptors (two
//! pipes when its output is captured): run raises its soft limit to what `-j` needs, and
//! where that is short, a command waits for another to end.
//!
//! A message is acked only once its command's standard output was written: when spool's
//! own standard output fails (a closed pipe), the messages whose output was lost stay in
//! the queue, run stops claiming, and exits with status 2 once its commands finished.
//!
//! The exit status, the first that applies: killed by SIGINT or SIGTERM (re-raised once
//! run is done: the shell reports 130 or 143) when that signal stopped run before it
//! drained its queue (with `--wait`, any such signal; without, when messages were left
//! ready, or the signal was passed on to the commands); 2 when an error was reported that
//! did not stop run (the joblog or standard output could not be written); 3 when an
//! attempt failed; else 0.

mod joblog;
mod progress;
mod relay;
mod report;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime};

use rustix::process::{Pid, Signal, kill_process_group};

use super::failure::{Failure, Outcome};
use super::output::say_missing;
use super::watch::Watch;
use crate::cli::RunArgs;
use crate::clock::{after, now_ms};
use crate::exit::ExitStatus;
use crate::store::{
    Claim, Engine, Error, Hold, POLL_INTERVAL, Queue, TakeOptions, Verdict, describe,
};
use joblog::Joblog;
use progress::{Counts, Progress};
use relay::{Capture, Mode, Relay};
use report::{Ending, Next};

/// Descriptors a command may need while it starts (the payload, two pipes, std's pipe
/// for an exec error) and while it runs (its claim, the read ends of its pipes), with a
/// margin; and those of run itself (the queue, its waiter, the signals' sockets).
const DESCRIPTORS_PER_JOB: u64 = 8;
const DESCRIPTORS_OF_RUN: u64 = 64;

/// Time between SIGTERM and SIGKILL for a command past its lease.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// Longest backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The bits of [`Watch::sleep`]'s answer: which of its extra descriptors are readable.
const SIGINT_BIT: u32 = 1;
const SIGTERM_BIT: u32 = 2;
const SIGCHLD_BIT: u32 = 4;
const OUTPUT_BIT: u32 = 8;

/// A command running for a message.
struct Job<C> {
    claimed: C,
    child: Child,
    pgid: Pid,
    started: Instant,
    /// When it started, for the joblog.
    started_at: SystemTime,
    /// Bytes of payload on its standard input, for the joblog.
    send: u64,
    terminated: Option<Instant>,
    /// Its output, when it goes through spool.
    capture: Option<Capture>,
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
    relay: Relay,
    joblog: Option<Joblog>,
    /// Attempts that failed (retried or moved to failed).
    failed: u64,
    /// Messages given back because their command's output could not be written.
    kept: Vec<u64>,
    /// An error was reported that did not stop run: it exits with status 2.
    erred: bool,
    /// The first SIGINT or SIGTERM, if one came.
    stopped_by: Option<Stop>,
    /// A later signal was passed on to running commands.
    passed_on: bool,
    /// Commands that succeeded.
    done: u64,
    /// `--progress` on a terminal.
    progress: Option<Progress>,
}

/// Runs `spool run`.
pub(super) fn run<E: Engine>(engine: &E, name: &str, args: RunArgs) -> Outcome {
    raise_descriptor_limit(args.jobs);
    // The joblog first: one that cannot be written is an error before anything runs.
    let joblog = match &args.joblog {
        Some(path) => Some(Joblog::open(path, &args.command)?),
        None => None,
    };
    // The status line of --progress, on a terminal only.
    let progress = (args.progress
        && !crate::process::closed_at_start(2)
        && std::io::IsTerminal::is_terminal(&std::io::stderr()))
    .then(Progress::new);
    let mode = if args.group {
        Mode::Group
    } else if args.jobs > 1 {
        Mode::Lines
    } else if joblog.is_some() || progress.is_some() {
        // Through spool: counted for the joblog; the status line erased before it.
        Mode::Chunks
    } else {
        Mode::Inherit
    };
    let relay =
        Relay::new(mode).map_err(|e| Failure::Store(Error::io("epoll", "command output", e)))?;
    // Signals arrive as bytes on sockets, so one poll waits for interrupts, for children
    // (SIGCHLD), for the commands' output and for the queue.
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
        relay,
        joblog,
        failed: 0,
        kept: Vec::new(),
        erred: false,
        stopped_by: None,
        passed_on: false,
        done: 0,
        progress,
    };
    let result = run_loop(engine, name, &mut runner, &signals);
    // Also before the error line that an error stopping run prints.
    runner.relay.end_status();
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
    // What woke the last sleep, and when a look last found nothing to take.
    let mut woken = 0;
    let mut found_nothing: Option<Instant> = None;
    // Out of descriptors with commands running: the next starts when one of them ended.
    let mut short = false;
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
        let mut finished = false;
        let mut i = 0;
        while i < jobs.len() {
            let job = &mut jobs[i];
            match job.child.try_wait() {
                Ok(Some(status)) => {
                    if let Some(job) = jobs.remove(i) {
                        runner.finish(q, job, status)?;
                    }
                    finished = true;
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
        short &= !finished;
        // Output that cannot be written: no more commands to write it.
        stopping |= runner.relay.output_failed().is_some();
        // Claim and start more. Woken only by output, with nothing finished, a queue found
        // empty just now is not looked into again: a chatty command would otherwise cost a
        // look at the queue per line. A push is still seen within the poll interval.
        let mut idle = woken == OUTPUT_BIT
            && !finished
            && found_nothing.is_some_and(|t| t.elapsed() < POLL_INTERVAL);
        let mut gone = false;
        while !idle
            && !short
            && !stopping
            && jobs.len() < args.jobs as usize
            && !limit_reached(started)
        {
            let mut taken = match q.take(1, opts) {
                Ok(taken) => taken,
                // Removed while waited for: wait for it to be made again.
                Err(_) if args.wait && q.is_gone() => {
                    (gone, idle) = (true, true);
                    break;
                }
                Err(e) if out_of_descriptors(&e) && !jobs.is_empty() => {
                    short = true;
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let Some(claimed) = taken.pop() else {
                idle = true;
                found_nothing = Some(Instant::now());
                break;
            };
            found_nothing = None;
            // A command that cannot start is an error: nothing is wrong with the message,
            // which is given back. Out of descriptors, commands running hold them: it
            // waits for one of them to end, rather than stop run and abandon them.
            match runner.spawn(q, claimed) {
                Ok(job) => jobs.push_back(job),
                Err(Failure::Store(e)) if out_of_descriptors(&e) && !jobs.is_empty() => {
                    short = true;
                    break;
                }
                Err(e) => return Err(e),
            }
            started += 1;
        }
        let done = jobs.is_empty() && (stopping || limit_reached(started) || (idle && !args.wait));
        if done {
            runner.show_progress(q, 0, true);
            // Whether run was done anyway when a signal came (without --wait): nothing
            // left that it would have taken.
            let drained = || !args.wait && (limit_reached(started) || nothing_ready(q));
            return Ok(runner.end(drained));
        }
        if gone && jobs.is_empty() {
            watch.forget();
            continue;
        }
        runner.show_progress(q, jobs.len(), false);
        // Sleep until a signal, a child, output, the queue, a lease, a due message, or the
        // next reading of the status line's figures.
        let deadline = jobs
            .iter()
            .map(|job| match job.terminated {
                None => job.started + args.lease,
                Some(t) => t + KILL_GRACE,
            })
            .chain(runner.progress.as_ref().map(Progress::next))
            .min();
        // With no room to claim, only signals, children and output matter, not the queue.
        let full = jobs.len() >= args.jobs as usize || short || stopping || limit_reached(started);
        let mut extra = vec![
            signals.int.as_fd(),
            signals.term.as_fd(),
            signals.chld.as_fd(),
        ];
        extra.extend(runner.relay.fd());
        let ready = watch.sleep(deadline, &extra, !full)?;
        drop(extra);
        woken = ready;
        if ready & OUTPUT_BIT != 0 {
            let mut captures: Vec<&mut Capture> =
                jobs.iter_mut().filter_map(|j| j.capture.as_mut()).collect();
            runner.relay.pump(&mut captures);
        }
        if ready & SIGCHLD_BIT != 0 {
            drain(&signals.chld);
        }
        if ready & (SIGINT_BIT | SIGTERM_BIT) != 0 {
            let pgids: Vec<Pid> = jobs.iter().map(|job| job.pgid).collect();
            stopping |= runner.take_signals(ready, signals, &pgids);
        }
    }
}

/// Raises the soft limit of open descriptors (often 1024) to what `jobs` commands at once
/// need, within the hard limit. Only as far as needed: the commands inherit it, and some
/// programs misbehave with a high one (select(2) takes descriptors below 1024 only). Where
/// the limit stays short, run waits for a command to end before it starts the next.
fn raise_descriptor_limit(jobs: u32) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let need = u64::from(jobs) * DESCRIPTORS_PER_JOB + DESCRIPTORS_OF_RUN;
    let limit = getrlimit(Resource::Nofile);
    let Some(soft) = limit.current else {
        return; // unlimited
    };
    let raised = limit.maximum.map_or(need, |hard| hard.min(need));
    if raised > soft {
        // A limit that cannot be raised is one run copes with.
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(raised),
                maximum: limit.maximum,
            },
        );
    }
}

/// Whether `e` is the process (EMFILE) or the system (ENFILE) out of file descriptors.
fn out_of_descriptors(e: &Error) -> bool {
    use rustix::io::Errno;
    e.raw_os_error()
        .is_some_and(|n| n == Errno::MFILE.raw_os_error() || n == Errno::NFILE.raw_os_error())
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
    /// Shows the status line of `--progress` with this run's counts, the queue's figures
    /// read again when they are due (or `now`). It is only a view: a queue that cannot be
    /// read leaves the figures as they were.
    fn show_progress<Q: Queue>(&mut self, q: &Q, running: usize, now: bool) {
        let counts = Counts {
            done: self.done,
            failed: self.failed,
            running,
        };
        if let Some(progress) = &mut self.progress
            && let Ok(Some(line)) = progress.line(q, counts, now)
        {
            self.relay.show_status(line);
        }
    }

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

    /// Starts the command for `claimed`, a message of `q`. When it cannot start, the
    /// message goes back to the queue, as if never taken.
    fn spawn<Q: Queue>(&mut self, q: &Q, claimed: Q::Claim) -> Result<Job<Q::Claim>, Failure> {
        let (mut cmd, capture, send) = match self.prepare(q, &claimed) {
            Ok(prepared) => prepared,
            Err(e) => {
                q.give_back(vec![claimed])?;
                return Err(e.with_note("the message stays in the queue").into());
            }
        };
        cmd.env("SPOOL_ID", claimed.id().to_string())
            .env("SPOOL_QUEUE", q.name())
            .env("SPOOL_ATTEMPT", claimed.attempts().to_string())
            .envs(self.environment.iter().map(|(k, v)| (k, v)))
            .process_group(0);
        let started_at = SystemTime::now();
        match cmd.spawn() {
            Ok(child) => {
                let pgid = Pid::from_child(&child);
                Ok(Job {
                    claimed,
                    child,
                    pgid,
                    started: Instant::now(),
                    started_at,
                    send,
                    terminated: None,
                    capture,
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

    /// The command for `claimed`, with the payload on its standard input and its output
    /// connected; the payload's size, for the joblog.
    fn prepare<Q: Queue>(
        &mut self,
        q: &Q,
        claimed: &Q::Claim,
    ) -> Result<(Command, Option<Capture>, u64), Error> {
        let payload = q.payload_for_child(claimed)?;
        let send = match self.joblog {
            Some(_) => payload
                .size()
                .map_err(|e| Error::io("stat", "the message's payload", e))?,
            None => 0,
        };
        let stdin = payload
            .into_stdin()
            .map_err(|e| Error::io("open", "the message's payload", e))?;
        let mut cmd = Command::new(&self.args.command[0]);
        cmd.args(&self.args.command[1..]).stdin(stdin);
        let capture = self
            .relay
            .connect(&mut cmd)
            .map_err(|e| Error::io("pipe", "command output", e))?;
        Ok((cmd, capture, send))
    }

    /// A command ended with `status`: passes on the rest of its output, records it in the
    /// joblog, and settles its message (or keeps it, when its output was lost).
    fn finish<Q: Queue>(
        &mut self,
        q: &Q,
        mut job: Job<Q::Claim>,
        status: std::process::ExitStatus,
    ) -> Result<(), Failure> {
        let (received, lost) = match &mut job.capture {
            Some(capture) => {
                self.relay.finish(capture);
                (capture.received(), capture.lost())
            }
            None => (0, false),
        };
        if let Some(log) = &mut self.joblog {
            let entry = joblog::Entry {
                seq: job.claimed.id(),
                start: job.started_at,
                runtime: job.started.elapsed(),
                send: job.send,
                receive: received,
                status,
            };
            if let Some(e) = log.record(&entry) {
                self.relay.say(&format!("spool: {e}\n"));
                self.erred = true;
            }
        }
        if lost {
            self.kept.push(job.claimed.id());
            q.give_back(vec![job.claimed])?;
            return Ok(());
        }
        // A command stopped at the end of its lease did not finish its work, whatever it
        // exits with: the message is retried.
        let ending = match job.terminated {
            Some(_) => Ending::LeaseEnded,
            None => Ending::Exited(status),
        };
        self.judge(q, job.claimed, ending)
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
        let acked = matches!(verdict, Verdict::Ack);
        q.settle(claimed, verdict)?;
        self.done += u64::from(acked);
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
                self.relay.say(&line);
            }
        }
        Ok(())
    }

    /// Ends run: closes the joblog, says which messages were kept for lost output, and
    /// returns the exit status. `drained` says whether run had nothing left to do when a
    /// signal stopped it.
    fn end(&mut self, drained: impl FnOnce() -> bool) -> ExitStatus {
        if let Some(log) = self.joblog.take()
            && let Err(e) = log.close()
        {
            self.relay.say(&format!("spool: {e}\n"));
            self.erred = true;
        }
        if let Some(e) = self.relay.output_failed() {
            let line = format!(
                "spool: write standard output: {}{}\n",
                describe(e),
                kept_note(&self.kept)
            );
            self.relay.say(&line);
            self.erred = true;
        }
        let interrupted = match self.stopped_by {
            Some(stop) if self.passed_on || !drained() => Some(stop),
            _ => None,
        };
        match interrupted {
            Some(Stop::Int) => ExitStatus::Interrupted,
            Some(Stop::Term) => ExitStatus::Terminated,
            None if self.erred => ExitStatus::Error,
            None if self.failed > 0 => ExitStatus::SomeFailed,
            None => ExitStatus::Success,
        }
    }
}

/// ` (message 4 stays in the queue)`, ` (messages 4, 7 and 9 stay in the queue)`, or
/// nothing for no message.
fn kept_note(ids: &[u64]) -> String {
    let list = |ids: &[u64]| {
        ids.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match ids {
        [] => String::new(),
        [id] => format!(" (message {id} stays in the queue)"),
        [first @ .., last] => format!(" (messages {} and {last} stay in the queue)", list(first)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_messages_are_named() {
        assert_eq!(kept_note(&[]), "");
        assert_eq!(kept_note(&[4]), " (message 4 stays in the queue)");
        assert_eq!(kept_note(&[4, 7]), " (messages 4 and 7 stay in the queue)");
        assert_eq!(
            kept_note(&[4, 7, 9]),
            " (messages 4, 7 and 9 stay in the queue)"
        );
    }
}
