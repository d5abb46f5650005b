//! The PostgreSQL engine under faults: many processes at once, the server crashed under
//! load, connections dropped in the middle of each operation, `run` and its commands
//! killed at random, and a network partition between two hosts (network namespaces).
//!
//! Each test has a database of its own on the run's shared cluster (`pg()`), or a private
//! cluster (`Cluster::private()`) when it crashes its server or needs it on TCP. Without
//! PostgreSQL the tests skip (and fail under CI=true); the partition test also needs root
//! and iproute2.
//!
//! What "exit 2" means throughout: one line on standard error starting `spool: `, naming
//! the server by its URL with the password masked, and never the password.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{
    Cluster, Cmd, Netns, Output, Rng, is_one_spool_line, json_lines, kill_group_and_wait, pg,
    require, send_signal, skip, strace_usable, wait_until,
};

/// A database the spool commands of a test use.
#[derive(Clone)]
struct Db {
    url: String,
    /// The URL as spool shows it (the password masked).
    shown: String,
    /// The password in the URL, which no output may hold.
    secret: Option<String>,
}

impl Db {
    /// `url` with no password.
    fn plain(url: String) -> Db {
        Db {
            shown: url.clone(),
            url,
            secret: None,
        }
    }

    /// `url` with `&password=SECRET` added (trust authentication ignores it; spool must
    /// still never show it).
    fn with_password(url: String, secret: &str) -> Db {
        Db {
            shown: format!("{url}&password=***"),
            url: format!("{url}&password={secret}"),
            secret: Some(secret.to_string()),
        }
    }

    /// `spool --url URL ARGS...`.
    fn cmd(&self, args: &[&str]) -> Cmd {
        Cmd::bare().arg("--url").arg(&self.url).args(args)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).run()
    }

    /// Why `out` is not a proper failure: exit 2, one `spool: ` line naming the server
    /// by its masked URL, and not the password anywhere.
    fn check_failure(&self, out: &Output) -> Result<(), String> {
        let secret_shown = self.secret.as_deref().is_some_and(|s| {
            out.stderr.contains(s) || String::from_utf8_lossy(&out.stdout).contains(s)
        });
        if out.code != 2
            || !is_one_spool_line(&out.stderr)
            || !out.stderr.contains(&self.shown)
            || secret_shown
        {
            return Err(format!(
                "expected exit 2 and one \"spool: \" line naming {} (no password):\n{out:?}",
                self.shown
            ));
        }
        Ok(())
    }

    /// Like [`check_failure`](Self::check_failure), also accepting the one line of a
    /// token whose claim ended (`spool: token …`), which names no server.
    fn check_token_failure(&self, out: &Output) -> Result<(), String> {
        if out.code == 2
            && is_one_spool_line(&out.stderr)
            && out.stderr.starts_with("spool: token ")
        {
            return Ok(());
        }
        self.check_failure(out)
    }

    /// `stats --json` of the default queue.
    #[track_caller]
    fn stats(&self) -> serde_json::Value {
        let out = self.run(&["stats", "--json"]);
        out.success();
        json_lines(&out.stdout).remove(0)
    }

    /// `len` of the default queue.
    #[track_caller]
    fn len(&self) -> u64 {
        let out = self.run(&["len"]);
        out.success();
        out.text().trim_end().parse().expect("len prints a number")
    }

    /// `(id, state)` of every message of the default queue.
    #[track_caller]
    fn states(&self) -> Vec<(u64, String)> {
        let out = self.run(&["list", "--state", "all", "--json"]);
        out.success();
        json_lines(&out.stdout)
            .iter()
            .map(|v| {
                (
                    v["id"].as_u64().expect("id"),
                    v["state"].as_str().expect("state").to_string(),
                )
            })
            .collect()
    }

    /// Pops everything ready, one `pop -n 1000 --lines` at a time; the payloads.
    #[track_caller]
    fn drain(&self) -> Vec<String> {
        let mut all = Vec::new();
        loop {
            let out = self.run(&["pop", "-n", "1000", "--lines"]);
            match out.code {
                0 => {
                    assert!(out.stderr.is_empty(), "{out:?}");
                    all.extend(out.text().lines().map(str::to_string));
                }
                1 => return all,
                _ => panic!("drain:\n{out:?}"),
            }
        }
    }

    /// A connection of the test's own, to the same database.
    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect")
    }
}

/// A fresh database on the shared cluster, or `None` after skipping.
fn shared_db() -> Option<(Db, crate::harness::Pg)> {
    let pg = pg()?;
    Some((Db::plain(pg.url()), pg))
}

/// A private cluster (one this test may crash), or `None` after skipping.
fn private_cluster() -> Option<Cluster> {
    match Cluster::private() {
        Ok(c) => Some(c),
        Err(why) => {
            skip(&why);
            None
        }
    }
}

/// A payload `P3-000417`: producer 3's 418th message.
fn payload(producer: usize, seq: usize) -> String {
    format!("P{producer}-{seq:06}")
}

/// `(producer, seq)` of a payload of [`payload`]'s shape, else `None`.
fn parse_payload(p: &str) -> Option<(usize, usize)> {
    let (a, b) = p.strip_prefix('P')?.split_once('-')?;
    (b.len() == 6 && b.bytes().all(|c| c.is_ascii_digit()) && !a.is_empty())
        .then(|| Some((a.parse().ok()?, b.parse().ok()?)))
        .flatten()
}

/// Counts a thread as finished even when it panics, so that the others stop.
struct Finished<'a>(&'a AtomicUsize);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------
// 1. Many processes at once.

const PRODUCERS: usize = 8;
const CONSUMERS: usize = 8;
const PER_PRODUCER: usize = 1000;

/// One message delivered by one `spool pop` process, and when that process ran.
struct Pop {
    payload: String,
    started: Instant,
    ended: Instant,
}

/// 8 producers and 8 consumers, 1,000 messages each, one `spool` process per push and per
/// pop (16,000 processes): every message comes out exactly once, each producer's messages in the order it
/// pushed them (a message is never popped by a process that ended before the process that
/// popped an earlier message of the same producer began), every command exits 0 with an
/// empty standard error (or 1, with no output, when the queue is empty), and at the end
/// the queue is empty and `stats` counts agree.
#[test]
fn postgres_producers_and_consumers_lose_and_duplicate_nothing() {
    let Some((db, _pg)) = shared_db() else { return };
    let total = PRODUCERS * PER_PRODUCER;
    // The queue exists before the consumers start (pop of a missing queue says so).
    db.run(&["push", "--print-id", "seed"]).success();
    db.cmd(&["pop"]).prints("seed");

    let finished = AtomicUsize::new(0);
    let popped = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let pops: Vec<Pop> = std::thread::scope(|scope| {
        for p in 0..PRODUCERS {
            let (db, finished, failed) = (&db, &finished, &failed);
            scope.spawn(move || {
                let _done = Finished(finished);
                for seq in 0..PER_PRODUCER {
                    if failed.load(Ordering::SeqCst) {
                        return;
                    }
                    let out = db.run(&["push", &payload(p, seq)]);
                    if out.check_success().is_err() || !out.stdout.is_empty() {
                        failed.store(true, Ordering::SeqCst);
                        panic!("producer {p}:\n{out:?}");
                    }
                }
            });
        }
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|c| {
                let (db, finished, popped, failed) = (&db, &finished, &popped, &failed);
                scope.spawn(move || {
                    let mut got = Vec::new();
                    while popped.load(Ordering::SeqCst) < total && !failed.load(Ordering::SeqCst) {
                        let all_pushed = finished.load(Ordering::SeqCst) == PRODUCERS;
                        let started = Instant::now();
                        let out = db.run(&["pop"]);
                        let ended = Instant::now();
                        match out.code {
                            0 if out.stderr.is_empty() => {
                                popped.fetch_add(1, Ordering::SeqCst);
                                got.push(Pop {
                                    payload: String::from_utf8(out.stdout)
                                        .expect("payloads are UTF-8"),
                                    started,
                                    ended,
                                });
                            }
                            1 if out.stdout.is_empty() && out.stderr.is_empty() => {
                                if all_pushed {
                                    break;
                                }
                                std::thread::sleep(Duration::from_millis(2));
                            }
                            _ => {
                                failed.store(true, Ordering::SeqCst);
                                panic!("consumer {c}:\n{out:?}");
                            }
                        }
                    }
                    got
                })
            })
            .collect();
        consumers
            .into_iter()
            .flat_map(|h| h.join().expect("consumer thread"))
            .collect()
    });

    let mut counts: HashMap<&str, usize> = HashMap::new();
    for pop in &pops {
        *counts.entry(pop.payload.as_str()).or_default() += 1;
    }
    let lost: Vec<String> = (0..PRODUCERS)
        .flat_map(|p| (0..PER_PRODUCER).map(move |s| payload(p, s)))
        .filter(|m| !counts.contains_key(m.as_str()))
        .collect();
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    let unknown: Vec<_> = counts
        .keys()
        .filter(|k| !parse_payload(k).is_some_and(|(p, s)| p < PRODUCERS && s < PER_PRODUCER))
        .collect();
    assert!(lost.is_empty(), "{} lost: {lost:?}", lost.len());
    assert!(duplicated.is_empty(), "duplicated: {duplicated:?}");
    assert!(unknown.is_empty(), "never pushed: {unknown:?}");
    assert_eq!(pops.len(), total);

    for p in 0..PRODUCERS {
        let mut mine: Vec<(usize, &Pop)> = pops
            .iter()
            .filter_map(|pop| match parse_payload(&pop.payload) {
                Some((q, seq)) if q == p => Some((seq, pop)),
                _ => None,
            })
            .collect();
        mine.sort_by_key(|(seq, _)| *seq);
        let mut latest_start: Option<(usize, Instant)> = None;
        for &(seq, pop) in &mine {
            if let Some((earlier, started)) = latest_start {
                assert!(
                    started <= pop.ended,
                    "{} was popped before {} was even asked for",
                    payload(p, seq),
                    payload(p, earlier)
                );
            }
            if latest_start.is_none_or(|(_, t)| pop.started > t) {
                latest_start = Some((seq, pop.started));
            }
        }
    }

    assert_eq!(db.len(), 0);
    db.cmd(&["pop"]).run().nothing();
    let stats = db.stats();
    for key in ["waiting", "delayed", "claimed", "failed"] {
        assert_eq!(stats[key], 0, "{key} in {stats}");
    }
    // The seed and the 8,000: every push used one id.
    assert_eq!(stats["next_id"], total as u64 + 2, "{stats}");
    assert_eq!(db.states(), Vec::<(u64, String)>::new());
}

// ---------------------------------------------------------------------------------------
// 2. The server crashed under load.

/// The password put in the URLs of the crash test: no output may hold it.
const SECRET: &str = "Crash-pw-7Qx2-neverShown";

/// What one spool process of a workload was, and what it did.
#[derive(Debug)]
enum Op {
    /// `push --print-id PAYLOAD`.
    Push(String),
    Pop,
    Claim,
    /// `show TOKEN` after a claim.
    Show(String),
    /// `ack TOKEN`.
    Ack(String),
}

/// One spool process of a workload: what, when, and its output.
struct Done {
    op: Op,
    started: Instant,
    ended: Instant,
    out: Output,
}

/// Sets a flag when dropped, so that workload threads stop when the test panics too.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs `args` and records it.
fn record(db: &Db, op: Op, args: &[&str], log: &Mutex<Vec<Done>>) -> (i32, Vec<u8>) {
    let started = Instant::now();
    let out = db.run(args);
    let ended = Instant::now();
    let result = (out.code, out.stdout.clone());
    log.lock().unwrap().push(Done {
        op,
        started,
        ended,
        out,
    });
    result
}

/// The message id of a claim token `ID.HEX`.
fn token_id(token: &str) -> Option<u64> {
    token.split_once('.')?.0.parse().ok()
}

/// The server crashes (`pg_ctl stop -m immediate`) while 3 producers push, 2 consumers pop
/// and 2 consumers claim, show and ack, one process per operation; it starts again a
/// second later; the workload runs 8 s in all, then the leases (2 s) end and what is left
/// is drained. The URL carries a password (ignored by the trust authentication).
///
/// Asserted: every push that exited 0 was delivered (popped, by a pop of any exit status,
/// or claimed by a claim that exited 0) or is in the queue at the end; every pop and ack
/// that exited 0 is done: its message is never delivered again after it, nor left in the
/// queue, and no message is done twice; every payload any process printed is a whole one
/// that a producer pushed; a pop whose output was written but that failed exited 2 (its
/// message may come back: counted as duplicates told); every command that did not exit 0
/// (or 1 for an empty queue, with no output) exited 2 with one `spool: ` line naming the
/// server by its masked URL, and no output holds the password.
#[test]
fn postgres_server_crash_under_load_keeps_what_exited_0() {
    let Some(cluster) = private_cluster() else {
        return;
    };
    let db = Db::with_password(cluster.url(&cluster.create_database()), SECRET);
    db.run(&["push", "seed"]).success();
    db.cmd(&["pop"]).prints("seed");

    let log: Mutex<Vec<Done>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let mut crashed_at = None;
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        for p in 0..3 {
            let (db, log, stop) = (&db, &log, &stop);
            scope.spawn(move || {
                let mut seq = 0;
                while !stop.load(Ordering::SeqCst) {
                    let m = payload(p, seq);
                    record(db, Op::Push(m.clone()), &["push", "--print-id", &m], log);
                    seq += 1;
                }
            });
        }
        for _ in 0..2 {
            let (db, log, stop) = (&db, &log, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if record(db, Op::Pop, &["pop"], log).0 != 0 {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            });
        }
        for _ in 0..2 {
            let (db, log, stop) = (&db, &log, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let (code, out) = record(db, Op::Claim, &["claim", "--lease", "2s"], log);
                    if code != 0 {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    let token = String::from_utf8_lossy(&out).trim_end().to_string();
                    record(db, Op::Show(token.clone()), &["show", &token], log);
                    record(db, Op::Ack(token.clone()), &["ack", &token], log);
                }
            });
        }
        std::thread::sleep(Duration::from_secs(3));
        crashed_at = Some(Instant::now());
        cluster.crash().expect("crash the server");
        std::thread::sleep(Duration::from_secs(1));
        cluster.start().expect("start the server again");
        std::thread::sleep(Duration::from_secs(4));
    });
    let crashed_at = crashed_at.expect("crashed");
    // Claims whose ack failed come back when their leases end.
    std::thread::sleep(Duration::from_millis(2500));
    let drained = db.drain();
    let log = log.into_inner().unwrap();

    let mut problems: Vec<String> = Vec::new();
    let mut attempted: BTreeSet<String> = BTreeSet::new();
    let mut pushed_ok: BTreeMap<String, u64> = BTreeMap::new();
    let mut id_payload: HashMap<u64, String> = HashMap::new();
    // Deliveries: (payload or id, start); done: (message, end).
    let mut delivered: Vec<(String, Instant)> = Vec::new();
    let mut done: Vec<(String, Instant, &'static str)> = Vec::new();
    let mut claimed_ids: Vec<(u64, Instant)> = Vec::new();
    let (mut failures, mut told_duplicates) = (0, 0);
    let mut counts: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    for d in &log {
        if let Op::Push(m) = &d.op {
            attempted.insert(m.clone());
        }
    }
    for d in &log {
        let out = &d.out;
        let name = match d.op {
            Op::Push(_) => "push",
            Op::Pop => "pop",
            Op::Claim => "claim",
            Op::Show(_) => "show",
            Op::Ack(_) => "ack",
        };
        let entry = counts.entry(name).or_default();
        entry.0 += 1;
        let empty = out.code == 1 && out.stdout.is_empty() && out.stderr.is_empty();
        if out.code != 0 && !(empty && matches!(d.op, Op::Pop | Op::Claim)) {
            entry.1 += 1;
            failures += 1;
            let checked = match d.op {
                Op::Ack(_) | Op::Show(_) => db.check_token_failure(out),
                _ => db.check_failure(out),
            };
            if let Err(e) = checked {
                problems.push(e);
            }
        } else if !out.stderr.is_empty() {
            problems.push(format!("exit {} with a warning:\n{out:?}", out.code));
        }
        if db.secret.as_deref().is_some_and(|s| out.stderr.contains(s)) {
            problems.push(format!("the password shown:\n{out:?}"));
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        match &d.op {
            Op::Push(m) if out.code == 0 => match text.trim_end().parse() {
                Ok(id) => {
                    pushed_ok.insert(m.clone(), id);
                    id_payload.insert(id, m.clone());
                }
                Err(_) => problems.push(format!("push printed no id:\n{out:?}")),
            },
            Op::Pop if !text.is_empty() => {
                if !attempted.contains(&text) {
                    problems.push(format!("pop printed what no producer pushed:\n{out:?}"));
                }
                delivered.push((text.clone(), d.started));
                match out.code {
                    0 => done.push((text, d.ended, "pop")),
                    // Written, and not removed: the user was told (exit 2).
                    2 => told_duplicates += 1,
                    _ => problems.push(format!("pop wrote a message and exited so:\n{out:?}")),
                }
            }
            Op::Claim if out.code == 0 => match token_id(text.trim_end()) {
                Some(id) => claimed_ids.push((id, d.started)),
                None => problems.push(format!("claim printed no token:\n{out:?}")),
            },
            Op::Show(token) if out.code == 0 => {
                if !attempted.contains(&text) {
                    problems.push(format!("show printed what no producer pushed:\n{out:?}"));
                }
                if let Some(id) = token_id(token) {
                    id_payload.insert(id, text);
                }
            }
            _ => {}
        }
    }
    for (id, started) in &claimed_ids {
        let m = id_payload
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("id {id}"));
        delivered.push((m, *started));
    }
    for d in &log {
        if let Op::Ack(token) = &d.op
            && d.out.code == 0
        {
            let id = token_id(token).expect("acked tokens are tokens");
            let m = id_payload
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("id {id}"));
            done.push((m, d.ended, "ack"));
        }
    }
    for m in &drained {
        if !attempted.contains(m) {
            problems.push(format!("drained what no producer pushed: {m:?}"));
        }
    }

    // Nothing that exited 0 lost.
    let seen: BTreeSet<&str> = delivered
        .iter()
        .map(|(m, _)| m.as_str())
        .chain(drained.iter().map(String::as_str))
        .collect();
    let lost: Vec<&String> = pushed_ok
        .keys()
        .filter(|m| !seen.contains(m.as_str()))
        .collect();
    if !lost.is_empty() {
        problems.push(format!(
            "{} pushes exited 0 and their messages are nowhere: {lost:?}",
            lost.len()
        ));
    }
    // What exited 0 stays done.
    let mut done_count: HashMap<&str, usize> = HashMap::new();
    for (m, ended, how) in &done {
        *done_count.entry(m.as_str()).or_default() += 1;
        if drained.contains(m) {
            problems.push(format!("{m}: {how} exited 0, and it is in the queue still"));
        }
        if let Some((_, again)) = delivered.iter().find(|(x, s)| x == m && s > ended) {
            problems.push(format!(
                "{m}: {how} exited 0, and it was delivered again {:?} later",
                again.duration_since(*ended)
            ));
        }
    }
    let twice: Vec<_> = done_count.iter().filter(|(_, n)| **n > 1).collect();
    if !twice.is_empty() {
        problems.push(format!("done twice: {twice:?}"));
    }
    eprintln!(
        "crash under load: {} processes ({counts:?}: runs, failures), {} pushes confirmed, \
         {} done, {} drained, {failures} failed (exit 2), {told_duplicates} pops written \
         and not committed (exit 2); crash {:?} after the start",
        log.len(),
        pushed_ok.len(),
        done.len(),
        drained.len(),
        crashed_at.duration_since(log.iter().map(|d| d.started).min().expect("some ops"))
    );
    assert!(
        failures > 0,
        "the crash failed no command: the test did not test"
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// 3. The connection dropped in the middle of each operation.

/// The spool backends of `db`'s database matching `condition` (SQL over
/// `pg_stat_activity`).
fn spool_backends(client: &mut postgres::Client, condition: &str) -> i64 {
    client
        .query_one(
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'spool' \
                 AND datname = current_database() AND {condition}"
            ),
            &[],
        )
        .expect("pg_stat_activity")
        .get(0)
}

/// Waits (at most 60 s) until a spool backend of the database matches `condition`,
/// then terminates every spool backend of the database; how many.
#[track_caller]
fn terminate_when(client: &mut postgres::Client, condition: &str) -> i64 {
    wait_until(
        &format!("a spool backend with {condition}"),
        Duration::from_secs(60),
        || spool_backends(client, condition) > 0,
    );
    client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'spool' AND datname = current_database()",
            &[],
        )
        .expect("pg_terminate_backend")
        .get(0)
}

/// A payload of 1,000 bytes: `M00042-` and filler.
fn big_payload(i: usize) -> String {
    format!("M{i:05}-{}", "x".repeat(993))
}

/// `pg_terminate_backend` of the spool processes of the test's database while each
/// operation is in progress (the backend of push in its transaction after some chunks;
/// of pop -n blocked writing a round to a full pipe; of claim and ack waiting on a lock
/// the test holds; of run while its commands run): each exits 2 with one line naming the
/// server, and nothing is lost or half-done: the push left nothing; the pop's committed
/// rounds are gone and the rest is in the queue (the round written but not committed, at
/// most 64 messages, both); the claim's message can be claimed again; the ack's claim
/// comes back after its lease; run's claims come back at the next take.
#[test]
fn postgres_dropped_connections_fail_cleanly_and_lose_nothing() {
    let Some((db, _pg)) = shared_db() else { return };
    let mut client = db.client();

    // push --lines of a big batch (INSERTs of chunks, or COPY): one transaction, nothing of
    // it stays. Held for a moment after its 100th send, well into the COPY's data, so that
    // the test sees it there however loaded the machine is.
    if let Err(why) = strace_usable() {
        return skip(&why);
    }
    let lines: String = (0..300_000).map(|i| format!("L{i:06}\n")).collect();
    let push = db
        .cmd(&["push", "--lines"])
        .pause_after("sendto", 100, 5)
        .stdin(lines)
        .spawn();
    let killed = terminate_when(
        &mut client,
        "xact_start IS NOT NULL AND (query LIKE 'INSERT%' OR query LIKE 'COPY%')",
    );
    let out = push.finish();
    db.check_failure(&out)
        .unwrap_or_else(|e| panic!("push: {e}"));
    assert!(killed >= 1);
    let (code, n) = match db.run(&["len"]) {
        o if o.code == 0 => (0, o.text().trim_end().to_string()),
        o => (o.code, o.stderr.clone()),
    };
    // The queue itself may or may not have been made by the rolled-back push: either way
    // no message.
    assert!(
        (code == 0 && n == "0") || (code == 1 && n.contains("does not exist")),
        "after the killed push: len exits {code}: {n}"
    );

    // pop -n of many, blocked writing to a pipe nobody reads yet.
    let count = 3000;
    let batch: String = (0..count).map(|i| big_payload(i) + "\n").collect();
    db.cmd(&["push", "--lines"]).stdin(batch).run().success();
    let mut pop = db
        .cmd(&["pop", "-n", &count.to_string(), "--lines"])
        .spawn();
    let mut stdout = pop.child.stdout.take().expect("piped");
    let mut written = vec![0u8; 200 * 1000];
    stdout.read_exact(&mut written).expect("read some messages");
    // Blocked writing, pop holds no transaction open (it deletes what it delivered
    // afterwards, by id and token): its connection, idle or not, is cut.
    terminate_when(&mut client, "true");
    stdout.read_to_end(&mut written).expect("read the rest");
    let out = pop.finish();
    db.check_failure(&out)
        .unwrap_or_else(|e| panic!("pop: {e}"));
    let written = String::from_utf8(written).expect("UTF-8");
    assert!(written.ends_with('\n'), "pop ended a message in the middle");
    let got: Vec<&str> = written.lines().collect();
    let expected: Vec<String> = (0..count).map(big_payload).collect();
    assert_eq!(
        got,
        expected[..got.len()],
        "pop wrote a prefix of the queue, whole"
    );
    let left = db.drain();
    assert!(
        got.len() + left.len() >= count,
        "after the killed pop: written {} and left {}: lost some",
        got.len(),
        left.len()
    );
    let overlap = got.len() + left.len() - count;
    assert!(
        left[..] == expected[got.len() - overlap..],
        "after the killed pop: written {} and left {}: something lost or reordered",
        got.len(),
        left.len()
    );
    assert!(
        overlap <= 64,
        "{overlap} messages both written and left: more than one round"
    );
    eprintln!(
        "pop -n {count} killed: {} written, {} left, {overlap} both (told by exit 2)",
        got.len(),
        left.len()
    );

    // claim, waiting on a lock the test holds.
    db.run(&["push", "--print-id", "c1"]).success();
    let mut tx = client.transaction().expect("begin");
    tx.batch_execute("LOCK TABLE spool.messages IN SHARE MODE")
        .expect("lock");
    let claim = db.cmd(&["claim", "--lease", "2s"]).spawn();
    let mut watcher = db.client();
    terminate_when(&mut watcher, "wait_event_type = 'Lock'");
    let out = claim.finish();
    tx.rollback().expect("rollback");
    db.check_failure(&out)
        .unwrap_or_else(|e| panic!("claim: {e}"));
    let out = db.run(&["claim", "--lease", "2s", "--wait", "--timeout", "10s"]);
    out.success();
    let token = out.text().trim_end().to_string();

    // ack, waiting on the row lock of its message.
    let id = token_id(&token).expect("a token") as i64;
    let mut tx = client.transaction().expect("begin");
    tx.query(
        "SELECT 1 FROM spool.messages WHERE id = $1 FOR UPDATE",
        &[&id],
    )
    .expect("lock the row");
    let ack = db.cmd(&["ack", &token]).spawn();
    terminate_when(&mut watcher, "wait_event_type = 'Lock'");
    let out = ack.finish();
    tx.rollback().expect("rollback");
    db.check_failure(&out)
        .unwrap_or_else(|e| panic!("ack: {e}"));
    assert_eq!(db.states(), vec![(id as u64, "claimed".to_string())]);
    // The claim comes back after its lease, to a new claim; the old token is refused.
    let out = db.run(&["claim", "--lease", "30s", "--wait", "--timeout", "10s"]);
    out.success();
    let again = out.text().trim_end().to_string();
    assert_eq!(token_id(&again), Some(id as u64));
    assert_ne!(again, token);
    db.run(&["ack", &token]).error();
    db.cmd(&["ack", &again]).prints("");
    assert_eq!(db.states(), Vec::<(u64, String)>::new());

    // run, while its commands run.
    let tmp = tempfile::tempdir().expect("tempdir");
    let out_log = tmp.path().join("log");
    let go = tmp.path().join("go");
    db.run(&["push", "r1", "r2", "r3", "r4", "r5", "r6"])
        .success();
    let script = "echo \"$(cat)\" >> \"$0\"; while [ ! -e \"$1\" ]; do sleep 0.05; done";
    let run = db
        .cmd(&["run", "-j", "2", "--", "sh", "-c", script])
        .arg(&out_log)
        .arg(&go)
        .spawn();
    wait_until("two commands running", Duration::from_secs(60), || {
        std::fs::read_to_string(&out_log).is_ok_and(|t| t.lines().count() >= 2)
    });
    terminate_when(&mut watcher, "true");
    std::fs::write(&go, "").expect("go");
    let out = run.finish();
    db.check_failure(&out)
        .unwrap_or_else(|e| panic!("run: {e}"));
    let ran = std::fs::read_to_string(&out_log).expect("log");
    // Two commands at once: they append in the order they started.
    let mut ran: Vec<&str> = ran.lines().collect();
    ran.sort_unstable();
    assert_eq!(ran, ["r1", "r2"], "run ran only the two it had claimed");
    // Its two claims are held by nobody (its session's lock went with the connection),
    // listed as claimed until the next take gives them back: then all six come.
    let mut states: Vec<String> = db.states().into_iter().map(|(_, s)| s).collect();
    states.sort();
    assert_eq!(
        states,
        ["claimed", "claimed", "ready", "ready", "ready", "ready"]
    );
    let mut popped = db.drain();
    popped.sort();
    assert_eq!(popped, ["r1", "r2", "r3", "r4", "r5", "r6"]);
}

// ---------------------------------------------------------------------------------------
// 4. kill -9 of run and of its commands at random.

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|stat| {
                let f: Vec<&str> = stat
                    .rsplit_once(')')
                    .map_or("", |r| r.1)
                    .split_whitespace()
                    .collect();
                f.len() > 1 && f[0] != "Z" && f[1].parse() == Ok(pid)
            })
        })
        .collect()
}

/// The ids of every message of the default queue, in any state, in one snapshot (one
/// statement: `list --state all` reads each state in a statement of its own, so a message
/// moving from claimed back to ready while it lists can be missed by both).
fn all_ids(client: &mut postgres::Client) -> BTreeSet<u64> {
    client
        .query("SELECT id FROM spool.messages WHERE queue = 'default'", &[])
        .expect("the ids")
        .iter()
        .map(|r| r.get::<_, i64>(0) as u64)
        .collect()
}

/// `run -j 4` over 2,000 messages whose command appends its payload to a log (one
/// `echo`, an atomic append), sleeps 50 ms and exits 0, while the test kills, every
/// 100–600 ms (a seeded `Rng`, the seed printed), either run itself (SIGKILL; then starts
/// it again) or one of its running commands, for 60 s or until the queue is empty; then
/// runs it to completion without kills. No push happens meanwhile.
///
/// Asserted: the queue ends empty (nothing failed, nothing claimed); every message is in
/// the log at least once and every line of the log is a whole payload; a message gone
/// from the queue never reappears (its ids, read in one statement about every second,
/// only shrink); the duplicates (log lines beyond one per message) are at most 4 per kill
/// of run (its claims in flight, -j 4) plus 1 per kill of a command (killed after its
/// append, it is retried); every run not killed exits 0 or 3 (a retried message) with
/// nothing on standard error (`--quiet`).
#[test]
fn postgres_run_and_its_commands_killed_at_random() {
    let Some((db, _pg)) = shared_db() else { return };
    let count = 2000;
    let batch: String = (0..count).map(|i| format!("M{i:05}\n")).collect();
    db.cmd(&["push", "--lines"]).stdin(batch).run().success();
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("log");
    let script = "read -r p; [ -n \"$p\" ] || exit 9; echo \"$p\" >> \"$0\"; sleep 0.05";
    let run = || {
        db.cmd(&[
            "run",
            "-j",
            "4",
            "--backoff",
            "100ms",
            "--max-attempts",
            "1000",
            "--quiet",
            "--",
            "sh",
            "-c",
            script,
        ])
        .arg(&log)
        .spawn()
    };
    let (mut rng, seed) = Rng::from_clock();
    eprintln!("run killed at random: seed {seed}");
    let start = Instant::now();
    let (mut run_kills, mut child_kills) = (0u64, 0u64);
    let mut client = db.client();
    let mut last_ids = all_ids(&mut client);
    let mut last_sample = Instant::now();
    let mut current = Some(run());
    let mut problems = Vec::new();
    while start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(rng.range(100, 600)));
        let running = current.as_mut().expect("a run");
        if running.exited() {
            let out = current.take().expect("a run").finish();
            if !(out.code == 0 || out.code == 3) || !out.stderr.is_empty() {
                problems.push(format!("a run not killed:\n{out:?}"));
            }
            if db.len() == 0 && db.states().is_empty() {
                break;
            }
            current = Some(run());
            continue;
        }
        let pid = running.pid();
        let children = children_of(pid);
        if rng.range(0, 2) == 0 || children.is_empty() {
            send_signal(pid, rustix::process::Signal::KILL);
            let out = current.take().expect("a run").finish();
            if out.killed() {
                run_kills += 1;
            } else if !(out.code == 0 || out.code == 3) || !out.stderr.is_empty() {
                problems.push(format!("a run not killed:\n{out:?}"));
            }
            current = Some(run());
        } else {
            let child = children[rng.range(0, children.len() as u64) as usize];
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(child as i32).expect("pid"),
                rustix::process::Signal::KILL,
            );
            child_kills += 1;
        }
        if last_sample.elapsed() >= Duration::from_secs(1) {
            let ids = all_ids(&mut client);
            let back: Vec<&u64> = ids.difference(&last_ids).collect();
            if !back.is_empty() {
                problems.push(format!("gone from the queue, then back: {back:?}"));
            }
            last_ids = ids;
            last_sample = Instant::now();
        }
    }
    let chaos = start.elapsed();
    if let Some(r) = current.take() {
        kill_group_and_wait(r.pid() as i32);
        let out = r.finish();
        if out.killed() {
            run_kills += 1;
        }
    }
    // To completion: retries fall due after their backoff, the claims of killed runs come
    // back at the next take.
    let finish = Instant::now();
    while !db.states().is_empty() {
        assert!(
            finish.elapsed() < Duration::from_secs(120),
            "the queue does not drain: {:?}",
            db.states()
        );
        let out = run().finish();
        if !(out.code == 0 || out.code == 3) || !out.stderr.is_empty() {
            problems.push(format!("a run not killed:\n{out:?}"));
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    // Commands of killed runs may still be finishing their append.
    std::thread::sleep(Duration::from_millis(500));

    let text = std::fs::read_to_string(&log).expect("log");
    let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
    for line in text.lines() {
        *seen.entry(line).or_default() += 1;
    }
    let expected: Vec<String> = (0..count).map(|i| format!("M{i:05}")).collect();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|m| !seen.contains_key(m.as_str()))
        .collect();
    let unknown: Vec<&&str> = seen
        .keys()
        .filter(|k| expected.binary_search(&k.to_string()).is_err())
        .collect();
    let duplicates: u64 = seen.values().map(|n| n - 1).sum();
    let bound = 4 * run_kills + child_kills;
    eprintln!(
        "run killed at random: {count} messages, {:?} of kills ({run_kills} of run, \
         {child_kills} of a command), {:?} to complete, {duplicates} duplicates (bound \
         {bound})",
        chaos,
        finish.elapsed()
    );
    assert!(
        text.ends_with('\n') || text.is_empty(),
        "a line cut in the log"
    );
    assert!(missing.is_empty(), "never run: {missing:?}");
    assert!(unknown.is_empty(), "not payloads: {unknown:?}");
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates for {run_kills} kills of run and {child_kills} of commands"
    );
    assert!(run_kills > 0, "run was never killed: the test did not test");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let stats = db.stats();
    for key in ["waiting", "delayed", "claimed", "failed"] {
        assert_eq!(stats[key], 0, "{key} in {stats}");
    }
}

// ---------------------------------------------------------------------------------------
// 5. Two hosts, and a network partition between them.

/// Claims with `claim --lease 3s`, holds each 100 ms, acks it; records every step.
fn lease_consumer(db: &Db, host: &Netns, log: &Mutex<Vec<Done>>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let out = host.wrap(db.cmd(&["claim", "--lease", "3s"])).run();
        let token = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
        let ok = out.code == 0;
        log.lock().unwrap().push(Done {
            op: Op::Claim,
            started,
            ended: Instant::now(),
            out,
        });
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        let out = host.wrap(db.cmd(&["ack", &token])).run();
        log.lock().unwrap().push(Done {
            op: Op::Ack(token),
            started,
            ended: Instant::now(),
            out,
        });
    }
}

/// Two hosts: network namespaces joined to the root namespace (where a private cluster
/// listens on TCP at both veth addresses) by veth pairs. On the producers' host, 2
/// producers push and a consumer claims (`--lease 3s`) and acks; on the consumers' host,
/// 2 consumers do the same. The consumers' link is cut for 10 s, with a claim of the test
/// held there, then restored; the producers stop and the consumers drain the queue.
///
/// Asserted: nothing lost (every push that exited 0 was acked, or is drained at the end);
/// nothing acked twice (no message has two acks that exited 0); the claim held across
/// the cut came back after its lease (acked by a consumer, its own ack after the cut
/// exits 2); every command that failed exited 2 with one `spool: ` line naming the
/// server.
#[test]
fn postgres_partitioned_consumers_claims_come_back_after_their_leases() {
    if !require(true, &[("ip", &["-V"])]) {
        return;
    }
    if let Err(why) = crate::harness::server_bin_dir().ok_or("PostgreSQL's server is not installed")
    {
        return skip(why);
    }
    let n = std::process::id() % 60 * 4;
    let name = format!("sp{}", std::process::id() % 100_000);
    let producers = Netns::new(&format!("{name}p"), &format!("231.{n}"))
        .unwrap_or_else(|e| panic!("namespace: {e}"));
    let consumers = Netns::new(&format!("{name}c"), &format!("232.{n}"))
        .unwrap_or_else(|e| panic!("namespace: {e}"));
    let (cluster, port) = Cluster::private_on_tcp(&[&producers.host_addr, &consumers.host_addr])
        .unwrap_or_else(|e| panic!("cluster: {e}"));
    let dbname = cluster.create_database();
    let p_db = Db::plain(cluster.tcp_url(&producers.host_addr, port, &dbname));
    let c_db = Db::plain(cluster.tcp_url(&consumers.host_addr, port, &dbname));
    let local = Db::plain(cluster.url(&dbname));
    producers.wrap(p_db.cmd(&["push", "seed"])).run().success();
    consumers.wrap(c_db.cmd(&["pop"])).prints("seed");

    let log: Mutex<Vec<Done>> = Mutex::new(Vec::new());
    let stop_producers = AtomicBool::new(false);
    let stop_consumers = AtomicBool::new(false);
    let pushed = AtomicUsize::new(0);
    let mut held = String::new();
    std::thread::scope(|scope| {
        let _stop_p = StopOnDrop(&stop_producers);
        let _stop_c = StopOnDrop(&stop_consumers);
        for p in 0..2 {
            let (db, host, log, stop, pushed) = (&p_db, &producers, &log, &stop_producers, &pushed);
            scope.spawn(move || {
                let mut seq = 0;
                while !stop.load(Ordering::SeqCst) {
                    let m = payload(p, seq);
                    let started = Instant::now();
                    let out = host.wrap(db.cmd(&["push", "--print-id", &m])).run();
                    pushed.fetch_add(1, Ordering::SeqCst);
                    log.lock().unwrap().push(Done {
                        op: Op::Push(m),
                        started,
                        ended: Instant::now(),
                        out,
                    });
                    seq += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        }
        let (log_, stop_) = (&log, &stop_consumers);
        let (pdb, phost) = (&p_db, &producers);
        scope.spawn(move || lease_consumer(pdb, phost, log_, stop_));
        for _ in 0..2 {
            let (cdb, chost) = (&c_db, &consumers);
            scope.spawn(move || lease_consumer(cdb, chost, log_, stop_));
        }
        std::thread::sleep(Duration::from_secs(3));
        // A claim held on the consumers' host across the cut.
        consumers
            .wrap(c_db.cmd(&["push", "held across the cut"]))
            .run()
            .success();
        let out = consumers
            .wrap(c_db.cmd(&["claim", "--lease", "3s", "--wait", "--timeout", "10s"]))
            .run();
        out.success();
        held = out.text().trim_end().to_string();
        consumers.cut().expect("cut the link");
        std::thread::sleep(Duration::from_secs(10));
        consumers.restore().expect("restore the link");
        let out = consumers.wrap(c_db.cmd(&["ack", &held])).run();
        if let Err(e) = c_db.check_token_failure(&out) {
            panic!("the ack of a claim whose lease ended during the cut: {e}");
        }
        std::thread::sleep(Duration::from_secs(2));
        stop_producers.store(true, Ordering::SeqCst);
        // The consumers drain what is left (at most 30 s).
        let drained = Instant::now();
        while drained.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(500));
            if local.len() == 0 && local.stats()["claimed"] == 0 {
                break;
            }
        }
        stop_consumers.store(true, Ordering::SeqCst);
    });
    // Claims whose acks failed at the very end come back after their leases.
    std::thread::sleep(Duration::from_millis(3500));
    let drained = local.drain();
    let log = log.into_inner().unwrap();

    let mut problems = Vec::new();
    let mut pushed_ok: BTreeMap<u64, String> = BTreeMap::new();
    let mut acks: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let (mut failed_cut, mut failures) = (0, 0);
    for d in &log {
        let out = &d.out;
        let empty = out.code == 1 && out.stdout.is_empty() && out.stderr.is_empty();
        if out.code != 0 && !empty {
            failures += 1;
            let db = if d.out.command.contains(&consumers.name) {
                failed_cut += 1;
                &c_db
            } else {
                &p_db
            };
            if let Err(e) = db.check_token_failure(out) {
                problems.push(e);
            }
        }
        match &d.op {
            Op::Push(m) if out.code == 0 => {
                pushed_ok.insert(out.text().trim_end().parse().expect("an id"), m.clone());
            }
            Op::Ack(token) if out.code == 0 => {
                let id = token_id(token).expect("a token");
                acks.entry(id).or_default().push(token.clone());
            }
            _ => {}
        }
    }
    let twice: Vec<_> = acks.iter().filter(|(_, t)| t.len() > 1).collect();
    if !twice.is_empty() {
        problems.push(format!("acked twice: {twice:?}"));
    }
    let lost: Vec<_> = pushed_ok
        .iter()
        .filter(|(id, m)| !acks.contains_key(id) && !drained.contains(m))
        .collect();
    if !lost.is_empty() {
        problems.push(format!("{} lost: {lost:?}", lost.len()));
    }
    // The held claim came back: acked under another token (its own ack failed), or left
    // in the queue.
    let held_id = token_id(&held).expect("a token");
    let came_back = acks
        .get(&held_id)
        .is_some_and(|t| t.iter().all(|t| *t != held))
        || drained.iter().any(|m| m == "held across the cut");
    if !came_back {
        problems.push(format!(
            "the claim held across the cut ({held}) never came back: {:?}",
            acks.get(&held_id)
        ));
    }
    eprintln!(
        "partition: {} pushes confirmed, {} acked, {} drained, {failures} commands failed \
         ({failed_cut} on the consumers' host)",
        pushed_ok.len(),
        acks.len(),
        drained.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        !pushed_ok.is_empty() && !acks.is_empty(),
        "nothing pushed or acked: the test did not test"
    );
    drop(cluster);
    drop(consumers);
    drop(producers);
}

// ---------------------------------------------------------------------------------------
// What the random kills found once: a listing must be one snapshot.

/// `list --state all` while 12 messages go back and forth between claimed and ready
/// (4 processes claim and nack): they exist all along, so every listing must show each
/// exactly once. Each state is a statement of its own (ready, then delayed, claimed,
/// failed): unless they share one snapshot, a message nacked between the ready
/// statement and the claimed one is in neither (and one claimed in between in both).
#[test]
fn postgres_list_all_shows_a_moving_message_once() {
    let Some((db, _pg)) = shared_db() else { return };
    let n = 12;
    let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    db.cmd(&["push"]).args(&names).run().success();
    let stop = AtomicBool::new(false);
    let mut wrong = Vec::new();
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&stop);
        for _ in 0..4 {
            let (db2, stop2) = (&db, &stop);
            scope.spawn(move || {
                while !stop2.load(Ordering::SeqCst) {
                    let out = db2.run(&["claim", "--lease", "1m"]);
                    if out.code == 0 {
                        db2.run(&["nack", out.text().trim_end()]).success();
                    }
                }
            });
        }
        for _ in 0..300 {
            let listed = db.states();
            let ids: BTreeSet<u64> = listed.iter().map(|(id, _)| *id).collect();
            if listed.len() != n || ids.len() != n {
                wrong.push(listed);
            }
        }
    });
    assert!(
        wrong.is_empty(),
        "{} of 300 listings did not show each message once, e.g. {:?}",
        wrong.len(),
        wrong[0]
    );
}
