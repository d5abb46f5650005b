//! Byte-exact round trips: every byte value, NULs, no trailing newline, the empty
//! message, non-UTF-8 arguments, and a 100 MB message streamed through files.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::Stdio;

use crate::harness::{Engine, Fixture, Rng, engine_tests, json_lines};

engine_tests! {
    all_256_byte_values, nul_bytes, no_trailing_newline_is_added_or_removed,
    the_empty_message, argument_bytes_are_kept_even_when_not_utf8,
    null_separated_round_trip, line_separated_round_trip,
}

#[track_caller]
fn round_trip_stdin(engine: Engine, payload: &[u8]) {
    let s = engine.fixture();
    s.run_stdin(&["push"], payload).success();
    match s.pg() {
        None => assert_eq!(
            std::fs::read(s.message_path("default", 1)).unwrap(),
            payload,
            "the message file holds exactly the payload"
        ),
        Some(pg) => assert_eq!(
            pg.psql(pg.db(), "SELECT encode(payload, 'hex') FROM spool.messages"),
            format!("{}\n", hex(payload)),
            "the message's row holds exactly the payload"
        ),
    }
    s.prints(&["peek"], payload);
    s.prints(&["pop"], payload);
    s.run(&["pop"]).nothing();
}

/// `bytes` in lowercase hexadecimal, as PostgreSQL's `encode(…, 'hex')` writes them.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn all_256_byte_values(engine: Engine) {
    let all: Vec<u8> = (0..=255).collect();
    round_trip_stdin(engine, &all);
    let reversed: Vec<u8> = (0..=255).rev().cycle().take(4096).collect();
    round_trip_stdin(engine, &reversed);
}

fn nul_bytes(engine: Engine) {
    round_trip_stdin(engine, b"\0");
    round_trip_stdin(engine, b"\0\0a\0b\0\0");
}

fn no_trailing_newline_is_added_or_removed(engine: Engine) {
    round_trip_stdin(engine, b"abc");
    round_trip_stdin(engine, b"abc\n");
    round_trip_stdin(engine, b"abc\n\n");
    round_trip_stdin(engine, b"\r\n");
}

fn the_empty_message(engine: Engine) {
    let s = engine.fixture();
    s.run_stdin(&["push"], "").success();
    s.run(&["push", ""]).success();
    assert_eq!(s.len("default"), 2);
    s.prints(&["peek"], "");
    s.prints(&["pop"], "");
    s.prints(&["pop", "--lines"], "\n");
    s.run(&["pop"]).nothing();
}

fn argument_bytes_are_kept_even_when_not_utf8(engine: Engine) {
    let s = engine.fixture();
    let raw = vec![0xff, 0xfe, b'a', 0x80, b'\n', 0xc3];
    let high: Vec<u8> = (1..=255).collect();
    s.cmd()
        .arg("push")
        .arg(OsString::from_vec(raw.clone()))
        .arg(OsString::from_vec(high.clone()))
        .run()
        .success();
    assert_eq!(s.pop_all("default"), [raw, high]);
}

fn null_separated_round_trip(engine: Engine) {
    let s = engine.fixture();
    let messages: Vec<Vec<u8>> = vec![
        b"multi\nline\n".to_vec(),
        Vec::new(),
        (1..=255).collect(),
        b"\n".to_vec(),
        b"last".to_vec(),
    ];
    let mut input = Vec::new();
    for m in &messages {
        input.extend_from_slice(m);
        input.push(0);
    }
    s.run_stdin(&["push", "-0"], input.clone()).success();
    assert_eq!(s.len("default"), 5);
    s.prints(&["peek", "-n", "5", "-0"], &input);
    s.prints(&["pop", "-n", "5", "-0"], &input);
}

fn line_separated_round_trip(engine: Engine) {
    let s = engine.fixture();
    let mut input: Vec<u8> = Vec::new();
    for line in [
        &b"plain"[..],
        b"",
        b"tab\there",
        b"cr\r",
        b"nul\0inside",
        b"\xff\xfe",
    ] {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    s.run_stdin(&["push", "--lines"], input.clone()).success();
    s.prints(&["pop", "-n", "100", "--lines"], &input);
}

/// Compares two files in 1 MiB chunks.
#[track_caller]
fn assert_same_file(a: &Path, b: &Path) {
    let (mut fa, mut fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    let (la, lb) = (fa.metadata().unwrap().len(), fb.metadata().unwrap().len());
    assert_eq!(
        la,
        lb,
        "{} and {} differ in length",
        a.display(),
        b.display()
    );
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        let n = fa.read(&mut ba).unwrap();
        if n == 0 {
            break;
        }
        fb.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            let at = ba[..n]
                .iter()
                .zip(&bb[..n])
                .position(|(x, y)| x != y)
                .unwrap();
            panic!("files differ at byte {}", offset + at as u64);
        }
        offset += n as u64;
    }
    assert_eq!(offset, la);
}

#[test]
fn a_100_mb_message() {
    const MIB: usize = 1 << 20;
    const SIZE: u64 = 100 * MIB as u64;
    let s = Fixture::new();
    let input = s.outside("big.in");
    {
        let mut noise = Rng::new(0x5eed);
        let mut out = BufWriter::new(File::create(&input).unwrap());
        let mut buf = vec![0u8; MIB];
        for _ in 0..100 {
            noise.fill(&mut buf);
            out.write_all(&buf).unwrap();
        }
        out.into_inner().unwrap().sync_all().unwrap();
    }
    s.cmd().arg("push").stdin_file(&input).run().success();
    assert_eq!(s.len("default"), 1);
    let listed = json_lines(&s.run(&["list", "--json"]).stdout);
    assert_eq!(listed[0]["size"].as_u64(), Some(SIZE));
    assert_eq!(
        std::fs::metadata(s.message_path("default", 1))
            .unwrap()
            .len(),
        SIZE
    );

    let output = s.outside("big.out");
    s.cmd()
        .arg("pop")
        .run_with_stdout(Stdio::from(File::create(&output).unwrap()))
        .success();
    assert_same_file(&input, &output);
    assert_eq!(s.len("default"), 0);
    assert!(!s.message_path("default", 1).exists());
}
