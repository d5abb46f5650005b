//! Unit tests of the local engine, on a temporary spool.

use super::entry::Entry;
use super::layout::bucket_name;
use super::*;
use crate::store::local::Spool;
use crate::store::{Claim, Error, Hold, PushOptions, State, TakeOptions};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;

const POP: TakeOptions = TakeOptions {
    hold: Hold::Process,
    max_attempts: None,
};

fn spool() -> (tempfile::TempDir, Spool, Rc<RefCell<Vec<String>>>) {
    let dir = tempfile::tempdir().unwrap();
    let warnings = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&warnings);
    let spool = Spool::new(dir.path().join("spool"), move |m| {
        sink.borrow_mut().push(m.to_string())
    });
    (dir, spool, warnings)
}

fn push(q: &Queue, messages: &[&[u8]]) -> Vec<u64> {
    let mut staging = q.stage(messages.len() > 1).unwrap();
    for m in messages {
        staging
            .add(|f, p| f.write_all(m).map_err(|e| Error::io("write", p, e)))
            .unwrap();
    }
    staging
        .publish(PushOptions::default())
        .unwrap()
        .ids()
        .collect()
}

fn pop_all(q: &Queue) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let mut taken = q.take(1, POP).unwrap();
        let Some(m) = taken.first_mut() else {
            return out;
        };
        let mut buf = Vec::new();
        m.payload().read_to_end(&mut buf).unwrap();
        out.push(buf);
        q.finish(taken).unwrap();
    }
}

#[test]
fn ids_increase_across_batches_and_clear() {
    let (_d, spool, _) = spool();
    let q = spool.create("q").unwrap();
    assert_eq!(push(&q, &[b"a"]), vec![1]);
    assert_eq!(push(&q, &[b"b", b"c", b"d"]), vec![2, 3, 4]);
    assert_eq!(q.clear(&[State::Ready, State::Delayed]).unwrap(), 4);
    assert_eq!(push(&q, &[b"e"]), vec![5]);
    assert_eq!(pop_all(&q), vec![b"e".to_vec()]);
}

#[test]
fn large_batches_cross_buckets_in_order() {
    let (_d, spool, _) = spool();
    let q = spool.create("q").unwrap();
    let payloads: Vec<Vec<u8>> = (0..2500).map(|i| format!("m{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let ids = push(&q, &refs);
    assert_eq!(ids, (1..=2500).collect::<Vec<_>>());
    assert_eq!(q.stats().unwrap().ready, 2500);
    assert_eq!(pop_all(&q), payloads);
    // Passed buckets are removed; the one the counter is in may stay.
    let buckets = std::fs::read_dir(q.path().join("ready")).unwrap().count();
    assert!(buckets <= 1, "{buckets} buckets left");
}

#[test]
fn a_dropped_claim_returns_to_its_place() {
    let (_d, spool, _) = spool();
    let q = spool.create("q").unwrap();
    push(&q, &[b"one", b"two"]);
    let taken = q.take(1, POP).unwrap();
    assert_eq!(taken[0].id(), 1);
    // The process "dies": its flock goes with the file, the claim stays on disk.
    drop(taken);
    assert_eq!(
        std::fs::read_dir(q.path().join("claimed")).unwrap().count(),
        1
    );
    assert_eq!(pop_all(&q), vec![b"one".to_vec(), b"two".to_vec()]);
}

#[test]
fn a_live_claim_is_not_recovered() {
    let (_d, spool, _) = spool();
    let q = spool.create("q").unwrap();
    push(&q, &[b"one", b"two"]);
    let held = q.take(1, POP).unwrap();
    let next = q.take(1, POP).unwrap();
    assert_eq!(next[0].id(), 2);
    q.give_back(held).unwrap();
    q.give_back(next).unwrap();
    assert_eq!(pop_all(&q), vec![b"one".to_vec(), b"two".to_vec()]);
}

#[test]
fn gaps_are_skipped_and_the_head_heals() {
    let (_d, spool, _) = spool();
    let q = spool.create("q").unwrap();
    push(&q, &[b"a", b"b", b"c"]);
    std::fs::remove_file(
        q.path()
            .join("ready/00000000000000000/00000000000000000001"),
    )
    .unwrap();
    // A head file reset to 1 (as after a crash) must not hide anything either.
    assert_eq!(pop_all(&q), vec![b"b".to_vec(), b"c".to_vec()]);
}

#[test]
fn junk_is_skipped_with_a_warning() {
    let (_d, spool, warnings) = spool();
    let q = spool.create("q").unwrap();
    push(&q, &[b"a", b"b"]);
    let bucket = q.path().join("ready").join(bucket_name(0));
    let id_name = |id: u64| Entry::fresh(id).name();
    std::fs::write(bucket.join("junk"), b"x").unwrap();
    std::fs::remove_file(bucket.join(id_name(1))).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", bucket.join(id_name(1))).unwrap();
    assert_eq!(pop_all(&q), vec![b"b".to_vec()]);
    assert!(bucket.join("junk").exists());
    assert!(std::fs::symlink_metadata(bucket.join(id_name(1))).is_ok());
    let w = warnings.borrow();
    assert!(w.iter().any(|m| m.contains("junk")), "{w:?}");
    assert!(w.iter().any(|m| m.contains(&id_name(1))), "{w:?}");
}

#[test]
fn counter_behind_a_message_never_overwrites_it() {
    let (_d, spool, warnings) = spool();
    let q = spool.create("q").unwrap();
    push(&q, &[b"a", b"b"]);
    let counter = std::fs::OpenOptions::new()
        .write(true)
        .open(q.path().join("counter"))
        .unwrap();
    counter.set_len(1).unwrap();
    assert_eq!(push(&q, &[b"c"]), vec![3]);
    assert_eq!(
        pop_all(&q),
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
    assert!(!warnings.borrow().is_empty());
}

fn meta(priority: u8, due: Option<u64>, key: Option<&str>) -> Option<crate::store::Meta> {
    Some(crate::store::Meta {
        opts: PushOptions {
            priority,
            due,
            expires: None,
        },
        key: key.map(str::to_string),
    })
}

#[test]
fn each_message_of_a_batch_has_its_own_options_and_key() {
    let (_d, spool, _) = spool();
    let q = spool.create("q").unwrap();
    let later = crate::clock::now_ms() + 3_600_000;
    let mut staging = q.stage(true).unwrap();
    let batch: [(&[u8], _); 6] = [
        (b"plain", None),
        (b"high", meta(7, None, Some("h"))),
        (b"later", meta(0, Some(later), Some("l"))),
        (b"same key", meta(0, None, Some("h"))),
        (b"low", meta(2, None, None)),
        (b"mid", meta(5, None, Some("m.k"))),
    ];
    for (m, meta) in batch {
        staging
            .add_with(meta, |f, p| {
                f.write_all(m).map_err(|e| Error::io("write", p, e))
            })
            .unwrap();
    }
    let published = staging
        .publish(PushOptions {
            priority: 1,
            ..PushOptions::default()
        })
        .unwrap();
    assert_eq!(published.ids().collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(
        published.duplicates,
        [crate::store::Duplicate { index: 3, id: 2 }]
    );
    let mut listed = Vec::new();
    q.walk(&State::ALL, |info, _| {
        listed.push((info.id, info.state, info.priority, info.key.clone()));
        Ok(true)
    })
    .unwrap();
    assert_eq!(
        listed,
        [
            (2, State::Ready, 7, Some("h".to_string())),
            (5, State::Ready, 5, Some("m.k".to_string())),
            (4, State::Ready, 2, None),
            (1, State::Ready, 1, None),
            (3, State::Delayed, 0, Some("l".to_string())),
        ]
    );
    let keys = q.path().join("keys");
    for (key, id) in [("h", 2), ("l", 3), ("m.k", 5)] {
        assert_eq!(
            std::fs::metadata(keys.join(key)).unwrap().len(),
            id,
            "{key}"
        );
    }
    // A claim carries its message's own key.
    let taken = q.take(2, POP).unwrap();
    let held: Vec<(u64, Option<&str>)> = taken.iter().map(|c| (c.id(), c.key())).collect();
    assert_eq!(held, [(2, Some("h")), (5, Some("m.k"))]);
    q.give_back(taken).unwrap();
    assert_eq!(
        pop_all(&q),
        [
            b"high".to_vec(),
            b"mid".to_vec(),
            b"low".to_vec(),
            b"plain".to_vec()
        ]
    );
    assert!(!keys.join("h").exists() && !keys.join("m.k").exists());
    assert!(keys.join("l").exists(), "delayed: still held");
    // No tmp/ leftover of the duplicate.
    assert_eq!(std::fs::read_dir(q.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn a_single_duplicate_leaves_nothing_in_tmp() {
    let (_d, spool, _) = spool();
    let q = spool.create("q").unwrap();
    for expected in [
        (vec![1], vec![]),
        (vec![], vec![crate::store::Duplicate { index: 0, id: 1 }]),
    ] {
        let mut staging = q.stage(false).unwrap();
        staging
            .add_with(meta(0, None, Some("k")), |f, p| {
                f.write_all(b"m").map_err(|e| Error::io("write", p, e))
            })
            .unwrap();
        let published = staging.publish(PushOptions::default()).unwrap();
        assert_eq!(
            (published.ids().collect::<Vec<_>>(), published.duplicates),
            expected
        );
    }
    assert_eq!(std::fs::read_dir(q.path().join("tmp")).unwrap().count(), 0);
    assert_eq!(q.waiting().unwrap(), 1);
}

#[test]
fn identity_is_stable_and_new_for_a_queue_made_again() {
    let (_d, spool, _) = spool();
    let q = spool.create("q").unwrap();
    assert!(
        !q.path().join("identity").exists(),
        "made when first needed"
    );
    let first = q.identity().unwrap();
    assert_eq!(first.len(), 32);
    assert_eq!(
        std::fs::read_to_string(q.path().join("identity")).unwrap(),
        format!("{first}\n")
    );
    assert!(
        first
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(spool.open("q").unwrap().unwrap().identity().unwrap(), first);
    let other = spool.create("other").unwrap().identity().unwrap();
    assert_ne!(other, first);
    std::fs::remove_dir_all(q.path()).unwrap();
    drop(q);
    let again = spool.create("q").unwrap().identity().unwrap();
    assert_ne!(again, first);
}

#[test]
fn an_identity_that_is_not_one_is_an_error_and_stays() {
    let (_d, spool, _) = spool();
    let q = spool.create("q").unwrap();
    let file = q.path().join("identity");
    for bad in [
        "0123456789ABCDEF0123456789abcdef\n",
        "0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef\n\n",
        "0123456789abcdef\n",
        "",
    ] {
        std::fs::write(&file, bad).unwrap();
        let e = q.identity().unwrap_err().to_string();
        assert!(e.contains("/identity: not an identity"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            bad,
            "left as it was"
        );
        let findings = q.fsck(true).unwrap();
        assert!(
            findings
                .iter()
                .any(|f| f.place.ends_with("/identity") && f.repair.is_none()),
            "{findings:?}"
        );
    }
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let e = q.identity().unwrap_err().to_string();
    assert!(e.contains("a directory, not a regular file"), "{e}");
    std::fs::remove_dir(&file).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", &file).unwrap();
    let e = q.identity().unwrap_err().to_string();
    assert!(e.contains("not a regular file"), "{e}");
    std::fs::remove_file(&file).unwrap();
    let id = q.identity().unwrap();
    assert!(
        q.fsck(false).unwrap().is_empty(),
        "a sound identity is spool's own file"
    );
    assert_eq!(q.identity().unwrap(), id);
    assert!(crate::store::is_valid_key(&format!(
        "relay:{id}:{}",
        u64::MAX
    )));
    assert_eq!(format!("relay:{id}:{:020}", u64::MAX).len(), 59);
}
