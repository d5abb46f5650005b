//! The fixture: a fresh temporary directory per test and an engine's store for it, with
//! shortcuts for what many tests do (push and get the id, pop everything, list states).
//!
//! [`Fixture::new`] names a root inside the directory (`TMP/spool`) without creating it,
//! so tests can check that read-only commands create nothing. On PostgreSQL the fixture
//! owns a fresh database of the harness's server ([`Pg`]), dropped with the fixture.
//! Every command gets the engine's global arguments (`--dir ROOT` or `--url URL`, unless
//! [`Cmd::no_dir`]) and `HOME` inside the temporary directory, so that a bug can never
//! touch the real home directory.

use std::path::{Path, PathBuf};

use super::{BIN, Cmd, Engine, Output, Pg, Store, json_lines, parse_ids};

/// A fresh temporary directory, and the store of one engine for it.
pub struct Fixture {
    tmp: tempfile::TempDir,
    root: PathBuf,
    /// The database of a fixture on PostgreSQL (dropped with the fixture), and its URL.
    pg: Option<Pg>,
    url: Option<String>,
}

impl Fixture {
    /// A new fixture on the local engine; its root `TMP/spool` does not exist yet.
    pub fn new() -> Fixture {
        Fixture::on(Engine::Local)
    }

    /// A new fixture on `engine`. PostgreSQL: panics when no server can be had (the
    /// contract tests ask [`Engine::available`] first, which skips visibly).
    #[track_caller]
    pub fn on(engine: Engine) -> Fixture {
        let tmp = tempfile::tempdir().expect("create temporary directory");
        let root = tmp.path().join("spool");
        let pg = match engine {
            Engine::Local => None,
            Engine::Postgres => {
                Some(super::pooled_pg().unwrap_or_else(|why| panic!("no PostgreSQL: {why}")))
            }
        };
        let url = pg.as_ref().map(Pg::url);
        Fixture { tmp, root, pg, url }
    }

    /// The database of a fixture on PostgreSQL.
    pub fn pg(&self) -> Option<&Pg> {
        self.pg.as_ref()
    }

    /// Where the store is: the root, or the database's URL.
    fn store(&self) -> Store<'_> {
        match &self.url {
            None => Store::Dir(&self.root),
            Some(url) => Store::Url(url),
        }
    }

    /// The spool root passed with `--dir` (the local engine's store; on PostgreSQL a
    /// directory that no command uses).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The temporary directory that holds the root.
    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// A path in the temporary directory, outside the root.
    pub fn outside(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// The directory of queue `queue`.
    pub fn queue_dir(&self, queue: &str) -> PathBuf {
        self.root.join(queue)
    }

    /// Where message `id` of `queue` waits: `ready/<id/1000 in 17 digits>/<id in 20 digits>`.
    pub fn message_path(&self, queue: &str, id: u64) -> PathBuf {
        self.queue_dir(queue)
            .join("ready")
            .join(format!("{:017}", id / 1000))
            .join(format!("{id:020}"))
    }

    /// A command running spool against this fixture's store.
    pub fn cmd(&self) -> Cmd {
        Cmd::new(Engine::args(self.store()), &self.outside("home"), true)
    }

    /// A `sh -c SCRIPT` command where `spool` is the binary under test (first in `PATH`)
    /// and the environment points it at this fixture's store (`$SPOOL_DIR` or
    /// `$SPOOL_URL`).
    pub fn sh(&self, script: &str) -> Cmd {
        let bin_dir = Path::new(BIN).parent().expect("binary directory");
        let mut path = bin_dir.as_os_str().to_os_string();
        if let Some(old) = std::env::var_os("PATH") {
            path.push(":");
            path.push(old);
        }
        let mut cmd = self.cmd().env("PATH", path);
        for (key, value) in Engine::env(self.store()) {
            cmd = cmd.env(key, value);
        }
        cmd.script(script)
    }

    /// Runs `spool --dir ROOT ARGS...` (or `--url URL`) with an empty standard input.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).run()
    }

    /// Runs `spool --dir ROOT ARGS...` and asserts exit 0, an empty standard error and
    /// exactly `expected` on standard output.
    #[track_caller]
    pub fn prints(&self, args: &[&str], expected: impl AsRef<[u8]>) -> Output {
        self.cmd().args(args).prints(expected)
    }

    /// Runs `spool --dir ROOT ARGS...` with `stdin` as standard input.
    pub fn run_stdin(&self, args: &[&str], stdin: impl Into<Vec<u8>>) -> Output {
        self.cmd().args(args).stdin(stdin).run()
    }

    /// Pushes each of `messages` (one argument each) to the default queue.
    #[track_caller]
    pub fn push(&self, messages: &[&str]) {
        let mut args = vec!["push"];
        args.extend_from_slice(messages);
        self.run(&args).success();
    }

    /// Pushes `message` to `queue` with `--print-id` and returns the new id.
    #[track_caller]
    pub fn push_id(&self, queue: &str, message: &str) -> u64 {
        let out = self.run(&["-q", queue, "push", "--print-id", message]);
        out.success();
        let ids = parse_ids(&out.stdout);
        assert_eq!(ids.len(), 1, "one id for one message:\n{out:?}");
        ids[0]
    }

    /// Pushes `message` to the default queue with `push --print-id OPTIONS... MESSAGE` and
    /// returns its id (ids have gaps once messages were nacked, requeued or delayed).
    #[track_caller]
    pub fn push_with(&self, options: &[&str], message: &str) -> u64 {
        let mut args = vec!["push", "--print-id"];
        args.extend_from_slice(options);
        args.push(message);
        let out = self.run(&args);
        out.success();
        let ids = parse_ids(&out.stdout);
        assert_eq!(ids.len(), 1, "one id for one message:\n{out:?}");
        ids[0]
    }

    /// `spool -q QUEUE len`, parsed.
    #[track_caller]
    pub fn len(&self, queue: &str) -> u64 {
        let out = self.run(&["-q", queue, "len"]);
        out.success();
        out.text()
            .strip_suffix('\n')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("len printed {:?}", out.text()))
    }

    /// Pops from `queue` until it exits 1; returns every message popped, in order.
    #[track_caller]
    pub fn pop_all(&self, queue: &str) -> Vec<Vec<u8>> {
        let mut popped = Vec::new();
        loop {
            let out = self.run(&["-q", queue, "pop"]);
            match out.code {
                0 => {
                    assert!(out.stderr.is_empty(), "pop wrote to stderr:\n{out:?}");
                    popped.push(out.stdout);
                }
                1 => {
                    out.nothing();
                    return popped;
                }
                _ => panic!("pop failed:\n{out:?}"),
            }
        }
    }

    /// Like [`pop_all`](Self::pop_all), as text (readable when an order assertion fails).
    #[track_caller]
    pub fn pop_all_text(&self, queue: &str) -> Vec<String> {
        self.pop_all(queue)
            .into_iter()
            .map(|m| String::from_utf8(m).expect("UTF-8 message"))
            .collect()
    }

    /// The ids of `spool -q QUEUE list --json`.
    #[track_caller]
    pub fn listed_ids(&self, queue: &str) -> Vec<u64> {
        let out = self.run(&["-q", queue, "list", "--json"]);
        out.success();
        json_lines(&out.stdout)
            .iter()
            .map(|v| v["id"].as_u64().expect("id is a number"))
            .collect()
    }

    /// `spool -q QUEUE list --json --state STATE`, parsed.
    #[track_caller]
    pub fn list_json(&self, queue: &str, state: &str) -> Vec<serde_json::Value> {
        let out = self.run(&["-q", queue, "list", "--json", "--state", state]);
        out.success();
        json_lines(&out.stdout)
    }

    /// `(id, state)` of every message of `queue`, as `list --state all` shows them.
    #[track_caller]
    pub fn states(&self, queue: &str) -> Vec<(u64, String)> {
        self.list_json(queue, "all")
            .iter()
            .map(|v| {
                (
                    v["id"].as_u64().expect("id is a number"),
                    v["state"].as_str().expect("state is a string").to_string(),
                )
            })
            .collect()
    }

    /// The one entry of `list --state all --json` with id `id` (panics unless exactly one).
    #[track_caller]
    pub fn entry(&self, queue: &str, id: u64) -> serde_json::Value {
        let mut found: Vec<serde_json::Value> = self
            .list_json(queue, "all")
            .into_iter()
            .filter(|v| v["id"].as_u64() == Some(id))
            .collect();
        assert_eq!(found.len(), 1, "message {id} listed once: {found:?}");
        found.remove(0)
    }

    /// Asserts the state and attempts of message `id` of the default queue; returns its
    /// entry for more checks.
    #[track_caller]
    pub fn assert_state(&self, id: u64, state: &str, attempts: u64) -> serde_json::Value {
        let v = self.entry("default", id);
        assert_eq!(v["state"], state, "message {id}: {v}");
        assert_eq!(v["attempts"], attempts, "message {id}: {v}");
        v
    }

    /// Runs `spool claim ARGS...` and returns the token it printed (asserting its shape).
    #[track_caller]
    pub fn claim(&self, args: &[&str]) -> String {
        let out = self.cmd().arg("claim").args(args).run();
        out.success();
        out.token()
    }

    /// The `until` (due time or lease end) of message `id` of the default queue, in unix
    /// seconds.
    #[track_caller]
    pub fn until(&self, id: u64) -> i64 {
        until_of(&self.entry("default", id))
    }
}

/// The `until` field of a listed entry, in unix seconds.
#[track_caller]
pub fn until_of(v: &serde_json::Value) -> i64 {
    let text = v["until"]
        .as_str()
        .unwrap_or_else(|| panic!("no until in {v}"));
    super::parse_rfc3339(text).unwrap_or_else(|| panic!("until is not RFC 3339 UTC: {v}"))
}
