//! A file size limit (`prlimit --fsize=N`): a write past it fails with EFBIG instead of
//! killing spool with SIGXFSZ, the command exits 2 with one "spool: " line saying "File
//! too large", and the queue is as it was.

use std::path::Path;

use crate::harness::{
    Cmd, Output, assert_no_leftovers, bytes, drain, id_states, list_all, require,
};

fn limited(root: &Path, fsize: u64, args: &[&str]) -> Cmd {
    Cmd::at(root).args(args).wrap([
        "prlimit".to_string(),
        format!("--fsize={fsize}"),
        "--".into(),
    ])
}

#[track_caller]
fn assert_too_large(out: &Output) {
    out.no_crash(false).unwrap_or_else(|e| panic!("{e}"));
    out.check_error().unwrap_or_else(|e| panic!("{e}"));
    assert!(out.stderr.contains("File too large"), "{out:?}");
}

fn setup() -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    if !require(false, &[("prlimit", &["-V"])]) {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("spool");
    Cmd::at(&root).args(["push", "before"]).run().success();
    Some((tmp, root))
}

#[track_caller]
fn assert_clean(root: &Path, expected: &[&str]) {
    assert_eq!(drain(root, "default").unwrap(), bytes(expected));
    assert_no_leftovers(&root.join("default"), "after draining");
}

#[test]
fn a_message_larger_than_the_limit_is_not_pushed() {
    let Some((_tmp, root)) = setup() else { return };
    let out = limited(&root, 1024, &["push"])
        .stdin(vec![b'x'; 4096])
        .run();
    assert_too_large(&out);
    assert!(out.stderr.contains("nothing was pushed"), "{out:?}");
    // A batch with one line over the limit fails as a whole.
    let mut lines = b"small\n".to_vec();
    lines.extend(vec![b'y'; 3000]);
    lines.extend(b"\nlast\n");
    let out = limited(&root, 1024, &["push", "--lines"])
        .stdin(lines)
        .run();
    assert_too_large(&out);
    assert!(out.stderr.contains("nothing was pushed"), "{out:?}");
    // What fits goes through under the same limit.
    limited(&root, 1024, &["push", "fits"]).run().success();
    let ids: Vec<u64> = list_all(&root, "default")
        .unwrap()
        .iter()
        .map(|l| l.id)
        .collect();
    assert!(ids.len() == 2 && ids[0] < ids[1], "{ids:?}");
    assert_clean(&root, &["before", "fits"]);
}

#[test]
fn a_counter_past_the_limit_fails_the_push_before_publishing() {
    let Some((_tmp, root)) = setup() else { return };
    Cmd::at(&root).args(["push", "a", "b", "c"]).run().success();
    // The counter is now 5 bytes long: allocating id 5 sets it to 6, past the limit.
    let out = limited(&root, 5, &["push", "x"]).run();
    assert_too_large(&out);
    assert!(out.stderr.contains("counter"), "{out:?}");
    assert!(out.stderr.contains("nothing was pushed"), "{out:?}");
    assert_eq!(
        id_states(&list_all(&root, "default").unwrap()),
        [(1, "ready"), (2, "ready"), (3, "ready"), (4, "ready")]
    );
    let next = crate::harness::push_id(&root, "default", "after").unwrap();
    assert!(next >= 5, "id {next} reused");
    assert_clean(&root, &["before", "a", "b", "c", "after"]);
}

#[test]
fn a_delayed_push_that_cannot_record_its_due_time_is_not_pushed() {
    let Some((_tmp, root)) = setup() else { return };
    // The due hint is a length of about 1.8e9: far past a 1 MB limit.
    let out = limited(&root, 1 << 20, &["push", "--delay", "1h", "later"]).run();
    assert_too_large(&out);
    assert_eq!(
        id_states(&list_all(&root, "default").unwrap()),
        [(1, "ready")],
        "{out:?}"
    );
    assert_clean(&root, &["before"]);
}

#[test]
fn a_pop_into_a_file_over_the_limit_keeps_the_message() {
    let Some((tmp, root)) = setup() else { return };
    let big = vec![b'z'; 5000];
    Cmd::at(&root)
        .args(["push"])
        .stdin(big.clone())
        .run()
        .success();
    Cmd::at(&root).args(["pop"]).run().success();
    let file = tmp.path().join("out");
    let out = limited(&root, 1000, &["pop"]).stdout_file(&file).run();
    assert_too_large(&out);
    assert!(out.stderr.contains("stays in the queue"), "{out:?}");
    assert_eq!(drain(&root, "default").unwrap(), vec![big]);
}
