//! Many processes at once: 8 producers and 8 consumers, one spool process per push or
//! pop. Every message must come out exactly once, and each producer's messages in the
//! order it pushed them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{Fixture, json_lines, missing, skip, strace_usable};

const PRODUCERS: usize = 8;
const CONSUMERS: usize = 8;
const PER_PRODUCER: usize = 200;
const TOTAL: usize = PRODUCERS * PER_PRODUCER;

/// One message delivered by one `spool pop` process, and when that process ran.
struct Pop {
    payload: String,
    stderr: String,
    started: Instant,
    ended: Instant,
}

/// Counts a producer as finished even when it panics, so consumers always stop.
struct Finished<'a>(&'a AtomicUsize);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn producers_and_consumers_lose_and_duplicate_nothing() {
    let s = Fixture::new();
    let finished = AtomicUsize::new(0);
    let popped = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);

    let pops: Vec<Pop> = std::thread::scope(|scope| {
        for p in 0..PRODUCERS {
            let (s, finished, failed) = (&s, &finished, &failed);
            scope.spawn(move || {
                let _done = Finished(finished);
                for seq in 0..PER_PRODUCER {
                    if failed.load(Ordering::SeqCst) {
                        return;
                    }
                    let out = s.run(&["push", &format!("p{p}-{seq}")]);
                    if out.code != 0 || !out.stderr.is_empty() {
                        failed.store(true, Ordering::SeqCst);
                        panic!("producer {p}:\n{out:?}");
                    }
                }
            });
        }
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|c| {
                let (s, finished, popped, failed) = (&s, &finished, &popped, &failed);
                scope.spawn(move || {
                    let mut got = Vec::new();
                    while popped.load(Ordering::SeqCst) < TOTAL && !failed.load(Ordering::SeqCst) {
                        // Read before popping: an empty queue after every producer finished
                        // means there is nothing left to wait for.
                        let all_pushed = finished.load(Ordering::SeqCst) == PRODUCERS;
                        let started = Instant::now();
                        let out = s.run(&["pop"]);
                        let ended = Instant::now();
                        match out.code {
                            // Stderr is checked last, to report the worse problems first.
                            0 => {
                                popped.fetch_add(1, Ordering::SeqCst);
                                got.push(Pop {
                                    payload: String::from_utf8(out.stdout)
                                        .expect("payloads are UTF-8"),
                                    stderr: out.stderr,
                                    started,
                                    ended,
                                });
                            }
                            // Before the first push, pop says that the queue does not exist.
                            1 if out.stdout.is_empty()
                                && (out.stderr.is_empty() || out.stderr == missing("default")) =>
                            {
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

    // Every message exactly once.
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for pop in &pops {
        *counts.entry(pop.payload.as_str()).or_default() += 1;
    }
    let mut lost = Vec::new();
    for p in 0..PRODUCERS {
        for seq in 0..PER_PRODUCER {
            if !counts.contains_key(format!("p{p}-{seq}").as_str()) {
                lost.push(format!("p{p}-{seq}"));
            }
        }
    }
    let duplicated: Vec<(&&str, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    let unknown: Vec<&&str> = counts
        .keys()
        .filter(|k| {
            let Some((p, seq)) = k.strip_prefix('p').and_then(|r| r.split_once('-')) else {
                return true;
            };
            !matches!((p.parse::<usize>(), seq.parse::<usize>()),
                (Ok(p), Ok(seq)) if p < PRODUCERS && seq < PER_PRODUCER)
        })
        .collect();
    assert!(lost.is_empty(), "{} lost: {lost:?}", lost.len());
    assert!(duplicated.is_empty(), "duplicated: {duplicated:?}");
    assert!(unknown.is_empty(), "never pushed: {unknown:?}");
    assert_eq!(pops.len(), TOTAL);

    // Each producer's order: a message must never be popped by a process that ended
    // before the process popping an earlier message of the same producer began.
    for p in 0..PRODUCERS {
        let prefix = format!("p{p}-");
        let mut mine: Vec<(usize, &Pop)> = pops
            .iter()
            .filter_map(|pop| {
                let seq = pop.payload.strip_prefix(&prefix)?.parse().ok()?;
                Some((seq, pop))
            })
            .collect();
        mine.sort_by_key(|(seq, _)| *seq);
        let mut latest_start: Option<(usize, Instant)> = None;
        for &(seq, pop) in &mine {
            if let Some((earlier, started)) = latest_start {
                assert!(
                    started <= pop.ended,
                    "p{p}-{seq} was popped before p{p}-{earlier} was even asked for"
                );
            }
            if latest_start.is_none_or(|(_, t)| pop.started > t) {
                latest_start = Some((seq, pop.started));
            }
        }
    }

    // A successful pop among spool's own processes has nothing to warn about.
    let warnings: Vec<&str> = pops
        .iter()
        .map(|p| p.stderr.as_str())
        .filter(|e| !e.is_empty())
        .collect();
    assert!(
        warnings.is_empty(),
        "{} of {TOTAL} pops wrote to stderr, e.g. {:?}",
        warnings.len(),
        warnings[0]
    );

    // Nothing left behind, and every push used one id.
    assert_eq!(s.len("default"), 0);
    let stats = &json_lines(&s.run(&["stats", "--json"]).stdout)[0];
    assert_eq!(stats["claimed"], 0);
    assert_eq!(stats["next_id"], TOTAL as u64 + 1);
    let q = s.queue_dir("default");
    crate::harness::assert_no_leftovers(&q, "after the consumers");
}

/// A message is published by its rename into `ready/`. A pop that runs while the
/// producer is still between that rename and its exit must return that message: the
/// queue is not empty, nothing else is waiting, and the order must hold afterwards.
///
/// The producer is held right after its rename (strace delays the return of `renameat2`
/// by a few seconds, as a stopped or descheduled process would be) and the pop runs
/// meanwhile. Should the machine be too slow to run the pop in that window, the producer
/// simply finishes first and the test still holds.
#[test]
fn pop_during_a_publication_returns_the_message() {
    if let Err(why) = strace_usable() {
        return skip(&why);
    }
    let s = Fixture::new();
    s.push(&["seed"]);
    s.prints(&["pop"], "seed");
    let mut producer = Some(
        s.cmd()
            .pause_after("renameat2", 1, 4)
            .args(["push", "published"])
            .spawn(),
    );
    let file = s.message_path("default", 2);
    while !file.exists() {
        if producer.as_mut().unwrap().exited() {
            let out = producer.take().unwrap().finish();
            panic!("the producer ended before publishing:\n{out:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let during = s.run(&["pop"]);
    producer.unwrap().finish().success();
    s.push(&["later"]);
    let mut order = Vec::new();
    if during.code == 0 {
        order.push(String::from_utf8_lossy(&during.stdout).into_owned());
    }
    order.extend(
        s.pop_all("default")
            .iter()
            .map(|m| String::from_utf8_lossy(m).into_owned()),
    );
    assert_eq!(
        order,
        ["published", "later"],
        "messages out of order; the pop during the publication was:\n{during:?}"
    );
    during.success().stdout_is("published");
}

/// Messages of mixed lengths, one line each, all different: from empty to 20,000 bytes
/// (past the 8 KiB a copy moves at a time, under the 64 KiB a record is written whole).
fn mixed_lines(n: usize) -> Vec<String> {
    const LENGTHS: [usize; 7] = [0, 3, 50, 700, 4090, 9000, 20_000];
    (0..n)
        .map(|i| format!("{i:05}-{}", "x".repeat(LENGTHS[i % LENGTHS.len()])))
        .collect()
}

/// Pushes `messages` (one line each), runs `loops` shell loops of `spool ARGS >> out`
/// at once, each `rounds` times or until spool exits non-zero, and returns the lines of
/// `out`.
fn append_concurrently(s: &Fixture, messages: &[String], args: &str, rounds: usize) -> Vec<String> {
    s.run_stdin(&["push", "--lines"], messages.join("\n") + "\n")
        .success();
    let out = s.outside("out");
    let script = format!(
        "for c in 1 2 3 4 5 6; do \
           (i=0; while [ $i -lt {rounds} ] && spool {args} >> '{}'; do i=$((i+1)); done) & \
         done; wait",
        out.display()
    );
    s.sh(&script).run().success();
    let text = String::from_utf8(std::fs::read(&out).expect("read out")).expect("UTF-8 out");
    let lines: Vec<String> = text.split_terminator('\n').map(String::from).collect();
    assert!(text.ends_with('\n'), "out does not end with a newline");
    lines
}

/// Asserts that every line is one of `messages`, naming the first that is not.
fn assert_whole_records(lines: &[String], messages: &[String]) {
    let known: std::collections::HashSet<&str> = messages.iter().map(String::as_str).collect();
    let torn: Vec<String> = lines
        .iter()
        .filter(|l| !known.contains(l.as_str()))
        .map(|l| l.chars().take(40).collect())
        .collect();
    assert!(
        torn.is_empty(),
        "{} of {} lines are not messages, such as {:?}",
        torn.len(),
        lines.len(),
        &torn[..torn.len().min(3)]
    );
}

// Records of concurrent consumers appending to one file came out merged: each message
// left in one write and its newline in another, so another consumer's append landed
// between them.
#[test]
fn consumers_appending_to_one_file_never_merge_records() {
    for args in ["pop --lines", "pop -n 8 --lines"] {
        let s = Fixture::new();
        let messages = mixed_lines(if args.contains("-n") { 1400 } else { 420 });
        let lines = append_concurrently(&s, &messages, args, usize::MAX >> 1);
        assert_whole_records(&lines, &messages);
        let mut sorted = lines.clone();
        sorted.sort();
        let mut expected = messages.clone();
        expected.sort();
        assert!(sorted == expected, "{args}: messages lost or repeated");
        assert_eq!(s.len("default"), 0);
    }
}

// Records of concurrent peeks appending to one file came out merged, as those of pop.
#[test]
fn peeks_appending_to_one_file_never_merge_records() {
    let s = Fixture::new();
    let messages = mixed_lines(8);
    let lines = append_concurrently(&s, &messages, "peek -n 8 --lines", 40);
    assert_whole_records(&lines, &messages);
    assert_eq!(lines.len(), 6 * 40 * 8);
}
