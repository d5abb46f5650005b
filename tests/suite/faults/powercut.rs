//! Power cuts: a push / pop / claim / ack workload on a loop-mounted xfs or ext4 image,
//! cut at a random moment by `xfs_io -x -c shutdown MNT` (no flush: what was not on the
//! disk is lost, as in a power cut), then the filesystem is unmounted, mounted again
//! (journal recovery) and the queue checked. 50 rounds per filesystem, on one queue that
//! lives through all of them.
//!
//! The workload is bash: one producer loop (`push --print-id < FILE`) and two consumer
//! loops (`pop > FILE`, and `claim` then `ack`), each logging the start and the end of
//! every command with its exit status and `$EPOCHREALTIME`. Only commands that returned
//! before the cut began are judged (an fsync that returns while the shutdown is in flight
//! may still be undone). The whole process group is killed before unmounting, so no
//! straggler runs after the remount. After each cut:
//!
//! - every push that exited 0 is there with identical bytes, unless a pop wrote it out
//!   or an ack of it was started (a consumer may have taken it);
//! - no message that a pop or an ack removed (exit 0 before the cut) came back;
//! - no partial message is visible: every message is byte for byte one that was pushed,
//!   and none is there twice;
//! - every message from before the round is still there, unless consumed in the round;
//! - the counter is above every id printed or visible (ids never go back);
//! - `list --state all --json` agrees with the files, and `fsck --repair` mends whatever
//!   the cut left (orphaned temporary files, claims of killed processes) and exits 0,
//!   after which `fsck` finds nothing.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::{
    BIN, Cmd, Mount, Rng, kill_group_and_wait, list_all, now_us, require, spawn_workload,
};

const ROUNDS: u32 = 50;
/// Payload files written per round: more than a round can push.
const PAYLOADS: u64 = 600;

const WORKLOAD: &str = r#"
BIN=$1 ROOT=$2 W=$3 PRODUCERS=$4 CONSUMERS=$5
producer() {
    p=$1 k=$1
    while :; do
        k=$((k + 2))
        [ -e "$W/pay/$k" ] || break
        echo "S push $k" >> "$W/plog$p"
        id=$("$BIN" --dir "$ROOT" push --print-id < "$W/pay/$k")
        rc=$?
        echo "E push $k $rc $EPOCHREALTIME $id" >> "$W/plog$p"
    done
}
consumer() {
    c=$1 j=0
    mkdir -p "$W/out$c"
    while :; do
        j=$((j + 1))
        if [ $((j % 2)) = "$c" ]; then
            echo "S pop $j" >> "$W/clog$c"
            "$BIN" --dir "$ROOT" pop > "$W/out$c/$j"
            rc=$?
            echo "E pop $j $rc $EPOCHREALTIME" >> "$W/clog$c"
        else
            echo "S claim $j" >> "$W/clog$c"
            t=$("$BIN" --dir "$ROOT" claim --lease 2s)
            rc=$?
            echo "E claim $j $rc $EPOCHREALTIME $t" >> "$W/clog$c"
            if [ "$rc" = 0 ]; then
                echo "S ack $j $t" >> "$W/clog$c"
                "$BIN" --dir "$ROOT" ack "$t"
                rc=$?
                echo "E ack $j $rc $EPOCHREALTIME $t" >> "$W/clog$c"
            fi
        fi
    done
}
producer 0 &
[ "$PRODUCERS" = 2 ] && producer 1 &
consumer 0 &
[ "$CONSUMERS" = 2 ] && consumer 1 &
wait
"#;

/// The payload of push `k` of round `round`: unique, binary, some small, some tens of kB
/// (several pages, so that a torn write would show).
fn payload(round: u32, k: u64) -> Vec<u8> {
    let mut v = format!("round {round} push {k}\n").into_bytes();
    let extra = if k.is_multiple_of(5) {
        20_000 + (k * 7919) % 30_000
    } else {
        (k * 37) % 400
    } as usize;
    let mut noise = vec![0u8; extra];
    crate::harness::Rng::new(u64::from(round) << 32 | k).fill(&mut noise);
    v.extend(noise);
    v
}

/// `$EPOCHREALTIME` ("1732520000.123456") in microseconds.
fn parse_time(s: &str) -> Option<u128> {
    let (sec, usec) = s.split_once(['.', ','])?;
    Some(sec.parse::<u128>().ok()? * 1_000_000 + usec.parse::<u128>().ok()?)
}

/// One logged command: what it was, its number, its exit status and end time (None when
/// it never ended), and its output word (id or token).
#[derive(Debug, Default, Clone)]
struct Logged {
    op: String,
    n: u64,
    rc: Option<i32>,
    end: Option<u128>,
    word: String,
    /// The consumer (0 or 1), for pops' output files.
    consumer: usize,
}

fn parse_log(path: &Path, consumer: usize) -> Vec<Logged> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut out: Vec<Logged> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["S", op, n, rest @ ..] => out.push(Logged {
                op: op.to_string(),
                n: n.parse().unwrap_or(0),
                word: rest.first().unwrap_or(&"").to_string(),
                consumer,
                ..Logged::default()
            }),
            ["E", op, n, rc, t, rest @ ..] => {
                let n: u64 = n.parse().unwrap_or(0);
                if let Some(l) = out.iter_mut().rev().find(|l| l.op == *op && l.n == n) {
                    l.rc = rc.parse().ok();
                    l.end = parse_time(t);
                    if let Some(w) = rest.first() {
                        l.word = w.to_string();
                    }
                }
            }
            _ => {} // a line cut short by the kill
        }
    }
    out
}

/// Every message file of a queue, read directly: (id, state, content).
fn read_queue(q: &Path) -> Result<Vec<(u64, String, Vec<u8>)>, String> {
    let mut found = Vec::new();
    let id_of = |name: &str| -> Option<u64> {
        let mut parts = name.split('.');
        let key: u64 = parts.next()?.parse().ok()?;
        Some(
            parts
                .find_map(|f| f.strip_prefix('i').and_then(|v| v.parse().ok()))
                .unwrap_or(key),
        )
    };
    let mut dirs: Vec<(PathBuf, &str)> = Vec::new();
    for lane in std::iter::once("ready".to_string()).chain((1..=9).map(|p| format!("ready-{p}"))) {
        for b in crate::harness::names_in(&q.join(&lane)) {
            dirs.push((q.join(&lane).join(b), "ready"));
        }
    }
    for s in ["delayed", "claimed", "failed"] {
        dirs.push((q.join(s), s));
    }
    for (dir, state) in dirs {
        for name in crate::harness::names_in(&dir) {
            let id = id_of(&name).ok_or_else(|| format!("a foreign entry {dir:?}/{name}"))?;
            let content =
                fs::read(dir.join(&name)).map_err(|e| format!("read {dir:?}/{name}: {e}"))?;
            found.push((id, state.to_string(), content));
        }
    }
    Ok(found)
}

/// What the rounds found, for the report.
#[derive(Default, Debug)]
struct Figures {
    rounds: u32,
    pushes_judged: usize,
    consumptions_judged: usize,
    most_messages: usize,
    leftovers_repaired: usize,
}

/// Runs the rounds on a fresh image of `fstype`.
fn power_cuts(fstype: &str, size: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = tmp.path().join("mnt");
    let mut m = Mount::image(&tmp.path().join("image"), size, fstype, &mnt)
        .unwrap_or_else(|e| panic!("set up {fstype}: {e}"));
    let root = mnt.join("spool");
    Cmd::at(&root)
        .args(["push", "--print-id", "first"])
        .run()
        .success();
    let (mut rng, seed) = Rng::from_clock();
    // id -> content of every message known to be in the queue.
    let mut known: HashMap<u64, Vec<u8>> = HashMap::from([(1, b"first".to_vec())]);
    let mut max_id = 1u64;
    let mut fig = Figures::default();
    let start = Instant::now();
    for round in 1..=ROUNDS {
        let ctx = format!("{fstype} round {round} (seed {seed})");
        let w = tmp.path().join(format!("w{round}"));
        fs::create_dir_all(w.join("pay")).unwrap();
        let mut payloads: HashMap<u64, Vec<u8>> = HashMap::new();
        for k in 1..=PAYLOADS {
            let p = payload(round, k);
            fs::write(w.join("pay").join(k.to_string()), &p).unwrap();
            payloads.insert(k, p);
        }
        // Odd rounds build a backlog, even rounds drain it and take fresh messages.
        let (producers, consumers) = if round % 2 == 1 {
            ("2", "1")
        } else {
            ("1", "2")
        };
        let child = spawn_workload(
            WORKLOAD,
            [
                BIN.as_ref(),
                root.as_os_str(),
                w.as_os_str(),
                producers.as_ref(),
                consumers.as_ref(),
            ],
        );
        let pgid = child.id() as i32;
        m.groups.push(pgid);
        std::thread::sleep(Duration::from_millis(rng.range(30, 400)));
        let cut = now_us();
        m.shutdown().unwrap_or_else(|e| panic!("{ctx}: {e}"));
        kill_group_and_wait(pgid);
        let mut child = child;
        let _ = child.wait();
        m.unmount()
            .unwrap_or_else(|e| panic!("{ctx}: unmount: {e}"));
        m.mount()
            .unwrap_or_else(|e| panic!("{ctx}: mount again: {e}"));

        let mut pushes = parse_log(&w.join("plog0"), 0);
        pushes.extend(parse_log(&w.join("plog1"), 1));
        let mut consumers = parse_log(&w.join("clog0"), 0);
        consumers.extend(parse_log(&w.join("clog1"), 1));
        let before = |l: &Logged| l.rc == Some(0) && l.end.is_some_and(|t| t < cut);

        // The pushes that returned 0 before the cut: their ids are new, above all ids of
        // earlier rounds, and increase within each producer.
        let mut confirmed: HashMap<u64, Vec<u8>> = HashMap::new();
        let max_before = max_id;
        let mut last = [max_before; 2];
        for l in pushes.iter().filter(|l| before(l)) {
            let id: u64 = l
                .word
                .parse()
                .unwrap_or_else(|_| panic!("{ctx}: push {} printed {:?}", l.n, l.word));
            assert!(
                id > last[l.consumer],
                "{ctx}: push {} got id {id}, not above {} seen before it",
                l.n,
                last[l.consumer]
            );
            last[l.consumer] = id;
            max_id = max_id.max(id);
            assert!(
                confirmed.insert(id, payloads[&l.n].clone()).is_none(),
                "{ctx}: two pushes got id {id}"
            );
        }
        fig.pushes_judged += confirmed.len();
        let by_content: HashMap<&[u8], u64> =
            payloads.iter().map(|(k, p)| (p.as_slice(), *k)).collect();
        let pushed_contents: HashSet<&[u8]> = pushes
            .iter()
            .map(|l| payloads[&l.n].as_slice())
            .chain(known.values().map(Vec::as_slice))
            .collect();

        // What the consumers may have taken (started, whatever the end), and what they
        // certainly took (exit 0 before the cut).
        let mut maybe_taken_content: HashSet<Vec<u8>> = HashSet::new();
        let mut maybe_taken_id: HashSet<u64> = HashSet::new();
        let mut taken_content: Vec<Vec<u8>> = Vec::new();
        let mut taken_id: Vec<u64> = Vec::new();
        for l in &consumers {
            match l.op.as_str() {
                "pop" => {
                    let out = w.join(format!("out{}", l.consumer)).join(l.n.to_string());
                    let got = fs::read(&out).unwrap_or_default();
                    if before(l) {
                        assert!(
                            pushed_contents.contains(got.as_slice()),
                            "{ctx}: pop {} delivered {} bytes that are no pushed message",
                            l.n,
                            got.len()
                        );
                        taken_content.push(got.clone());
                    }
                    if !got.is_empty() {
                        maybe_taken_content.insert(got);
                    }
                }
                "ack" => {
                    let id = l.word.split('.').next().and_then(|i| i.parse().ok());
                    let id: u64 = id.unwrap_or_else(|| panic!("{ctx}: token {:?}", l.word));
                    maybe_taken_id.insert(id);
                    if before(l) {
                        // An ack syncs: the push of what it acked is durable too.
                        taken_id.push(id);
                        max_id = max_id.max(id);
                    }
                }
                // A claim is not synced: a claim of a message whose push had not returned
                // yet may be undone with that push, and its id given again (see
                // an_id_handed_out_by_a_claim_is_not_reused_after_a_power_cut).
                _ => {}
            }
        }
        fig.consumptions_judged += taken_content.len() + taken_id.len();

        // The queue as spool lists it and as the files say.
        let q = root.join("default");
        let listed = list_all(&root, "default").unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let files = read_queue(&q).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let mut a: Vec<(u64, String)> = listed.iter().map(|l| (l.id, l.state.clone())).collect();
        let mut b: Vec<(u64, String)> = files.iter().map(|f| (f.0, f.1.clone())).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{ctx}: list disagrees with the files");
        let mut now: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut seen_content: HashSet<&[u8]> = HashSet::new();
        for (id, state, content) in &files {
            assert!(
                now.insert(*id, content.clone()).is_none(),
                "{ctx}: message {id} is there twice"
            );
            assert!(
                seen_content.insert(content.as_slice()),
                "{ctx}: the content of message {id} ({state}) is there twice"
            );
            match known.get(id).or(confirmed.get(id)) {
                Some(expected) => assert!(
                    expected == content,
                    "{ctx}: message {id} ({state}) has {} bytes that differ from the {} \
                     pushed",
                    content.len(),
                    expected.len()
                ),
                None => assert!(
                    by_content.contains_key(content.as_slice()),
                    "{ctx}: message {id} ({state}) of {} bytes is not a message pushed \
                     (partial or foreign)",
                    content.len()
                ),
            }
            max_id = max_id.max(*id);
        }
        for (id, content) in known.iter().chain(confirmed.iter()) {
            if !now.contains_key(id) {
                assert!(
                    maybe_taken_content.contains(content) || maybe_taken_id.contains(id),
                    "{ctx}: message {id} ({} bytes) is lost: it was pushed (and confirmed) \
                     and no consumer took it",
                    content.len()
                );
            }
        }
        for c in &taken_content {
            assert!(
                !seen_content.contains(c.as_slice()),
                "{ctx}: a message popped before the cut came back"
            );
        }
        for id in &taken_id {
            assert!(
                !now.contains_key(id),
                "{ctx}: message {id}, acked before the cut, came back"
            );
        }
        let next = crate::harness::next_id(&root, "default").unwrap_or_else(|e| panic!("{e}"));
        if next <= max_id {
            let mut why = Vec::new();
            if now.contains_key(&max_id) {
                why.push("it is in the queue".to_string());
            }
            for l in pushes.iter().filter(|l| l.word == max_id.to_string()) {
                why.push(format!("push {} printed it: {l:?} (cut at {cut})", l.n));
            }
            for l in consumers
                .iter()
                .filter(|l| l.word.starts_with(&format!("{max_id}.")))
            {
                why.push(format!("{l:?} (cut at {cut})"));
            }
            panic!(
                "{ctx}: the counter is {next}, not above id {max_id} already seen: {}",
                why.join("; ")
            );
        }
        let repair = Cmd::at(&root).args(["fsck", "--repair"]).run();
        assert!(
            repair.ok() && repair.stderr.is_empty(),
            "{ctx}: fsck --repair after the cut:\n{repair:?}"
        );
        fig.leftovers_repaired += repair.text_lossy().lines().count();
        // A claim of the workload (2 s leases) may still hold at the repair and end just
        // before this second look: that is a queue at work, not damage.
        let check = Cmd::at(&root).args(["fsck"]).run();
        let text = check.text_lossy();
        let damage: Vec<&str> = text
            .lines()
            .filter(|l| !l.ends_with("is a claim whose lease ended"))
            .collect();
        assert!(
            matches!(check.code, 0 | 3) && check.stderr.is_empty() && damage.is_empty(),
            "{ctx}: fsck after repair:\n{check:?}"
        );
        fig.most_messages = fig.most_messages.max(now.len());
        known = now;
        fig.rounds = round;
        let _ = fs::remove_dir_all(&w);
    }
    eprintln!(
        "faults::powercut {fstype}: {} power cuts in {:.1}s (seed {seed}); {} pushes and {} \
         pops or acks confirmed before a cut were judged; messages lost: 0, resurrected: 0, \
         partial: 0; at most {} messages in the queue; fsck --repair mended {} leftovers",
        fig.rounds,
        start.elapsed().as_secs_f64(),
        fig.pushes_judged,
        fig.consumptions_judged,
        fig.most_messages,
        fig.leftovers_repaired
    );
}

fn tools(fs_tool: &str) -> bool {
    require(
        true,
        &[
            ("xfs_io", &["-V"]),
            (fs_tool, &["-V"]),
            ("losetup", &["-V"]),
            ("mount", &["-V"]),
            ("bash", &["-c", "true"]),
        ],
    )
}

#[test]
fn power_cuts_on_xfs_lose_no_confirmed_push() {
    if !tools("mkfs.xfs") {
        return;
    }
    power_cuts("xfs", "320M");
}

#[test]
fn power_cuts_on_ext4_lose_no_confirmed_push() {
    if !tools("mkfs.ext4") {
        return;
    }
    power_cuts("ext4", "64M");
}

/// A claim that takes a message whose push has not returned yet (its last sync is still
/// running) hands out that message's id. A power cut then undoes the push, and with it
/// the counter: the README promises that "every id that was ever visible is below the
/// counter, even after a power cut", so the next push must not get that id again.
#[test]
fn an_id_handed_out_by_a_claim_is_not_reused_after_a_power_cut() {
    if !tools("mkfs.ext4") || !crate::harness::require_strace() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut m = Mount::image(
        &tmp.path().join("image"),
        "64M",
        "ext4",
        &tmp.path().join("mnt"),
    )
    .unwrap_or_else(|e| panic!("set up ext4: {e}"));
    let root = m.dir.join("spool");
    // A first message, pushed and popped: the queue and its counter are on disk.
    Cmd::at(&root).args(["push", "first"]).run().success();
    Cmd::at(&root).args(["pop"]).run().success();
    // A push held for 3 seconds before its directory sync.
    let slow_root = root.clone();
    let slow = std::thread::spawn(move || {
        Cmd::at(&slow_root)
            .args(["push", "second"])
            .wrap([
                "strace",
                "-f",
                "-qq",
                "-o",
                "/dev/null",
                "-e",
                "inject=fsync:delay_enter=3s:when=1",
            ])
            .run()
    });
    let start = Instant::now();
    while list_all(&root, "default").map_or(true, |l| l.is_empty()) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the push never published"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let claim = Cmd::at(&root).args(["claim", "--lease", "1h"]).run();
    claim.success();
    let token = claim.text_lossy();
    let handed: u64 = token.split('.').next().unwrap().parse().unwrap();
    m.shutdown().expect("shutdown");
    let push = slow.join().expect("push thread");
    m.unmount().expect("unmount");
    m.mount().expect("mount again");
    let next = crate::harness::push_id(&root, "default", "third").expect("push after the cut");
    assert!(
        next > handed,
        "claim handed out message {handed} (token {token:?}) before a power cut; after it, \
         a new push got id {next} again (the interrupted push said: {:?})",
        push.stderr
    );
}
