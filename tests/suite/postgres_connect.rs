//! The connection settings of the PostgreSQL engine against a real server with TLS
//! (`Cluster::private_tls`: 127.0.0.1 with a certificate for `localhost` signed by a CA
//! made by the test, scram-sha-256, TCP without TLS rejected): every `sslmode`, the
//! libpq variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`,
//! `PGSSLMODE`, `PGSSLROOTCERT`, `PGPASSFILE`), the password file and its permissions,
//! a wrong password. The password never appears in any output.
//!
//! One TLS cluster serves every test of this module (each test its own queue); it is
//! stopped and removed by its watchdog when the test binary ends.

use std::path::Path;
use std::sync::OnceLock;

use crate::harness::{
    Cluster, Cmd, Output, TLS_DB, TLS_PASSWORD, TLS_USER, TlsCluster, is_one_spool_line, skip,
};

/// The libpq variables spool reads: set empty (unset, for spool) unless a test sets them,
/// so that the environment the tests run in does not leak in.
const PG_VARS: [&str; 10] = [
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGCONNECT_TIMEOUT",
    "PGAPPNAME",
];

/// The TLS cluster of this test binary, or `None` after skipping visibly.
#[track_caller]
fn server() -> Option<&'static TlsCluster> {
    static SERVER: OnceLock<Result<TlsCluster, String>> = OnceLock::new();
    match SERVER.get_or_init(Cluster::private_tls) {
        Ok(s) => Some(s),
        Err(why) => {
            skip(why);
            None
        }
    }
}

/// A test's home directory and queue: `spool` with `HOME` there, the libpq variables
/// emptied, and `-q QUEUE`.
struct Client {
    home: tempfile::TempDir,
    queue: String,
}

impl Client {
    fn new(queue: &str) -> Client {
        Client {
            home: tempfile::tempdir().expect("a home directory"),
            queue: queue.into(),
        }
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    /// `spool -q QUEUE ARGS` with no URL, no password and no libpq variable.
    fn cmd(&self, args: &[&str]) -> Cmd {
        let mut cmd = Cmd::bare()
            .env("HOME", self.home())
            .arg("-q")
            .arg(&self.queue)
            .args(args);
        for var in PG_VARS {
            cmd = cmd.env(var, "");
        }
        cmd
    }

    /// `spool --url URL -q QUEUE ARGS`.
    fn url(&self, url: &str, args: &[&str]) -> Cmd {
        self.cmd(&[]).arg("--url").arg(url).args(args)
    }
}

/// Runs `cmd`, asserting that no output holds the password.
#[track_caller]
fn run(cmd: Cmd) -> Output {
    let out = cmd.run();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(TLS_PASSWORD)
            && !out.stderr.contains(TLS_PASSWORD),
        "the password was printed:\n{out:?}"
    );
    out
}

/// Pushes `payload` (bytes on standard input) with `cmd`'s settings and pops it back
/// with `pop`'s: the same bytes, nothing on standard error.
#[track_caller]
fn round_trip(push: Cmd, pop: Cmd, payload: &[u8]) {
    run(push.arg("push").stdin(payload.to_vec())).success();
    run(pop.arg("pop")).success().stdout_is(payload);
}

/// Asserts the one-line error of a refused connection: exit 2, `spool: connect
/// postgres://…: …` holding `cause`.
#[track_caller]
fn refused(out: &Output, cause: &str) {
    out.error();
    assert!(
        is_one_spool_line(&out.stderr) && out.stderr.starts_with("spool: connect postgres"),
        "expected one `spool: connect` line:\n{out:?}"
    );
    out.stderr_has(cause);
    assert!(out.stdout.is_empty(), "{out:?}");
}

fn ca(s: &TlsCluster) -> String {
    s.ca.display().to_string()
}

#[test]
fn verify_full_with_the_test_ca_pushes_and_pops() {
    let Some(s) = server() else { return };
    let c = Client::new("verify_full");
    let url = s.url(
        "localhost",
        &format!("?sslmode=verify-full&sslrootcert={}", ca(s)),
    );
    let with_password = |cmd: Cmd| cmd.env("PGPASSWORD", TLS_PASSWORD);
    let payload = b"over TLS\x00\xff\n".to_vec();
    round_trip(
        with_password(c.url(&url, &[])),
        with_password(c.url(&url, &[])),
        &payload,
    );
}

#[test]
fn verify_full_refuses_a_host_name_not_in_the_certificate() {
    let Some(s) = server() else { return };
    let c = Client::new("wrong_name");
    // The certificate is for localhost; 127.0.0.1 is the same server under another name.
    let url = s.url(
        "127.0.0.1",
        &format!("?sslmode=verify-full&sslrootcert={}", ca(s)),
    );
    let out = run(c.url(&url, &["len"]).env("PGPASSWORD", TLS_PASSWORD));
    refused(&out, "certificate not valid for name \"127.0.0.1\"");
    out.stderr_has(&format!("spool: connect {url}: 127.0.0.1:{}: ", s.port));
}

#[test]
fn verify_ca_checks_the_chain_and_not_the_name() {
    let Some(s) = server() else { return };
    let c = Client::new("verify_ca");
    let good = s.url(
        "127.0.0.1",
        &format!("?sslmode=verify-ca&sslrootcert={}", ca(s)),
    );
    round_trip(
        c.url(&good, &[]).env("PGPASSWORD", TLS_PASSWORD),
        c.url(&good, &[]).env("PGPASSWORD", TLS_PASSWORD),
        b"chain only",
    );
    let other = s.url(
        "localhost",
        &format!("?sslmode=verify-ca&sslrootcert={}", s.other_ca.display()),
    );
    let out = run(c.url(&other, &["len"]).env("PGPASSWORD", TLS_PASSWORD));
    refused(&out, "unknown issuer");
}

#[test]
fn verify_full_without_a_root_certificate_says_so() {
    let Some(s) = server() else { return };
    let c = Client::new("no_root");
    let url = s.url("localhost", "?sslmode=verify-full");
    let out = run(c.url(&url, &["len"]).env("PGPASSWORD", TLS_PASSWORD));
    refused(&out, "/.postgresql/root.crt\" does not exist");
}

#[test]
fn require_encrypts_without_checking_unless_a_root_certificate_is_there() {
    let Some(s) = server() else { return };
    let c = Client::new("require");
    let url = s.url("127.0.0.1", "?sslmode=require");
    round_trip(
        c.url(&url, &[]).env("PGPASSWORD", TLS_PASSWORD),
        c.url(&url, &[]).env("PGPASSWORD", TLS_PASSWORD),
        b"not checked",
    );
    // With ~/.postgresql/root.crt, require checks the chain (libpq's rule): another CA
    // there refuses the server, the right one takes it.
    let dir = c.home().join(".postgresql");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(&s.other_ca, dir.join("root.crt")).unwrap();
    let out = run(c.url(&url, &["len"]).env("PGPASSWORD", TLS_PASSWORD));
    refused(&out, "unknown issuer");
    std::fs::copy(&s.ca, dir.join("root.crt")).unwrap();
    run(c.url(&url, &["len"]).env("PGPASSWORD", TLS_PASSWORD))
        .success()
        .stdout_is("0\n");
}

#[test]
fn disable_is_refused_by_a_server_that_wants_tls() {
    let Some(s) = server() else { return };
    let c = Client::new("disable");
    let url = s.url("127.0.0.1", "?sslmode=disable");
    let out = run(c.url(&url, &["len"]).env("PGPASSWORD", TLS_PASSWORD));
    refused(&out, "no encryption");
    refused(&out, "pg_hba.conf rejects connection");
}

#[test]
fn prefer_and_allow_take_tls_when_offered() {
    let Some(s) = server() else { return };
    let c = Client::new("prefer");
    // The default is prefer; the server rejects TCP without TLS, so success is TLS.
    for params in ["", "?sslmode=prefer", "?sslmode=allow"] {
        let url = s.url("127.0.0.1", params);
        round_trip(
            c.url(&url, &[]).env("PGPASSWORD", TLS_PASSWORD),
            c.url(&url, &[]).env("PGPASSWORD", TLS_PASSWORD),
            params.as_bytes(),
        );
    }
}

#[test]
fn a_unix_socket_is_never_encrypted_whatever_sslmode_says() {
    let Some(s) = server() else { return };
    let c = Client::new("socket");
    // As libpq: sslmode is ignored on a Unix socket, so require and verify-full work
    // (the server never offers TLS there), without any root certificate.
    for mode in ["require", "verify-full", "disable"] {
        let url = s.socket_url(&format!("&sslmode={mode}"));
        round_trip(
            c.url(&url, &[]).env("PGPASSWORD", TLS_PASSWORD),
            c.url(&url, &[]).env("PGPASSWORD", TLS_PASSWORD),
            mode.as_bytes(),
        );
    }
}

#[test]
fn the_libpq_variables_fill_what_the_url_leaves_out() {
    let Some(s) = server() else { return };
    let c = Client::new("variables");
    let port = s.port.to_string();
    let env = |cmd: Cmd| {
        cmd.env("PGHOST", "127.0.0.1")
            .env("PGPORT", &port)
            .env("PGUSER", TLS_USER)
            .env("PGDATABASE", TLS_DB)
            .env("PGPASSWORD", TLS_PASSWORD)
            .env("PGSSLMODE", "require")
    };
    round_trip(
        env(c.url("postgres://", &[])),
        env(c.url("postgresql:///", &[])),
        b"from the environment",
    );
    // SPOOL_URL=postgres:// alone, and the URL's own database wins over PGDATABASE.
    let out = run(env(c.cmd(&["len"]))
        .env("SPOOL_URL", "postgres://")
        .env("PGDATABASE", "no_such_database"));
    refused(&out, "database \"no_such_database\" does not exist");
    run(env(c.url(&format!("postgresql:///{TLS_DB}"), &["len"])).env("PGDATABASE", "nope"))
        .success()
        .stdout_is("0\n");
    // PGSSLMODE and PGSSLROOTCERT: verify-full with a host name that is not in the
    // certificate is refused, with localhost it is taken.
    let full = |cmd: Cmd| {
        env(cmd)
            .env("PGSSLMODE", "verify-full")
            .env("PGSSLROOTCERT", ca(s))
    };
    refused(
        &run(full(c.url("postgres://", &["len"]))),
        "certificate not valid for name",
    );
    run(full(c.url("postgres://", &["len"])).env("PGHOST", "localhost"))
        .success()
        .stdout_is("0\n");
    // The URL's sslmode wins over PGSSLMODE.
    run(full(c.url("postgres:///?sslmode=require", &["len"])))
        .success()
        .stdout_is("0\n");
}

/// Writes the password file at `path` with `mode`.
fn pgpass(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn the_password_file_is_read_when_only_its_owner_may() {
    let Some(s) = server() else { return };
    let c = Client::new("pgpass");
    let file = c.home().join(".pgpass");
    let line = format!(
        "# host:port:database:user:password\nnowhere:1:*:*:wrong\n\
         localhost:{}:{TLS_DB}:{TLS_USER}:{TLS_PASSWORD}\n",
        s.port
    );
    pgpass(&file, &line, 0o600);
    let url = s.url("localhost", "?sslmode=require");
    round_trip(c.url(&url, &[]), c.url(&url, &[]), b"pgpass");

    // Readable by others: ignored, with a warning, and then no password at all.
    pgpass(&file, &line, 0o644);
    let out = run(c.url(&url, &["len"]));
    assert_eq!(out.code, 2, "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert_eq!(
        lines[0],
        format!(
            "spool: warning: password file \"{}\" has group or world access; permissions \
             should be u=rw (0600) or less: ignored",
            file.display()
        )
    );
    assert!(lines[1].starts_with("spool: connect "), "{out:?}");
    assert!(
        lines[1].contains("the server asks for a password"),
        "{out:?}"
    );
}

#[test]
fn pgpassfile_names_the_file_and_a_socket_matches_its_directory() {
    let Some(s) = server() else { return };
    let c = Client::new("pgpassfile");
    let file = c.home().join("elsewhere");
    // The host field of a socket is its directory, with ':' escaped as libpq writes it.
    let dir = s.socket_dir().display().to_string().replace(':', "\\:");
    pgpass(
        &file,
        &format!("{dir}:{}:*:{TLS_USER}:{TLS_PASSWORD}\n", s.port),
        0o600,
    );
    let url = s.socket_url("");
    let with_file = |cmd: Cmd| cmd.env("PGPASSFILE", &file);
    round_trip(
        with_file(c.url(&url, &[])),
        with_file(c.url(&url, &[])),
        b"socket",
    );
    // Without the file, the socket asks for a password that is not there.
    refused(
        &run(c.url(&url, &["len"])),
        "the server asks for a password",
    );
}

#[test]
fn a_wrong_password_is_refused_and_never_shown() {
    let Some(s) = server() else { return };
    let c = Client::new("wrong_password");
    let wrong = "Wr0ng-pAss-shown-nowhere";
    let url = format!(
        "postgres://{TLS_USER}:{wrong}@127.0.0.1:{}/{TLS_DB}?sslmode=require",
        s.port
    );
    for out in [
        run(c.url(&url, &["push", "x"])),
        run(c
            .url(&s.url("127.0.0.1", "?sslmode=require"), &["pop"])
            .env("PGPASSWORD", wrong)),
    ] {
        refused(
            &out,
            &format!("password authentication failed for user \"{TLS_USER}\""),
        );
        assert!(!out.stderr.contains(wrong), "{out:?}");
    }
    // The URL is shown with its password masked.
    let out = run(c.url(&url, &["len"]));
    out.stderr_has(&format!(
        "spool: connect postgres://{TLS_USER}:***@127.0.0.1:"
    ));
}
