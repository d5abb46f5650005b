//! Random kills under load: two producers (`push --print-id`), a popper (`pop > FILE`),
//! a claimer (`claim`, then `show TOKEN > FILE` and, when that worked, `ack TOKEN`) and
//! two `run --max 1` workers (whose command copies the message to a file) loop for 60
//! seconds (60 under CI=true; 20 otherwise, as printed), while the test SIGKILLs one of
//! their spool processes at random every 10 to 150 ms. Then everything is stopped, the
//! leases are let end and the queue drained, and:
//!
//! - every push that exited 0 was delivered at least once (nothing lost), whole;
//! - no message was consumed twice by consumers that exited 0 (a pop, an ack or a run
//!   that exited 0 consumed it for good);
//! - a message delivered more than once had a consumer that was killed while holding it
//!   (at-least-once): such duplicates are counted and reported, and any other is a
//!   failure;
//! - everything delivered is a message that was pushed, byte for byte;
//! - no two pushes got the same id;
//! - afterwards `tmp/` and `claimed/` are empty and `fsck` finds nothing.

use std::collections::HashMap;
use std::fs;
use std::time::{Duration, Instant};

use crate::harness::{
    BIN, Cmd, Rng, assert_no_leftovers, drain, group_members, in_ci, kill_group_and_wait, names_in,
    require, spawn_workload,
};

const WORKLOAD: &str = r#"
BIN=$1 ROOT=$2 D=$3
export D
FILL=$(printf '%0300d' 0)
producer() {
    p=$1 k=0
    while :; do
        k=$((k + 1))
        echo "S push $k" >> "$D/plog$p"
        id=$("$BIN" --dir "$ROOT" push --print-id "p$p-k$k-${FILL:0:$(( (k * 13) % 300 ))}")
        echo "E push $k $? $id" >> "$D/plog$p"
    done
}
popper() {
    j=0
    while :; do
        j=$((j + 1))
        echo "S pop $j" >> "$D/pops"
        "$BIN" --dir "$ROOT" pop > "$D/out/pop.$j"
        rc=$?
        echo "E pop $j $rc" >> "$D/pops"
        [ $rc = 1 ] && sleep 0.01
    done
}
claimer() {
    j=0
    while :; do
        j=$((j + 1))
        t=$("$BIN" --dir "$ROOT" claim --lease 5s)
        rc=$?
        echo "E claim $j $rc $t" >> "$D/claims"
        [ $rc = 1 ] && sleep 0.01
        [ $rc = 0 ] || continue
        "$BIN" --dir "$ROOT" show "$t" > "$D/out/claim.$j"
        rc=$?
        echo "E show $j $rc" >> "$D/claims"
        [ $rc = 0 ] || continue
        "$BIN" --dir "$ROOT" ack "$t"
        echo "E ack $j $?" >> "$D/claims"
    done
}
runner() {
    w=$1 j=0
    while :; do
        j=$((j + 1))
        K=$j W=$w "$BIN" --dir "$ROOT" run --max 1 --backoff 0 -- \
            sh -c 'cat > "$D/out/run.$W.$K.$SPOOL_ID.$$"'
        rc=$?
        echo "E run $j $rc" >> "$D/run$w"
        [ $rc = 0 ] && [ -z "$(ls "$D/out" | grep "^run\.$w\.$j\.")" ] && sleep 0.01
    done
}
mkdir -p "$D/out"
producer 0 &
producer 1 &
popper &
claimer &
runner 0 &
runner 1 &
wait
"#;

/// The message producer `p` pushes `k`-th.
fn message(p: u32, k: u64) -> Vec<u8> {
    format!("p{p}-k{k}-{}", "0".repeat(((k * 13) % 300) as usize)).into_bytes()
}

/// `E OP N RC [WORD]` lines of a log: N -> (RC, WORD), per OP.
fn ends(path: &std::path::Path) -> HashMap<(String, u64), (i32, String)> {
    let mut m = HashMap::new();
    for line in fs::read_to_string(path).unwrap_or_default().lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if let ["E", op, n, rc, rest @ ..] = f.as_slice()
            && let (Ok(n), Ok(rc)) = (n.parse(), rc.parse())
        {
            m.insert(
                (op.to_string(), n),
                (rc, rest.first().unwrap_or(&"").to_string()),
            );
        }
    }
    m
}

/// Who delivered a message, and whether it finished with exit 0 (consumed for good).
#[derive(Debug, Clone)]
struct Delivery {
    by: String,
    confirmed: bool,
    killed: bool,
}

#[test]
fn random_kills_under_load_lose_nothing() {
    if !require(false, &[("bash", &["-c", "true"]), ("sh", &["-c", "true"])]) {
        return;
    }
    let seconds = if in_ci() { 60 } else { 20 };
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("spool");
    let d = tmp.path().join("d");
    fs::create_dir_all(&d).unwrap();
    let (mut rng, seed) = Rng::from_clock();
    let child = spawn_workload(WORKLOAD, [BIN.as_ref(), root.as_os_str(), d.as_os_str()]);
    let pgid = child.id() as i32;
    // Kill the workload whatever happens to the test.
    struct Group(i32, std::process::Child);
    impl Drop for Group {
        fn drop(&mut self) {
            kill_group_and_wait(self.0);
            let _ = self.1.wait();
        }
    }
    let group = Group(pgid, child);
    let start = Instant::now();
    let mut kills: HashMap<String, u32> = HashMap::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(rng.range(10, 150)));
        let victims: Vec<(i32, String)> = group_members(pgid)
            .into_iter()
            .filter_map(|pid| {
                let cmd = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let args: Vec<String> = cmd
                    .split(|&b| b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                (args.first().map(String::as_str) == Some(BIN))
                    .then(|| (pid, args.get(3).cloned().unwrap_or_default()))
            })
            .collect();
        if victims.is_empty() {
            continue;
        }
        let (pid, what) = &victims[rng.range(0, victims.len() as u64) as usize];
        if let Some(p) = rustix::process::Pid::from_raw(*pid)
            && rustix::process::kill_process(p, rustix::process::Signal::KILL).is_ok()
        {
            *kills.entry(what.clone()).or_default() += 1;
        }
    }
    drop(group);
    // The commands of killed runs live in their own process groups: let them finish.
    std::thread::sleep(Duration::from_millis(500));
    let drained = drain(&root, "default").expect("drain after the kills");

    // Pushes.
    let mut pushed: HashMap<Vec<u8>, Option<u64>> = HashMap::new();
    let mut confirmed_ids: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut killed_pushes = 0;
    for p in 0..2u32 {
        let log = ends(&d.join(format!("plog{p}")));
        let started = fs::read_to_string(d.join(format!("plog{p}")))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("S push "))
            .count() as u64;
        for k in 1..=started {
            let m = message(p, k);
            match log.get(&("push".to_string(), k)) {
                Some((0, id)) => {
                    let id: u64 = id.parse().unwrap_or_else(|_| panic!("push printed {id:?}"));
                    if let Some(other) = confirmed_ids.insert(id, m.clone()) {
                        panic!(
                            "two pushes got id {id}: {:?} and {:?}",
                            String::from_utf8_lossy(&other),
                            String::from_utf8_lossy(&m)
                        );
                    }
                    pushed.insert(m, Some(id));
                }
                Some((137, _)) | None => {
                    killed_pushes += 1;
                    pushed.insert(m, None);
                }
                Some((rc, _)) => panic!("push {p}/{k} exited {rc} without being killed"),
            }
        }
    }

    // Deliveries.
    let mut deliveries: HashMap<Vec<u8>, Vec<Delivery>> = HashMap::new();
    let mut partial = 0;
    let mut deliver = |content: Vec<u8>, by: String, rc: Option<i32>| {
        if content.is_empty() {
            return;
        }
        if !pushed.contains_key(&content) {
            // A consumer killed while writing leaves a prefix of a message, never more.
            assert!(
                rc != Some(0) && pushed.keys().any(|m| m.starts_with(&content)),
                "{by} delivered {:?}, which is no message that was pushed",
                String::from_utf8_lossy(&content)
            );
            partial += 1;
            return;
        }
        deliveries.entry(content).or_default().push(Delivery {
            by,
            confirmed: rc == Some(0),
            killed: rc.is_none_or(|c| c == 137),
        });
    };
    let pops = ends(&d.join("pops"));
    let claims = ends(&d.join("claims"));
    let runs: Vec<_> = (0..2).map(|w| ends(&d.join(format!("run{w}")))).collect();
    for name in names_in(&d.join("out")) {
        let content = fs::read(d.join("out").join(&name)).unwrap();
        let f: Vec<&str> = name.split('.').collect();
        match f.as_slice() {
            ["pop", j] => {
                let j: u64 = j.parse().unwrap();
                let rc = pops.get(&("pop".into(), j)).map(|e| e.0);
                deliver(content, name.clone(), rc);
            }
            ["claim", j] => {
                let j: u64 = j.parse().unwrap();
                let show = claims.get(&("show".into(), j)).map(|e| e.0);
                let ack = claims.get(&("ack".into(), j)).map(|e| e.0);
                let rc = match (show, ack) {
                    (Some(0), a) => a,
                    (s, _) => s,
                };
                deliver(content, name.clone(), rc);
            }
            ["run", w, k, _id, _pid] => {
                let w: usize = w.parse().unwrap();
                let k: u64 = k.parse().unwrap();
                let rc = runs[w].get(&("run".into(), k)).map(|e| e.0);
                deliver(content, name.clone(), rc);
            }
            _ => panic!("unexpected output file {name}"),
        }
    }
    for m in drained {
        deliver(m, "the final drain".into(), Some(0));
    }

    // Judge.
    let mut lost = Vec::new();
    let mut duplicates = 0;
    let mut duplicated_messages = 0;
    let mut dup_causes: HashMap<String, u32> = HashMap::new();
    for (m, id) in &pushed {
        let got = deliveries.get(m).map_or(&[][..], Vec::as_slice);
        if got.is_empty() {
            if id.is_some() {
                lost.push(format!("{:?} (id {id:?})", String::from_utf8_lossy(m)));
            }
            continue;
        }
        let confirmed = got.iter().filter(|d| d.confirmed).count();
        assert!(
            confirmed <= 1,
            "{:?} was consumed for good {confirmed} times: {got:?}",
            String::from_utf8_lossy(m)
        );
        if got.len() > 1 {
            assert!(
                got.iter().any(|d| d.killed),
                "{:?} was delivered {} times, and none of its consumers was killed: {got:?}",
                String::from_utf8_lossy(m),
                got.len()
            );
            duplicates += got.len() - 1;
            duplicated_messages += 1;
            for d in got.iter().filter(|d| d.killed) {
                let kind = d.by.split('.').next().unwrap_or("?").to_string();
                *dup_causes.entry(kind).or_default() += 1;
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{} pushes that exited 0 were never delivered: {lost:?}",
        lost.len()
    );
    assert_no_leftovers(&root.join("default"), "after draining");
    let fsck = Cmd::at(&root).args(["fsck"]).run();
    fsck.success();
    assert!(fsck.stdout.is_empty(), "fsck after the chaos:\n{fsck:?}");
    let total_kills: u32 = kills.values().sum();
    let mut by: Vec<String> = kills.iter().map(|(k, v)| format!("{k} {v}")).collect();
    by.sort();
    eprintln!(
        "faults::chaos: {seconds}s{} (seed {seed}): {} pushes exited 0, {killed_pushes} were \
         killed; {total_kills} spool processes killed ({}); {} deliveries; messages lost: 0; \
         {duplicates} duplicate deliveries of {duplicated_messages} messages, each after a \
         consumer was killed holding it (killed holders: {}); {partial} partial outputs of \
         killed consumers",
        if in_ci() {
            ""
        } else {
            " (not CI: 60s under CI=true)"
        },
        confirmed_ids.len(),
        by.join(", "),
        deliveries.values().map(Vec::len).sum::<usize>(),
        {
            let mut c: Vec<String> = dup_causes.iter().map(|(k, v)| format!("{k} {v}")).collect();
            c.sort();
            c.join(", ")
        }
    );
}
