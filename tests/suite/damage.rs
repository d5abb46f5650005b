//! Damage in the place of spool's own files: claims that are not plain files (a symbolic
//! link, a FIFO, a second link) are refused by ack, nack, extend and show and left where
//! they are; a damaged format file is reported, shown escaped, and restored by fsck only
//! when the rest of the queue vouches for its version. Planted junk and bad roots are in
//! [`super::hostile`].

use crate::harness::{Fixture, names_in};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::PathBuf;

use super::hostile::*;

/// What can be planted in claimed/ under a claim's name.
#[derive(Clone, Copy, Debug)]
enum ClaimJunk {
    Symlink,
    Fifo,
    HardLink,
}

/// Claims the one message of a fresh queue and replaces its claim file with `junk`;
/// returns the fixture, the token, the claim's path and the outside file (the symlink's
/// target, or the other link).
fn planted_claim(junk: ClaimJunk) -> (Fixture, String, PathBuf, PathBuf) {
    let s = Fixture::new();
    s.push(&["m"]);
    let token = s.claim(&[]);
    let claimed = s.queue_dir("default").join("claimed");
    let [name] = &names_in(&claimed)[..] else {
        panic!("one claim in {}", claimed.display())
    };
    let path = claimed.join(name);
    let outside = s.outside("outside.txt");
    fs::remove_file(&path).unwrap();
    match junk {
        ClaimJunk::Symlink => {
            fs::write(&outside, OUTSIDE).unwrap();
            symlink(&outside, &path).unwrap();
        }
        ClaimJunk::Fifo => rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &path,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap(),
        ClaimJunk::HardLink => {
            fs::write(&outside, OUTSIDE).unwrap();
            fs::hard_link(&outside, &path).unwrap();
        }
    }
    (s, token, path, outside)
}

// ack deleted, and nack and extend moved, an entry planted in claimed/ under a claim's
// name (a symbolic link, a FIFO, a file with a second link): they must refuse, say what
// they found, and leave it where it is.
#[test]
fn ack_nack_extend_and_show_refuse_what_is_not_a_plain_claim() {
    for junk in [ClaimJunk::Symlink, ClaimJunk::Fifo, ClaimJunk::HardLink] {
        let what = match junk {
            ClaimJunk::Symlink => "a symbolic link",
            ClaimJunk::Fifo => "a FIFO",
            ClaimJunk::HardLink => "a file with more than one link",
        };
        for command in [
            &["ack"][..],
            &["nack"],
            &["nack", "--delay", "1h"],
            &["extend", "--lease", "1h"],
            &["show"],
        ] {
            let (s, token, path, outside) = planted_claim(junk);
            let mut args = command.to_vec();
            args.push(&token);
            let out = s.run(&args);
            out.error().stderr_has(what).stderr_has("left where it is");
            assert!(out.stdout.is_empty(), "{junk:?} {command:?}: {out:?}");
            let st = fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("{junk:?} {command:?}: {} {e}", path.display()));
            match junk {
                ClaimJunk::Symlink => assert_eq!(fs::read_link(&path).unwrap(), outside),
                ClaimJunk::Fifo => assert!(st.file_type().is_fifo()),
                ClaimJunk::HardLink => assert_eq!(st.nlink(), 2),
            }
            if !matches!(junk, ClaimJunk::Fifo) {
                assert_eq!(fs::read(&outside).unwrap(), OUTSIDE);
            }
            assert_eq!(
                names_in(&path.parent().unwrap().parent().unwrap().join("delayed")),
                Vec::<String>::new(),
                "{junk:?} {command:?}"
            );
            assert_eq!(s.len("default"), 0, "{junk:?} {command:?}");
        }
    }
}

/// What can damage a queue's format file.
#[derive(Clone, Copy, Debug)]
enum FormatDamage {
    NoNewline,
    Garbage,
    Symlink,
    Fifo,
}

// A damaged format file (its newline missing, garbage, a symbolic link, a FIFO) could not
// be repaired: `fsck --repair` failed with exit 2, as did `fsck`. Every command refuses
// it, showing what is wrong with invisible bytes escaped; fsck reports it (exit 3) and
// changes nothing; fsck --repair moves it to corrupt/ and writes the format file anew.
#[test]
fn a_damaged_format_file_is_reported_and_repaired_by_fsck() {
    for damage in [
        FormatDamage::NoNewline,
        FormatDamage::Garbage,
        FormatDamage::Symlink,
        FormatDamage::Fifo,
    ] {
        let s = Fixture::new();
        s.push(&["a", "b"]);
        let queue = s.queue_dir("default");
        let format = queue.join("format");
        let outside = s.outside("outside.txt");
        fs::write(&outside, OUTSIDE).unwrap();
        fs::remove_file(&format).unwrap();
        let why = match damage {
            FormatDamage::NoNewline => {
                fs::write(&format, "spool-queue 1").unwrap();
                r#"unsupported queue format "spool-queue 1" (no newline at its end; this spool reads "spool-queue 1\n")"#
            }
            FormatDamage::Garbage => {
                fs::write(&format, b"\x00\xffgarbage\n").unwrap();
                r#"unsupported queue format "\x00\xffgarbage\n" (differs from byte 1; this spool reads "spool-queue 1\n")"#
            }
            FormatDamage::Symlink => {
                symlink(&outside, &format).unwrap();
                "a symbolic link, not a regular file"
            }
            FormatDamage::Fifo => {
                rustix::fs::mkfifoat(
                    rustix::fs::CWD,
                    &format,
                    rustix::fs::Mode::from_raw_mode(0o600),
                )
                .unwrap();
                "a FIFO, not a regular file"
            }
        };
        let place = format.display().to_string();
        for args in [&["pop"][..], &["push", "x"], &["len"]] {
            let out = s.run(args);
            out.error();
            assert_eq!(
                out.stderr,
                format!("spool: read {place}: {why}; spool fsck --repair restores it\n"),
                "{damage:?}"
            );
        }
        let before = fs::symlink_metadata(&format).unwrap();
        s.cmd()
            .arg("fsck")
            .run()
            .stdout_is(format!("{place}: {why}\n"));
        let out = s.run(&["fsck"]);
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (3, ""),
            "{damage:?}: {out:?}"
        );
        assert_eq!(
            fs::symlink_metadata(&format).unwrap().ino(),
            before.ino(),
            "{damage:?}: fsck without --repair changed it"
        );
        assert!(!queue.join("corrupt").exists(), "{damage:?}");

        let out = s.run(&["fsck", "--repair"]);
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (0, ""),
            "{damage:?}: {out:?}"
        );
        let [aside] = &names_in(&queue.join("corrupt"))[..] else {
            panic!("{damage:?}: one entry in corrupt/")
        };
        out.stdout_is(format!(
            "{place}: {why} (repaired: moved to corrupt/{aside}, and written anew)\n"
        ));
        let st = fs::symlink_metadata(&format).unwrap();
        assert!(st.is_file() && st.nlink() == 1, "{damage:?}");
        assert_eq!(st.permissions().mode() & 0o7777, 0o600, "{damage:?}");
        assert_eq!(fs::read(&format).unwrap(), b"spool-queue 1\n", "{damage:?}");
        let aside = queue.join("corrupt").join(aside);
        let kept = fs::symlink_metadata(&aside).unwrap();
        assert_eq!(
            kept.ino(),
            before.ino(),
            "{damage:?}: the damaged one is kept"
        );
        assert_eq!(fs::read(&outside).unwrap(), OUTSIDE);
        assert_eq!(names_in(&queue.join("tmp")), Vec::<String>::new());
        s.prints(&["fsck"], "");
        s.prints(&["pop", "-n", "5", "--lines"], "a\nb\n");
    }
}

// A format file of another version is never rewritten: fsck refuses it as every command
// does; a damaged one in a queue whose other files are not as this spool makes them is
// reported, not repaired.
#[test]
fn fsck_rewrites_no_format_file_it_cannot_vouch_for() {
    let s = Fixture::new();
    s.push(&["a"]);
    let queue = s.queue_dir("default");
    let format = queue.join("format");
    fs::write(&format, "spool-queue 2\n").unwrap();
    for args in [&["fsck"][..], &["fsck", "--repair"]] {
        s.run(args).error().stderr_has(
            r#"unsupported queue format "spool-queue 2\n" (this spool reads "spool-queue 1\n")"#,
        );
    }
    assert_eq!(fs::read(&format).unwrap(), b"spool-queue 2\n");

    fs::write(&format, "spool-queue 1").unwrap();
    fs::remove_dir(queue.join("delayed")).unwrap();
    let out = s.run(&["fsck", "--repair"]);
    assert_eq!((out.code, out.stderr.as_str()), (3, ""), "{out:?}");
    assert!(
        out.text()
            .contains("not repaired: its counter, head or state directories are not"),
        "{out:?}"
    );
    assert_eq!(fs::read(&format).unwrap(), b"spool-queue 1");
    assert!(!queue.join("corrupt").exists());
}
