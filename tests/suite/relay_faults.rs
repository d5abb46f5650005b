//! `spool relay` under faults: SIGKILLed at random in each direction, killed at each
//! system call in turn (strace), its PostgreSQL connection terminated at each statement
//! in turn, the database stopped and the network cut for 30 s under a stream of pushes,
//! one-shot runs through an outage (exit 75, as cron sees it), two relays of one source,
//! and the systemd unit of contrib/ run as systemd runs it.
//!
//! Every test judges the same way: each payload is unique (`m0000417p5`: the 418th
//! message, priority 5), and after the dust settles every message pushed is at the
//! destination exactly once (0 lost, 0 duplicated), in the source's order within a
//! priority (a relay keeps its source's order, and a killed batch sent again adds
//! nothing, so the order of first arrival is the source's), and the source is empty.
//!
//! Tests that need a server of their own, strace or network namespaces (root and
//! iproute2) skip visibly without them, and fail under CI=true. Servers, namespaces and
//! relays are stopped by guards, also when a test fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::harness::{
    BIN, Cluster, Cmd, Fixture, Netns, Output, Rng, Running, catches, is_one_spool_line,
    json_lines, kill_group, loader_calls, pg, require, require_strace, send_signal, skip,
    tool_works, wait_until,
};

/// How long the random kills go on, in each direction.
const CHAOS: Duration = Duration::from_secs(60);

/// How long the database is away in the outage tests.
const OUTAGE: Duration = Duration::from_secs(30);

/// The messages of a round of the step-by-step tests, and the batch they go in.
const ROUND: usize = 6;
const ROUND_BATCH: &str = "2";

/// At most this many occurrences of one system call are killed at (spread evenly over
/// all, the first and the last included).
const PER_CALL: usize = 40;

// ---------------------------------------------------------------------------------------
// The places, the messages, the judgement.

/// Where one end of a relay is.
#[derive(Clone)]
enum Place {
    Dir(PathBuf),
    Url(String),
}

impl Place {
    /// What `--to` and `--from` take.
    fn arg(&self) -> String {
        match self {
            Place::Dir(dir) => dir.display().to_string(),
            Place::Url(url) => url.clone(),
        }
    }

    /// `spool --dir ROOT -q QUEUE` or `spool --url URL -q QUEUE`.
    fn cmd(&self, queue: &str) -> Cmd {
        match self {
            Place::Dir(dir) => Cmd::at(dir),
            Place::Url(url) => Cmd::bare().args(["--url", url]),
        }
        .args(["-q", queue])
    }

    /// Pushes `messages` in one `push --lines`, at `priority`.
    #[track_caller]
    fn push(&self, queue: &str, messages: &[String], priority: u8) {
        let lines: String = messages.iter().map(|m| format!("{m}\n")).collect();
        self.cmd(queue)
            .args(["push", "--lines", "--priority", &priority.to_string()])
            .stdin(lines)
            .run()
            .success();
    }

    /// `len`.
    #[track_caller]
    fn len(&self, queue: &str) -> u64 {
        let out = self.cmd(queue).arg("len").run();
        out.success();
        out.text().trim_end().parse().expect("len prints a number")
    }

    /// Every message of the queue in any state (`list --state all --json`).
    #[track_caller]
    fn all(&self, queue: &str) -> Vec<serde_json::Value> {
        let out = self
            .cmd(queue)
            .args(["list", "--state", "all", "--json"])
            .run();
        if out.code == 2 && out.stderr.contains("does not exist") {
            return Vec::new();
        }
        out.success();
        json_lines(&out.stdout)
    }

    /// Pops everything, in the order a consumer gets it.
    #[track_caller]
    fn drain(&self, queue: &str) -> Vec<String> {
        let mut all = Vec::new();
        loop {
            let out = self
                .cmd(queue)
                .args(["pop", "-n", "100000", "--null"])
                .run();
            match out.code {
                0 => {
                    assert!(out.stderr.is_empty(), "{out:?}");
                    all.extend(
                        out.stdout
                            .split(|&b| b == 0)
                            .filter(|s| !s.is_empty())
                            .map(|s| String::from_utf8_lossy(s).into_owned()),
                    );
                }
                1 => return all,
                2 if out.stderr.contains("does not exist") => return all,
                _ => panic!("drain:\n{out:?}"),
            }
        }
    }
}

impl Place {
    /// The payloads of every message of the queue in the order a consumer would get them
    /// (`list --state all --json`: ready ones in take order), without consuming them (a
    /// pop of tens of thousands takes long in a debug build); the entries not ready are
    /// listed apart.
    #[track_caller]
    fn listed(&self, queue: &str) -> (Vec<String>, Vec<serde_json::Value>) {
        let (ready, other): (Vec<_>, Vec<_>) = self
            .all(queue)
            .into_iter()
            .partition(|m| m["state"] == "ready");
        let payloads = ready
            .iter()
            .map(|m| m["preview"].as_str().expect("a preview").to_string())
            .collect();
        (payloads, other)
    }
}

/// A source queue and a destination queue, and the relay between them.
#[derive(Clone)]
struct Route {
    src: Place,
    src_q: &'static str,
    dst: Place,
    dst_q: &'static str,
}

impl Route {
    /// `spool relay ARGS…`, run at the directory's end: `--to` from a directory source,
    /// else `--from` into a directory destination.
    fn relay(&self, args: &[&str]) -> Cmd {
        match (&self.src, &self.dst) {
            (Place::Dir(_), _) => self.src.cmd(self.src_q).args([
                "relay",
                "--to",
                &self.dst.arg(),
                "--to-queue",
                self.dst_q,
            ]),
            (Place::Url(_), Place::Dir(_)) => self.dst.cmd(self.dst_q).args([
                "relay",
                "--from",
                &self.src.arg(),
                "--from-queue",
                self.src_q,
            ]),
            (Place::Url(_), Place::Url(_)) => unreachable!("no test relays between databases"),
        }
        .args(args)
    }

    /// `SOURCE -> DESTINATION` as the relay's lines show it (the URLs hold no password).
    fn shown(&self) -> String {
        format!(
            "{} at {} -> {} at {}",
            self.src_q,
            self.src.arg(),
            self.dst_q,
            self.dst.arg()
        )
    }

    /// Why the source is not empty, if it is not.
    fn source_left(&self) -> Option<String> {
        let left = self.src.all(self.src_q);
        (!left.is_empty()).then(|| {
            format!(
                "{} left at the source: {:?}",
                left.len(),
                &left[..left.len().min(5)]
            )
        })
    }
}

/// The messages pushed to a source: unique payloads, numbered in push order.
#[derive(Default)]
struct Ledger {
    pushed: Vec<String>,
}

impl Ledger {
    /// `count` new payloads at `priority`, recorded.
    fn next(&mut self, count: usize, priority: u8) -> Vec<String> {
        let first = self.pushed.len();
        let new: Vec<String> = (first..first + count)
            .map(|i| payload(i, priority))
            .collect();
        self.pushed.extend(new.iter().cloned());
        new
    }
}

/// The `i`th payload, at `priority`.
fn payload(i: usize, priority: u8) -> String {
    format!("m{i:07}p{priority}")
}

/// `(number, priority)` of a payload.
fn parse(p: &str) -> Option<(usize, u8)> {
    let (n, prio) = p.strip_prefix('m')?.split_once('p')?;
    Some((n.parse().ok()?, prio.parse().ok()?))
}

/// What arrived, against what was pushed.
#[derive(Debug, Default)]
struct Tally {
    pushed: usize,
    arrived: usize,
    lost: Vec<String>,
    duplicated: Vec<(String, usize)>,
    unknown: Vec<String>,
    /// Payloads that came after a later one of their priority.
    out_of_order: Vec<String>,
}

impl Tally {
    /// `arrived` in the order a consumer of the destination got them.
    fn of(pushed: &[String], arrived: &[String]) -> Tally {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for m in arrived {
            *counts.entry(m.as_str()).or_default() += 1;
        }
        let known: std::collections::HashSet<&str> = pushed.iter().map(String::as_str).collect();
        let mut last: HashMap<u8, usize> = HashMap::new();
        let mut out_of_order = Vec::new();
        for m in arrived {
            if let Some((n, prio)) = parse(m)
                && let Some(before) = last.insert(prio, n)
                && before >= n
            {
                out_of_order.push(format!("{m} after {}", payload(before, prio)));
            }
        }
        let mut duplicated: Vec<(String, usize)> = counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(m, n)| (m.to_string(), *n))
            .collect();
        duplicated.sort();
        Tally {
            pushed: pushed.len(),
            arrived: arrived.len(),
            lost: pushed
                .iter()
                .filter(|m| !counts.contains_key(m.as_str()))
                .cloned()
                .collect(),
            duplicated,
            unknown: counts
                .keys()
                .filter(|m| !known.contains(*m))
                .map(|m| m.to_string())
                .collect(),
            out_of_order,
        }
    }

    /// What went wrong, in a few lines; `None` when nothing did.
    fn problems(&self) -> Option<String> {
        let few = |v: &[String]| v[..v.len().min(10)].join(", ");
        let mut p = Vec::new();
        if !self.lost.is_empty() {
            p.push(format!("{} lost: {}", self.lost.len(), few(&self.lost)));
        }
        if !self.duplicated.is_empty() {
            p.push(format!(
                "{} duplicated: {:?}",
                self.duplicated.len(),
                &self.duplicated[..self.duplicated.len().min(10)]
            ));
        }
        if !self.unknown.is_empty() {
            p.push(format!(
                "{} never pushed: {}",
                self.unknown.len(),
                few(&self.unknown)
            ));
        }
        if !self.out_of_order.is_empty() {
            p.push(format!(
                "{} out of order: {}",
                self.out_of_order.len(),
                few(&self.out_of_order)
            ));
        }
        (!p.is_empty()).then(|| {
            format!(
                "{} pushed, {} arrived: {}",
                self.pushed,
                self.arrived,
                p.join("; ")
            )
        })
    }
}

/// Drains the destination and judges it, and the source; panics with `context` (the seed,
/// what was done) when anything is wrong.
#[track_caller]
fn judge(route: &Route, ledger: &Ledger, context: &str) -> Tally {
    let arrived = route.dst.drain(route.dst_q);
    let tally = Tally::of(&ledger.pushed, &arrived);
    let mut problems: Vec<String> = tally.problems().into_iter().collect();
    problems.extend(route.source_left());
    assert!(problems.is_empty(), "{context}: {}", problems.join("; "));
    tally
}

/// Like [`judge`], reading the destination's listing instead of draining it.
#[track_caller]
fn judge_listed(route: &Route, ledger: &Ledger, context: &str) -> Tally {
    let (arrived, not_ready) = route.dst.listed(route.dst_q);
    let tally = Tally::of(&ledger.pushed, &arrived);
    let mut problems: Vec<String> = tally.problems().into_iter().collect();
    if !not_ready.is_empty() {
        problems.push(format!(
            "{} not ready at the destination: {:?}",
            not_ready.len(),
            &not_ready[..not_ready.len().min(5)]
        ));
    }
    problems.extend(route.source_left());
    assert!(problems.is_empty(), "{context}: {}", problems.join("; "));
    tally
}

/// A relay (or any spool) in the background, its process group killed when dropped (a
/// failed test too).
struct Bg(Option<Running>);

impl Bg {
    fn spawn(cmd: Cmd) -> Bg {
        Bg(Some(cmd.spawn()))
    }

    fn pid(&self) -> u32 {
        self.0.as_ref().expect("running").pid()
    }

    fn exited(&mut self) -> bool {
        self.0.as_mut().expect("running").exited()
    }

    /// Waits for it to exit (within `limit`); whether it did.
    fn wait_exit(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while !self.exited() {
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Its output (it has exited, or is about to).
    fn finish(mut self) -> Output {
        self.0.take().expect("running").finish()
    }

    /// Kills its group and returns its output.
    fn kill(mut self) -> Output {
        let running = self.0.take().expect("running");
        kill_group(running.pid() as i32);
        running.finish()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(mut running) = self.0.take() {
            kill_group(running.pid() as i32);
            let _ = running.child.wait();
        }
    }
}

/// Sets a flag when dropped, so that helper threads stop when the test panics too.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A private cluster, or `None` after skipping visibly.
fn private_cluster() -> Option<Cluster> {
    match Cluster::private() {
        Ok(c) => Some(c),
        Err(why) => {
            skip(&why);
            None
        }
    }
}

/// The relay's line saying another relay holds its source.
fn another_relay(out: &Output) -> bool {
    out.code == 2
        && is_one_spool_line(&out.stderr)
        && out.stderr.contains("another relay is running")
}

/// Runs the relay without faults to completion: exit 0, nothing on standard error. A
/// PostgreSQL source's relay lock is released when the server ends the session of a
/// relay killed just before, which may take a moment: until then this one is refused.
#[track_caller]
fn relay_clean(route: &Route, args: &[&str], context: &str) {
    let start = Instant::now();
    loop {
        let out = route.relay(args).run();
        if another_relay(&out) && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        assert!(
            out.code == 0 && out.stderr.is_empty(),
            "{context}: the relay without faults:\n{out:?}"
        );
        return;
    }
}

// ---------------------------------------------------------------------------------------
// 1-3. SIGKILL at random.

/// Messages pushed before the kills begin, and the level below which more are pushed.
const CHAOS_START: usize = 3000;
const CHAOS_LOW: u64 = 1000;

/// For [`CHAOS`]: starts `relay --batch 50` (one-shot or `--wait`, at random), SIGKILLs
/// it after 0–300 ms, and between kills pushes more (a few, and 500 whenever fewer than
/// 1,000 wait), at priority 0 or 5; then runs the relay to completion and judges.
fn chaos(route: &Route, name: &str) {
    let (mut rng, seed) = Rng::from_clock();
    eprintln!("{name}: seed {seed}");
    let mut ledger = Ledger::default();
    let priority = |rng: &mut Rng| if rng.range(0, 4) == 0 { 5 } else { 0 };
    for _ in 0..CHAOS_START / 500 {
        let p = priority(&mut rng);
        route.src.push(route.src_q, &ledger.next(500, p), p);
    }
    let start = Instant::now();
    let (mut kills, mut finished, mut refused) = (0u32, 0u32, 0u32);
    let mut problems = Vec::new();
    while start.elapsed() < CHAOS {
        let wait = rng.range(0, 2) == 0;
        let mut args = vec!["--batch", "50"];
        if wait {
            args.push("--wait");
        }
        let mut relay = Bg::spawn(route.relay(&args));
        std::thread::sleep(Duration::from_millis(rng.range(0, 301)));
        if relay.exited() {
            let out = relay.finish();
            if another_relay(&out) {
                refused += 1;
            } else if !wait && out.code == 0 && out.stderr.is_empty() {
                finished += 1;
            } else {
                problems.push(format!("a relay not killed:\n{out:?}"));
            }
        } else {
            send_signal(relay.pid(), Signal::KILL);
            let out = relay.finish();
            if out.killed() {
                kills += 1;
            } else if !(another_relay(&out) || out.code == 0 && out.stderr.is_empty()) {
                problems.push(format!("a relay killed:\n{out:?}"));
            }
        }
        let p = priority(&mut rng);
        let more = if route.src.len(route.src_q) < CHAOS_LOW {
            500
        } else {
            rng.range(0, 20) as usize
        };
        if more > 0 {
            route.src.push(route.src_q, &ledger.next(more, p), p);
        }
    }
    let context = format!(
        "{name} (seed {seed}): {} messages, {kills} kills, {finished} relays finished, \
         {refused} refused",
        ledger.pushed.len()
    );
    assert!(problems.is_empty(), "{context}:\n{}", problems.join("\n"));
    relay_clean(route, &["--batch", "50"], &context);
    let tally = judge_listed(route, &ledger, &context);
    eprintln!(
        "{context}; {} arrived: 0 lost, 0 duplicated, in order",
        tally.arrived
    );
    assert!(
        kills > 10,
        "{context}: too few kills: the test did not test"
    );
}

/// Local → PostgreSQL, SIGKILL at random.
#[test]
fn killed_at_random_local_to_postgres() {
    let Some(pg) = pg() else { return };
    let f = Fixture::new();
    let route = Route {
        src: Place::Dir(f.root().to_path_buf()),
        src_q: "outbox",
        dst: Place::Url(pg.url()),
        dst_q: "jobs",
    };
    chaos(&route, "relay killed at random, local -> PostgreSQL");
}

/// PostgreSQL → local, SIGKILL at random.
#[test]
fn killed_at_random_postgres_to_local() {
    let Some(pg) = pg() else { return };
    let f = Fixture::new();
    let route = Route {
        src: Place::Url(pg.url()),
        src_q: "work",
        dst: Place::Dir(f.root().to_path_buf()),
        dst_q: "inbox",
    };
    chaos(&route, "relay killed at random, PostgreSQL -> local");
}

/// Local → another spool directory, SIGKILL at random.
#[test]
fn killed_at_random_local_to_local() {
    let f = Fixture::new();
    let route = Route {
        src: Place::Dir(f.root().to_path_buf()),
        src_q: "outbox",
        dst: Place::Dir(f.outside("other-spool")),
        dst_q: "outbox",
    };
    chaos(&route, "relay killed at random, local -> local");
}

// ---------------------------------------------------------------------------------------
// 4. SIGKILL at each system call in turn.

/// How many times each system call was made in a strace of `-f`.
fn call_counts(trace: &Path) -> HashMap<String, u32> {
    let mut counts = HashMap::new();
    for line in std::fs::read_to_string(trace).expect("the trace").lines() {
        let Some(call) = line.split_whitespace().nth(1) else {
            continue;
        };
        if let Some((name, _)) = call.split_once('(')
            && !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            *counts.entry(name.to_string()).or_default() += 1;
        }
    }
    counts
}

/// Up to `max` of `first..=last`, spread evenly, the first and the last included.
fn spread(first: u32, last: u32, max: usize) -> Vec<u32> {
    let all: Vec<u32> = (first..=last).collect();
    if all.len() <= max {
        return all;
    }
    let mut picked: Vec<u32> = (0..max)
        .map(|i| all[i * (all.len() - 1) / (max - 1)])
        .collect();
    picked.dedup();
    picked
}

/// Pushes a round of [`ROUND`] messages (priorities 0 and 5) to the source.
fn push_round(route: &Route, ledger: &mut Ledger) {
    route.src.push(route.src_q, &ledger.next(ROUND / 2, 0), 0);
    route
        .src
        .push(route.src_q, &ledger.next(ROUND - ROUND / 2, 5), 5);
}

/// For each of `calls` and each of its occurrences in a relay of a round (up to
/// [`PER_CALL`] of them): a round pushed, the relay killed at that call, a relay without
/// faults, the round judged.
fn killed_at_each_call(route: &Route, calls: &[&str], name: &str) {
    let args = ["--batch", ROUND_BATCH];
    let mut ledger = Ledger::default();
    // A first round makes the destination queue; the second is counted.
    push_round(route, &mut ledger);
    relay_clean(route, &args, name);
    judge(route, &ledger, name);
    let mut ledger = Ledger::default();
    push_round(route, &mut ledger);
    let tmp = tempfile::tempdir().expect("tempdir");
    let trace = tmp.path().join("trace");
    let out = route
        .relay(&args)
        .wrap([
            "strace",
            "-f",
            "-qq",
            "-o",
            trace.to_str().expect("UTF-8 path"),
        ])
        .run();
    out.success();
    judge(route, &ledger, name);
    let counts = call_counts(&trace);

    let start = Instant::now();
    let (mut rounds, mut killed) = (0u32, 0u32);
    let mut covered = Vec::new();
    for &call in calls {
        let made = counts.get(call).copied().unwrap_or(0);
        let first = loader_calls(call) + 1;
        if made < first {
            covered.push(format!("{call} 0"));
            continue;
        }
        let picked = spread(first, made, PER_CALL);
        covered.push(format!("{call} {}/{}", picked.len(), made + 1 - first));
        for n in picked {
            let mut ledger = Ledger::default();
            push_round(route, &mut ledger);
            let context = format!("{name}: killed at {call} #{n} of {made}");
            let out = route
                .relay(&args)
                .kill_at(call, n)
                .limit(Duration::from_secs(60))
                .may_hang()
                .run();
            rounds += 1;
            if out.killed() {
                killed += 1;
            } else {
                // The call came fewer times in this run: it ran to the end.
                assert!(
                    out.code == 0 && out.stderr.is_empty(),
                    "{context}: neither killed nor done:\n{out:?}"
                );
            }
            relay_clean(route, &args, &context);
            judge(route, &ledger, &context);
        }
    }
    eprintln!(
        "{name}: {rounds} rounds of {ROUND} messages in {:?}, {killed} relays killed \
         (calls: killed at/made {}); 0 lost, 0 duplicated, in order",
        start.elapsed(),
        covered.join(", ")
    );
    assert!(
        killed * 2 > rounds,
        "{name}: only {killed} of {rounds} relays killed: the test did not test"
    );
}

/// The system calls of the local side, where a kill leaves a step half done.
const LOCAL_CALLS: &[&str] = &[
    "renameat2",
    "unlinkat",
    "fsync",
    "fdatasync",
    "syncfs",
    "write",
    "pwrite64",
    "ftruncate",
    "openat",
    "openat2",
    "mkdirat",
    "flock",
];

/// Local → PostgreSQL, SIGKILL at each call of the local side and of the connection.
#[test]
fn killed_at_each_call_local_to_postgres() {
    if !require_strace() {
        return;
    }
    let Some(pg) = pg() else { return };
    let f = Fixture::new();
    let route = Route {
        src: Place::Dir(f.root().to_path_buf()),
        src_q: "outbox",
        dst: Place::Url(pg.url()),
        dst_q: "jobs",
    };
    let mut calls = LOCAL_CALLS.to_vec();
    calls.extend(["sendto", "recvfrom"]);
    killed_at_each_call(
        &route,
        &calls,
        "relay killed at each call, local -> PostgreSQL",
    );
}

/// Local → another spool directory, SIGKILL at each call.
#[test]
fn killed_at_each_call_local_to_local() {
    if !require_strace() {
        return;
    }
    let f = Fixture::new();
    let route = Route {
        src: Place::Dir(f.root().to_path_buf()),
        src_q: "outbox",
        dst: Place::Dir(f.outside("other-spool")),
        dst_q: "outbox",
    };
    killed_at_each_call(
        &route,
        LOCAL_CALLS,
        "relay killed at each call, local -> local",
    );
}

// ---------------------------------------------------------------------------------------
// 5. The connection terminated at each statement in turn.

/// The occurrences of `sendto` that send a message to the server (MSG_NOSIGNAL; the
/// others wake the signal pipes) in a strace of `-e trace=sendto`.
fn statements(trace: &Path) -> Vec<u32> {
    std::fs::read_to_string(trace)
        .expect("the trace")
        .lines()
        .filter(|l| l.contains("sendto("))
        .enumerate()
        .filter(|(_, l)| l.contains("MSG_NOSIGNAL"))
        .map(|(i, _)| i as u32 + 1)
        .collect()
}

/// Terminates the spool backends of `client`'s database; how many.
fn terminate(client: &mut postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'spool' AND datname = current_database()",
            &[],
        )
        .expect("pg_terminate_backend")
        .get(0)
}

/// For each message the relay sends to the server in a relay of a round (its start-up,
/// then the statements of each batch): a round pushed; the relay held by strace just
/// after sending it; its backend terminated; the relay let go (it exits 75, or 0 when
/// nothing was left to say); a relay without faults; the round judged.
fn terminated_at_each_statement(route: &Route, url: &str, name: &str) {
    let args = ["--batch", ROUND_BATCH];
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    let mut ledger = Ledger::default();
    push_round(route, &mut ledger);
    relay_clean(route, &args, name);
    judge(route, &ledger, name);
    let tmp = tempfile::tempdir().expect("tempdir");
    let trace = tmp.path().join("trace");
    let mut ledger = Ledger::default();
    push_round(route, &mut ledger);
    route
        .relay(&args)
        .wrap([
            "strace",
            "-f",
            "-qq",
            "-o",
            trace.to_str().expect("UTF-8 path"),
            "-e",
            "trace=sendto",
        ])
        .run()
        .success();
    judge(route, &ledger, name);
    let sent = statements(&trace);
    assert!(sent.len() > 5, "{name}: the relay sent {sent:?}");

    let start = Instant::now();
    let (mut held, mut exit75, mut exit0) = (0, 0, 0);
    for (k, &n) in sent.iter().enumerate() {
        let context = format!(
            "{name}: terminated after message {} of {}",
            k + 1,
            sent.len()
        );
        let mut ledger = Ledger::default();
        push_round(route, &mut ledger);
        let _ = std::fs::remove_file(&trace);
        let mut relay = Bg::spawn(
            route
                .relay(&args)
                .pause_after_traced("sendto", n, 2, &trace),
        );
        let paused = || std::fs::read_to_string(&trace).is_ok_and(|t| t.contains("(DELAYED)"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !paused() && !relay.exited() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if paused() && !relay.exited() && terminate(&mut client) > 0 {
            held += 1;
        }
        assert!(
            relay.wait_exit(Duration::from_secs(60)),
            "{context}: the relay does not exit"
        );
        let out = relay.finish();
        match out.code {
            0 if out.stderr.is_empty() => exit0 += 1,
            75 if is_one_spool_line(&out.stderr)
                && out
                    .stderr
                    .starts_with(&format!("spool: relay {}: ", route.shown())) =>
            {
                exit75 += 1
            }
            _ => panic!("{context}: exit 75 with one line, or 0:\n{out:?}"),
        }
        relay_clean(route, &args, &context);
        judge(route, &ledger, &context);
    }
    eprintln!(
        "{name}: {} rounds of {ROUND} messages in {:?}; the backend terminated while the \
         relay was held {held} times; the relay exited 75 {exit75} times, 0 {exit0} times; \
         0 lost, 0 duplicated, in order",
        sent.len(),
        start.elapsed()
    );
    assert!(
        held * 4 >= sent.len() * 3,
        "{name}: the relay was held and its backend terminated only {held} of {} times",
        sent.len()
    );
    assert!(exit75 > 0, "{name}: no relay saw its connection end");
}

/// Local → PostgreSQL: the destination's connection terminated at each statement.
#[test]
fn connection_terminated_at_each_statement_local_to_postgres() {
    if !require_strace() {
        return;
    }
    let Some(pg) = pg() else { return };
    let f = Fixture::new();
    let route = Route {
        src: Place::Dir(f.root().to_path_buf()),
        src_q: "outbox",
        dst: Place::Url(pg.url()),
        dst_q: "jobs",
    };
    terminated_at_each_statement(
        &route,
        &pg.url(),
        "connection terminated at each statement, local -> PostgreSQL",
    );
}

/// PostgreSQL → local: the source's connection terminated at each statement.
#[test]
fn connection_terminated_at_each_statement_postgres_to_local() {
    if !require_strace() {
        return;
    }
    let Some(pg) = pg() else { return };
    let f = Fixture::new();
    let route = Route {
        src: Place::Url(pg.url()),
        src_q: "work",
        dst: Place::Dir(f.root().to_path_buf()),
        dst_q: "inbox",
    };
    terminated_at_each_statement(
        &route,
        &pg.url(),
        "connection terminated at each statement, PostgreSQL -> local",
    );
}

// ---------------------------------------------------------------------------------------
// 6-7. Outages under a stream of pushes.

/// The relay's lines during an outage: one `down:`, then one `up again after`, perhaps
/// lines of progress, and last `stopped; forwarded N`; what is wrong, if anything.
fn check_outage_lines(stderr: &str, route: &str, forwarded: usize) -> Result<(), String> {
    let prefix = format!("spool: relay {route}: ");
    let lines: Vec<&str> = stderr.lines().collect();
    let mut states = Vec::new();
    for line in &lines {
        let Some(what) = line.strip_prefix(&prefix) else {
            return Err(format!("a line not of the relay: {line:?}"));
        };
        if what.starts_with("down since ") && what.ends_with("; trying again") {
            states.push("down");
        } else if what.starts_with("up again after ") {
            states.push("up");
        } else if what.starts_with("forwarded ") {
            // A line of progress.
        } else if what.starts_with("stopped; forwarded ") {
            states.push("stopped");
        } else {
            return Err(format!("an unexpected line: {line:?}"));
        }
    }
    if states != ["down", "up", "stopped"] {
        return Err(format!(
            "expected one down:, one up again, then stopped: {states:?}"
        ));
    }
    let last = format!("{prefix}stopped; forwarded {forwarded}");
    if lines.last() != Some(&last.as_str()) {
        return Err(format!("the last line is not {last:?}"));
    }
    Ok(())
}

/// The relay `relay` (`--wait`, its route shown as `shown`) forwards from the route's
/// source to its destination while a producer pushes to the source one `spool push` at a
/// time, every one of which must exit 0; `cut` takes the destination away for [`OUTAGE`], `mend` brings it back. Then: the
/// relay caught up within `catch_up`, still runs, said it was down once and up once, and
/// stops on SIGTERM (killed by it) saying it forwarded as many as were pushed; each once,
/// in order.
fn through_outage(
    relay: Cmd,
    route: &Route,
    shown: &str,
    cut: &dyn Fn(),
    mend: &dyn Fn(),
    catch_up: Duration,
    name: &str,
) {
    let mut running = Bg::spawn(relay);
    let pushed: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let failed: Mutex<Vec<Output>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let dst_len = || {
        let out = route.dst.cmd(route.dst_q).arg("len").run();
        if out.code == 0 {
            out.text().trim_end().parse::<usize>().unwrap_or(0)
        } else {
            0
        }
    };
    let mut outage = Duration::ZERO;
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        scope.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let m = payload(i, 0);
                let out = route.src.cmd(route.src_q).args(["push", &m]).run();
                if out.code == 0 && out.stderr.is_empty() {
                    pushed.lock().unwrap().push(m);
                    i += 1;
                } else {
                    failed.lock().unwrap().push(out);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        wait_until("the relay forwards", Duration::from_secs(60), || {
            dst_len() > 0
        });
        std::thread::sleep(Duration::from_secs(2));
        let began = Instant::now();
        cut();
        std::thread::sleep(OUTAGE);
        mend();
        outage = began.elapsed();
        std::thread::sleep(Duration::from_secs(5));
        stop.store(true, Ordering::SeqCst);
    });
    let pushed = pushed.into_inner().unwrap();
    let failed = failed.into_inner().unwrap();
    assert!(failed.is_empty(), "{name}: pushes failed: {failed:?}");
    let start = Instant::now();
    while dst_len() != pushed.len() {
        if start.elapsed() > catch_up || running.exited() {
            let out = running.kill();
            panic!(
                "{name}: {} pushed, {} forwarded after {:?}:\n{out:?}",
                pushed.len(),
                dst_len(),
                start.elapsed()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let caught_up = start.elapsed();
    assert!(!running.exited(), "{name}: the relay stopped");
    send_signal(running.pid(), Signal::TERM);
    assert!(
        running.wait_exit(Duration::from_secs(60)),
        "{name}: the relay does not stop on SIGTERM"
    );
    let out = running.finish();
    assert_eq!(
        out.signal(),
        Some(Signal::TERM.as_raw()),
        "{name}: killed by SIGTERM:\n{out:?}"
    );
    if let Err(e) = check_outage_lines(&out.stderr, shown, pushed.len()) {
        panic!("{name}: {e}:\n{out:?}");
    }
    let ledger = Ledger { pushed };
    let tally = judge_listed(route, &ledger, name);
    eprintln!(
        "{name}: {} pushed (every push exited 0), outage {:?}, caught up {:?} after it \
         ended, {} arrived: 0 lost, 0 duplicated, in order; the relay's lines:\n{}",
        ledger.pushed.len(),
        outage,
        caught_up + Duration::from_secs(5),
        tally.arrived,
        out.stderr
    );
}

/// The database stopped (`pg_ctl stop -m fast`) for 30 s and started again.
#[test]
fn database_stopped_for_30s_under_pushes() {
    let Some(cluster) = private_cluster() else {
        return;
    };
    let db = cluster.create_database();
    let url = cluster.url(&db);
    let f = Fixture::new();
    let route = Route {
        src: Place::Dir(f.root().to_path_buf()),
        src_q: "outbox",
        dst: Place::Url(url.clone()),
        dst_q: "outbox",
    };
    let relay = f
        .cmd()
        .args(["-q", "outbox", "relay", "--wait", "--to", &url]);
    through_outage(
        relay,
        &route,
        &route.shown(),
        &|| cluster.stop("fast").expect("stop the server"),
        &|| cluster.start().expect("start the server"),
        Duration::from_secs(120),
        "database stopped for 30 s",
    );
}

/// The relay in a network namespace, the database on the host's end of its link; the
/// link cut for 30 s and restored.
#[test]
fn network_cut_for_30s_under_pushes() {
    if !require(true, &[("ip", &["-V"])]) {
        return;
    }
    if crate::harness::server_bin_dir().is_none() {
        return skip("PostgreSQL's server is not installed");
    }
    let n = std::process::id() % 60 * 4;
    let ns = Netns::new(
        &format!("sr{}", std::process::id() % 100_000),
        &format!("233.{n}"),
    )
    .unwrap_or_else(|e| panic!("namespace: {e}"));
    let (cluster, port) =
        Cluster::private_on_tcp(&[&ns.host_addr]).unwrap_or_else(|e| panic!("cluster: {e}"));
    let db = cluster.create_database();
    let tcp = cluster.tcp_url(&ns.host_addr, port, &db);
    let f = Fixture::new();
    let route = Route {
        src: Place::Dir(f.root().to_path_buf()),
        src_q: "outbox",
        dst: Place::Url(cluster.url(&db)),
        dst_q: "outbox",
    };
    let relay = ns.wrap(
        f.cmd()
            .args(["-q", "outbox", "relay", "--wait", "--to", &tcp]),
    );
    // The relay's lines name the place as it was given: the TCP URL.
    let shown = Route {
        dst: Place::Url(tcp.clone()),
        ..route.clone()
    }
    .shown();
    through_outage(
        relay,
        &route,
        &shown,
        &|| ns.cut().expect("cut the link"),
        &|| ns.restore().expect("restore the link"),
        Duration::from_secs(180),
        "network cut for 30 s",
    );
    drop(cluster);
    drop(ns);
}

// ---------------------------------------------------------------------------------------
// 8. One-shot runs through an outage.

/// Without `--wait`: the server stopped, the relay exits 75 with one line and keeps
/// everything; started, it exits 0. Then a cron job's loop, three times: a push, the
/// server stopped, relay (75), the server started, relay (0). Both directions.
#[test]
fn one_shot_relays_exit_75_while_the_database_is_away() {
    let Some(cluster) = private_cluster() else {
        return;
    };
    let db = cluster.create_database();
    let url = cluster.url(&db);
    let f = Fixture::new();
    let out_route = Route {
        src: Place::Dir(f.root().to_path_buf()),
        src_q: "outbox",
        dst: Place::Url(url.clone()),
        dst_q: "outbox",
    };
    let in_route = Route {
        src: Place::Url(url.clone()),
        src_q: "work",
        dst: Place::Dir(f.root().to_path_buf()),
        dst_q: "inbox",
    };
    let mut out_ledger = Ledger::default();
    let mut in_ledger = Ledger::default();
    let unreachable = |route: &Route, what: &str| {
        let out = route.relay(&[]).run();
        assert!(
            out.code == 75
                && is_one_spool_line(&out.stderr)
                && out
                    .stderr
                    .starts_with(&format!("spool: relay {}: ", route.shown())),
            "{what}: exit 75 and one line:\n{out:?}"
        );
        out
    };
    for round in 0..4 {
        let what = format!("round {round}");
        out_route
            .src
            .push(out_route.src_q, &out_ledger.next(10, 0), 0);
        in_route.src.push(in_route.src_q, &in_ledger.next(10, 0), 0);
        cluster.stop("fast").expect("stop the server");
        let out = unreachable(&out_route, &what);
        out.stderr_has("(forwarded 0; the rest waits at the source)");
        unreachable(&in_route, &what);
        assert_eq!(
            out_route.src.len(out_route.src_q),
            10,
            "{what}: everything waits at the source"
        );
        cluster.start().expect("start the server");
        out_route.relay(&[]).run().exits(0);
        in_route.relay(&[]).run().exits(0);
    }
    judge(&out_route, &out_ledger, "local -> PostgreSQL");
    judge(&in_route, &in_ledger, "PostgreSQL -> local");
}

// ---------------------------------------------------------------------------------------
// 9. Two relays of one source.

/// Two `relay --wait` of one source started at once: one runs, the other exits 2 saying
/// another relay is running; what is pushed is forwarded once.
fn two_relays(route: &Route, name: &str) {
    let mut ledger = Ledger::default();
    route.src.push(route.src_q, &ledger.next(100, 0), 0);
    let args = ["--wait", "--batch", "10"];
    let mut a = Bg::spawn(route.relay(&args));
    let mut b = Bg::spawn(route.relay(&args));
    wait_until(
        "one of the two relays exits",
        Duration::from_secs(60),
        || a.exited() || b.exited(),
    );
    let (loser, mut winner) = if a.exited() { (a, b) } else { (b, a) };
    let out = loser.finish();
    let says = format!(
        "spool: relay {}: another relay is running from {}\n",
        route.shown(),
        route.src_q
    );
    out.exits_saying(2, &says);
    route.src.push(route.src_q, &ledger.next(100, 0), 0);
    wait_until("everything forwarded", Duration::from_secs(60), || {
        route.src.len(route.src_q) == 0 && route.src.all(route.src_q).is_empty()
    });
    assert!(!winner.exited(), "{name}: the first relay stopped");
    // Its handler is in place once it forwarded; SIGTERM stops it.
    assert!(catches(winner.pid(), Signal::TERM));
    send_signal(winner.pid(), Signal::TERM);
    assert!(winner.wait_exit(Duration::from_secs(60)), "{name}: no stop");
    winner.finish().killed_by_saying(
        Signal::TERM,
        &format!(
            "spool: relay {}: stopped; forwarded {}\n",
            route.shown(),
            ledger.pushed.len()
        ),
    );
    judge(route, &ledger, name);
}

#[test]
fn two_relays_of_a_local_source() {
    let f = Fixture::new();
    let route = Route {
        src: Place::Dir(f.root().to_path_buf()),
        src_q: "outbox",
        dst: Place::Dir(f.outside("other-spool")),
        dst_q: "outbox",
    };
    two_relays(&route, "two relays of a local source");
}

#[test]
fn two_relays_of_a_postgres_source() {
    let Some(pg) = pg() else { return };
    let f = Fixture::new();
    let route = Route {
        src: Place::Url(pg.url()),
        src_q: "work",
        dst: Place::Dir(f.root().to_path_buf()),
        dst_q: "inbox",
    };
    two_relays(&route, "two relays of a PostgreSQL source");
}

// ---------------------------------------------------------------------------------------
// 10. The systemd unit.

/// contrib/spool-relay@.service.
fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/spool-relay@.service")
}

/// The value of `key=` in the unit's text (the last one, as systemd reads it).
fn unit_value<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .next_back()
}

/// The unit's `ExecStart`, with `%i` and `${CENTRAL}` given and the binary under test for
/// /usr/bin/spool, run with `SPOOL_DIR` as its `EnvironmentFile` sets it: it forwards what
/// is pushed, and SIGTERM (its `KillSignal`) stops it cleanly (killed by SIGTERM, which
/// systemd counts as a clean stop), with nothing lost. The unit restarts the relay
/// (`Restart=`), and `systemd-analyze verify` accepts it.
#[test]
fn the_systemd_unit_runs_and_stops_cleanly() {
    let unit = std::fs::read_to_string(unit_path()).expect("the unit");
    let restart = unit_value(&unit, "Restart").expect("Restart=");
    assert!(
        ["always", "on-failure", "on-abnormal"].contains(&restart),
        "Restart={restart}"
    );
    assert_eq!(unit_value(&unit, "KillSignal"), Some("SIGTERM"));
    let exec = unit_value(&unit, "ExecStart").expect("ExecStart=");

    // systemd-analyze verify, on an instance of a copy that runs the binary under test.
    let tmp = tempfile::tempdir().expect("tempdir");
    match tool_works("systemd-analyze", &["--version"]) {
        Ok(()) => {
            let copy = tmp.path().join("spool-relay@outbox.service");
            std::fs::write(&copy, unit.replace("/usr/bin/spool", BIN)).expect("copy");
            let out = std::process::Command::new("systemd-analyze")
                .arg("verify")
                .arg(&copy)
                .output()
                .expect("systemd-analyze");
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "systemd-analyze verify: {}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(why) => skip(&format!("{why}: the unit's syntax is not verified")),
    }

    let Some(pg) = pg() else { return };
    let f = Fixture::new();
    let words: Vec<String> = exec
        .split_whitespace()
        .map(|w| w.replace("%i", "outbox").replace("${CENTRAL}", &pg.url()))
        .collect();
    assert_eq!(words[0], "/usr/bin/spool", "{exec}");
    let route = Route {
        src: Place::Dir(f.root().to_path_buf()),
        src_q: "outbox",
        dst: Place::Url(pg.url()),
        dst_q: "outbox",
    };
    let mut ledger = Ledger::default();
    route.src.push(route.src_q, &ledger.next(20, 0), 0);
    let mut relay = Bg::spawn(Cmd::bare().args(&words[1..]).env("SPOOL_DIR", f.root()));
    route.src.push(route.src_q, &ledger.next(20, 5), 5);
    wait_until("the unit's relay forwards", Duration::from_secs(60), || {
        route.dst.len(route.dst_q) == 40
    });
    wait_until("the handler in place", Duration::from_secs(10), || {
        catches(relay.pid(), Signal::TERM)
    });
    send_signal(relay.pid(), Signal::TERM);
    assert!(
        relay.wait_exit(Duration::from_secs(90)),
        "no stop within TimeoutStopSec"
    );
    relay.finish().killed_by_saying(
        Signal::TERM,
        &format!("spool: relay {}: stopped; forwarded 40\n", route.shown()),
    );
    judge(&route, &ledger, "the unit's relay");
}

#[test]
fn harness_tally_finds_lost_duplicated_and_reordered() {
    let pushed: Vec<String> = vec![payload(0, 0), payload(1, 5), payload(2, 0), payload(3, 0)];
    let arrived: Vec<String> = vec![payload(1, 5), payload(3, 0), payload(0, 0), payload(3, 0)];
    let t = Tally::of(&pushed, &arrived);
    assert_eq!(t.lost, [payload(2, 0)]);
    assert_eq!(t.duplicated, [(payload(3, 0), 2)]);
    assert_eq!(t.out_of_order, ["m0000000p0 after m0000003p0"], "{t:?}");
    assert!(
        Tally::of(
            &pushed,
            &[payload(1, 5), payload(0, 0), payload(2, 0), payload(3, 0)]
        )
        .problems()
        .is_none()
    );
    assert_eq!(spread(1, 3, 8), [1, 2, 3]);
    assert_eq!(spread(1, 100, 4), [1, 34, 67, 100]);
}

/// A network cut while the relay's transaction at the destination holds its locks: held
/// just after sending the statement before its COMMIT, the link is cut; the COMMIT goes
/// into the cut and the relay gives up after the connection's 30 s (exit 75). Its session
/// is left on the server, idle in its transaction, holding the queue's row lock, with a
/// client that is gone. Once the link is back, the next relay must get through (within
/// two minutes; without keepalives of the server's own, that session lives for hours and
/// every push to the queue waits for it), and everything arrives once.
#[test]
fn a_session_cut_off_in_its_transaction_does_not_block_the_next_relay() {
    if !require(true, &[("ip", &["-V"])]) || !require_strace() {
        return;
    }
    if crate::harness::server_bin_dir().is_none() {
        return skip("PostgreSQL's server is not installed");
    }
    let n = std::process::id() % 60 * 4 + 1;
    let ns = Netns::new(
        &format!("so{}", std::process::id() % 100_000),
        &format!("233.{n}"),
    )
    .unwrap_or_else(|e| panic!("namespace: {e}"));
    let (cluster, port) =
        Cluster::private_on_tcp(&[&ns.host_addr]).unwrap_or_else(|e| panic!("cluster: {e}"));
    let db = cluster.create_database();
    let tcp = cluster.tcp_url(&ns.host_addr, port, &db);
    let f = Fixture::new();
    let route = Route {
        src: Place::Dir(f.root().to_path_buf()),
        src_q: "outbox",
        dst: Place::Url(tcp.clone()),
        dst_q: "outbox",
    };
    let args = ["--batch", "10"];
    let in_ns = |cmd: Cmd| ns.wrap(cmd);
    let mut ledger = Ledger::default();
    route.src.push(route.src_q, &ledger.next(3, 0), 0);
    in_ns(route.relay(&args)).run().success();
    // Counted: the messages the relay sends the server, the last before a COMMIT.
    route.src.push(route.src_q, &ledger.next(3, 0), 0);
    let tmp = tempfile::tempdir().expect("tempdir");
    let trace = tmp.path().join("trace");
    in_ns(route.relay(&args).wrap([
        "strace",
        "-f",
        "-qq",
        "-o",
        trace.to_str().expect("UTF-8 path"),
        "-e",
        "trace=sendto",
    ]))
    .run()
    .success();
    let sends: Vec<String> = std::fs::read_to_string(&trace)
        .expect("the trace")
        .lines()
        .filter(|l| l.contains("sendto("))
        .map(str::to_string)
        .collect();
    let commit = sends
        .iter()
        .position(|l| l.contains("COMMIT"))
        .expect("a COMMIT");
    let before = commit as u32; // 1-based: the send before the COMMIT

    route.src.push(route.src_q, &ledger.next(3, 0), 0);
    let _ = std::fs::remove_file(&trace);
    let mut relay = Bg::spawn(in_ns(
        route
            .relay(&args)
            .pause_after_traced("sendto", before, 3, &trace),
    ));
    wait_until("the relay held", Duration::from_secs(60), || {
        std::fs::read_to_string(&trace).is_ok_and(|t| t.contains("(DELAYED)"))
    });
    // The server's answer is acknowledged meanwhile (a delayed ACK): with nothing of its
    // own unacknowledged, the server's end learns nothing when the link comes back.
    std::thread::sleep(Duration::from_secs(1));
    ns.cut().expect("cut the link");
    assert!(
        relay.wait_exit(Duration::from_secs(120)),
        "the relay does not give up"
    );
    let out = relay.finish();
    assert!(
        out.code == 75 && is_one_spool_line(&out.stderr),
        "exit 75 with one line:\n{out:?}"
    );
    let orphans = cluster.psql(
        &db,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'spool' \
         AND state = 'idle in transaction'",
    );
    assert_eq!(
        orphans.trim(),
        "1",
        "the cut-off session holds its transaction"
    );
    ns.restore().expect("restore the link");
    let start = Instant::now();
    // Until the link's neighbours are found again, a connection fails at once (75).
    let out = loop {
        let out = in_ns(route.relay(&args))
            .limit(Duration::from_secs(120))
            .may_hang()
            .run();
        if out.code != 75 || start.elapsed() > Duration::from_secs(20) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        !out.timed_out && out.code == 0 && out.stderr.is_empty(),
        "the next relay, after {:?}:\n{out:?}",
        start.elapsed()
    );
    let local = Route {
        dst: Place::Url(cluster.url(&db)),
        ..route.clone()
    };
    judge(&local, &ledger, "after the cut");
    eprintln!(
        "a session cut off in its transaction: the next relay got through {:?} after the \
         link came back; {} messages, 0 lost, 0 duplicated",
        start.elapsed(),
        ledger.pushed.len()
    );
    drop(cluster);
    drop(ns);
}
