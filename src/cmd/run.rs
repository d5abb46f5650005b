//! `spool run`: a consumer that runs a command for each message.
//!
//! Each message is claimed with this process's flock (so it returns to the queue at once
//! if `spool run` is killed), and its file is given to the command as standard input
//! through a fresh open, so the command never holds the lock. The command's exit status
//! decides: 0 acks, 100 fails for good, anything else retries after a backoff that doubles
//! with each attempt, until the attempts are used up. The command runs in its own process
//! group: a terminal's ^C reaches spool, which stops claiming and lets running commands
//! finish; a second signal is passed on to them.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
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

/// Time between SIGTERM and SIGKILL for a command past its lease.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// Longest backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

struct Job<C> {
    claimed: C,
    child: Child,
    pgid: Pid,
    started: Instant,
    terminated: Option<Instant>,
}

struct Runner<'a, Q> {
    queue: &'a Q,
    args: &'a RunArgs,
    /// What the commands need to reach the engine (`SPOOL_DIR`).
    environment: &'a [(&'static str, OsString)],
    failed: u64,
}

/// Runs `spool run`.
pub(super) fn run<E: Engine>(engine: &E, name: &str, args: RunArgs) -> Outcome {
    // Signals arrive as bytes on sockets, so one poll waits for interrupts, for children
    // (SIGCHLD) and for the queue.
    let pair = || UnixStream::pair().and_then(|(r, w)| r.set_nonblocking(true).map(|()| (r, w)));
    let sock_err = |e| Failure::Store(Error::io("socketpair", "signals", e));
    let (int_read, int_write) = pair().map_err(sock_err)?;
    let (chld_read, chld_write) = pair().map_err(sock_err)?;
    let mut registered = Vec::new();
    for (sig, w) in [
        (signal_hook::consts::SIGINT, &int_write),
        (signal_hook::consts::SIGTERM, &int_write),
        (signal_hook::consts::SIGCHLD, &chld_write),
    ] {
        let w = w.try_clone().map_err(sock_err)?;
        let id = signal_hook::low_level::pipe::register(sig, w)
            .map_err(|e| Failure::Store(Error::io("sigaction", "signals", e)))?;
        registered.push(id);
    }
    let result = run_loop(engine, name, &args, &int_read, &chld_read);
    for id in registered {
        signal_hook::low_level::unregister(id);
    }
    result
}

fn run_loop<E: Engine>(
    engine: &E,
    name: &str,
    args: &RunArgs,
    interrupts_in: &UnixStream,
    children: &UnixStream,
) -> Outcome {
    let mut watch = Watch::new(engine, name, true);
    let environment = engine.environment();
    let mut jobs: VecDeque<Job<<E::Queue as Queue>::Claim>> = VecDeque::new();
    let mut started = 0u64;
    let mut stopping = false;
    let mut interrupts = 0;
    let mut failed = 0u64;
    let opts = TakeOptions {
        hold: Hold::Process,
        max_attempts: Some(args.max_attempts),
    };
    loop {
        let Some(q) = watch.queue()? else {
            if !args.wait {
                // Nothing to run, as on an empty queue (status 0), but a mistyped name
                // must not pass for an empty queue.
                say_missing(name);
                return Ok(ExitStatus::Success);
            }
            if stopping {
                return Ok(ExitStatus::Success);
            }
            if watch.sleep(None, &[interrupts_in.as_fd()], true)? & 1 != 0 {
                return Ok(ExitStatus::Success); // interrupted before there was anything to do
            }
            continue;
        };
        let mut runner = Runner {
            queue: q,
            args,
            environment: &environment,
            failed: 0,
        };
        // Judge what finished, and enforce the time limit of what did not.
        let mut i = 0;
        while i < jobs.len() {
            let job = &mut jobs[i];
            match job.child.try_wait() {
                Ok(Some(status)) => {
                    let job = jobs.remove(i).expect("index in range");
                    // A command stopped at the end of its lease did not finish its work,
                    // whatever it exits with: the message is retried.
                    let status = if job.terminated.is_some() {
                        None
                    } else {
                        Some(status)
                    };
                    runner.judge(job.claimed, status)?;
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
        failed += runner.failed;
        runner.failed = 0;
        // Claim and start more.
        let limit_reached = |started: u64| args.max.is_some_and(|m| started >= m);
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
            match runner.spawn(claimed) {
                Ok(job) => jobs.push_back(job),
                Err(f) => {
                    // The command cannot start: nothing is wrong with the message.
                    return Err(f);
                }
            }
        }
        let done = jobs.is_empty() && (stopping || limit_reached(started) || (idle && !args.wait));
        if done {
            return Ok(if failed == 0 {
                ExitStatus::Success
            } else {
                ExitStatus::SomeFailed
            });
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
        let ready = watch.sleep(deadline, &[interrupts_in.as_fd(), children.as_fd()], !full)?;
        if ready & 2 != 0 {
            drain(children);
        }
        if ready & 1 != 0 {
            for _ in 0..drain(interrupts_in) {
                interrupts += 1;
                if interrupts == 1 {
                    stopping = true;
                } else {
                    for job in &jobs {
                        let _ = kill_process_group(job.pgid, Signal::TERM);
                    }
                }
            }
        }
    }
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

impl<Q: Queue> Runner<'_, Q> {
    fn spawn(&self, claimed: Q::Claim) -> Result<Job<Q::Claim>, Failure> {
        let stdin = self
            .queue
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
            .env("SPOOL_QUEUE", self.queue.name())
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
                self.queue.give_back(vec![claimed])?;
                Err(Failure::Store(
                    Error::io("run", command, e).with_note("the message stays in the queue"),
                ))
            }
        }
    }

    /// Judges a message by its command's exit status (ack, retry or fail) and settles it
    /// so. `status` is `None` for a command stopped at the end of its lease.
    fn judge(
        &mut self,
        claimed: Q::Claim,
        status: Option<std::process::ExitStatus>,
    ) -> Result<(), Failure> {
        let why = match status.map(|s| (s.code(), s.signal())) {
            None => "lease-ended".to_string(),
            Some((Some(c), _)) => format!("exit-{c}"),
            Some((_, Some(s))) => format!("signal-{s}"),
            Some(_) => "unknown".to_string(),
        };
        let reason = format!("attempts-{why}");
        let verdict = match status.and_then(|s| s.code()) {
            Some(0) => Verdict::Ack,
            Some(100) => Verdict::Fail { reason: "exit-100" },
            _ => {
                if claimed.attempts() >= self.args.max_attempts {
                    Verdict::Fail { reason: &reason }
                } else {
                    let exp = claimed.attempts().saturating_sub(1).min(20);
                    let delay = self.args.backoff.saturating_mul(1 << exp).min(MAX_BACKOFF);
                    Verdict::Retry {
                        due_ms: after(now_ms(), delay.as_millis() as u64),
                    }
                }
            }
        };
        if !matches!(verdict, Verdict::Ack) {
            self.failed += 1;
        }
        self.queue.settle(claimed, verdict)?;
        Ok(())
    }
}
