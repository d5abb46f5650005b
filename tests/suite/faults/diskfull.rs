//! A full disk: the spool lives on a small tmpfs (`mount -t tmpfs -o size=256k`).
//! Pushes fail cleanly (exit 2, one "spool: " line saying "No space left on device" and
//! that nothing was pushed), every message pushed before pops intact, consumers keep
//! working on the full disk, and once space is freed pushes work again. The same when
//! the inodes run out (`nr_inodes`).

use crate::harness::{Cmd, Mount, Rng, assert_empty, bytes, drain, list_all, require};

fn tmpfs(options: &str) -> Option<(tempfile::TempDir, Mount)> {
    if !require(true, &[("mount", &["-V"])]) {
        return None;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let m = Mount::tmpfs(&tmp.path().join("mnt"), options)
        .unwrap_or_else(|e| panic!("mount tmpfs: {e}"));
    Some((tmp, m))
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng::new(i as u64).fill(&mut v);
    v[..8].copy_from_slice(&(i as u64).to_le_bytes());
    v
}

#[track_caller]
fn assert_no_space(out: &crate::harness::Output, what: &str) {
    out.check_error().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.stderr.contains("No space left on device") && out.stderr.contains("nothing was pushed"),
        "{what}: not a clear message:\n{out:?}"
    );
}

#[test]
fn pushes_until_the_disk_is_full_then_every_message_pops_intact() {
    let Some((_tmp, m)) = tmpfs("size=256k,mode=0700") else {
        return;
    };
    let root = m.dir.join("spool");
    let mut pushed: Vec<Vec<u8>> = Vec::new();
    let full = loop {
        let p = payload(pushed.len(), 10_000);
        let out = Cmd::at(&root).args(["push"]).stdin(p.clone()).run();
        if out.ok() {
            out.success();
            pushed.push(p);
            assert!(pushed.len() < 100, "256 kB never filled up");
            continue;
        }
        break out;
    };
    assert_no_space(&full, "the push that filled the disk");
    assert!(pushed.len() >= 5, "only {} pushes fit", pushed.len());
    // A batch fails as a whole, a small one too.
    let batch = Cmd::at(&root)
        .args(["push", "--lines"])
        .stdin(
            vec![b'x'; 60_000]
                .into_iter()
                .chain(*b"\nlast\n")
                .collect::<Vec<u8>>(),
        )
        .run();
    assert_no_space(&batch, "a batch on a full disk");
    let listed = list_all(&root, "default").expect("list on a full disk");
    assert_eq!(
        listed.len(),
        pushed.len(),
        "the failed pushes left messages"
    );
    // Consumers work on a full disk: claim, ack and pop.
    let token = Cmd::at(&root).args(["claim"]).run();
    token.success();
    Cmd::at(&root)
        .args(["ack", token.text_lossy().trim_end()])
        .run()
        .success();
    let first = Cmd::at(&root).args(["pop"]).run();
    first.success();
    assert_eq!(first.stdout, pushed[1]);
    // Space freed: pushes work again.
    let again = payload(1000, 10_000);
    Cmd::at(&root)
        .args(["push"])
        .stdin(again.clone())
        .run()
        .success();
    let mut expected: Vec<Vec<u8>> = pushed[2..].to_vec();
    expected.push(again);
    let popped = drain(&root, "default").expect("drain");
    assert!(
        popped == expected,
        "popped {} messages, not the {} pushed",
        popped.len(),
        expected.len()
    );
    assert_empty(&root.join("default/tmp"), "after draining");
}

#[test]
fn a_disk_filled_by_someone_else_fails_pushes_cleanly_and_consumers_still_work() {
    let Some((_tmp, m)) = tmpfs("size=256k,mode=0700") else {
        return;
    };
    let root = m.dir.join("spool");
    Cmd::at(&root)
        .args(["push", "m1", "m2", "m3"])
        .run()
        .success();
    // Another program takes every free byte.
    let filler = m.dir.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
    }
    for (args, input) in [
        (&["push", "x"][..], None),
        (&["push"][..], Some(vec![7u8; 5000])),
        (&["push", "--lines"][..], Some(b"a\nb\nc\n".to_vec())),
        (&["push", "--delay", "1h", "later"][..], None),
        (&["push", "--priority", "5", "urgent"][..], None),
    ] {
        let mut call = Cmd::at(&root).args(args);
        if let Some(i) = input {
            call = call.stdin(i);
        }
        let out = call.run();
        assert_no_space(&out, &format!("{args:?} on a full disk"));
    }
    assert_eq!(
        crate::harness::id_states(&list_all(&root, "default").unwrap()),
        [(1, "ready"), (2, "ready"), (3, "ready")]
    );
    let token = Cmd::at(&root).args(["claim"]).run();
    token.success();
    Cmd::at(&root)
        .args(["nack", token.text_lossy().trim_end()])
        .run()
        .success();
    let popped = Cmd::at(&root).args(["pop"]).run();
    assert_eq!(popped.success().stdout, b"m2");
    std::fs::remove_file(&filler).unwrap();
    Cmd::at(&root).args(["push", "m4"]).run().success();
    assert_eq!(drain(&root, "default").unwrap(), bytes(&["m3", "m1", "m4"]));
}

#[test]
fn running_out_of_inodes_fails_pushes_cleanly() {
    let Some((_tmp, m)) = tmpfs("size=4m,nr_inodes=40,mode=0700") else {
        return;
    };
    let root = m.dir.join("spool");
    let mut pushed = Vec::new();
    let full = loop {
        let msg = format!("message {}", pushed.len());
        let out = Cmd::at(&root).args(["push", &msg]).run();
        if !out.ok() {
            break out;
        }
        out.success();
        pushed.push(msg);
        assert!(pushed.len() < 100, "40 inodes never ran out");
    };
    assert_no_space(&full, "the push that found no inode");
    assert!(!pushed.is_empty(), "no push fitted at all:\n{full:?}");
    let refs: Vec<&str> = pushed.iter().map(String::as_str).collect();
    // Popping frees inodes: a push fits again.
    let first = Cmd::at(&root).args(["pop"]).run();
    first.success();
    assert_eq!(first.stdout, refs[0].as_bytes());
    Cmd::at(&root).args(["push", "after"]).run().success();
    let mut expected = bytes(&refs[1..]);
    expected.push(b"after".to_vec());
    assert_eq!(drain(&root, "default").unwrap(), expected);
}
