//! A real PostgreSQL server for the tests: one throwaway cluster shared by every test of
//! a test-binary run, a fresh database per test, and private clusters for tests that
//! crash and restart their server.
//!
//! Where the server comes from:
//! - `SPOOL_TEST_PG_URL` set: that server (a `postgres://` URL whose user may create
//!   databases); no cluster is started.
//! - otherwise PostgreSQL's server binaries (Debian: `/usr/lib/postgresql/VERSION/bin`,
//!   the newest version; else `pg_config --bindir`): `initdb` into a fresh temporary
//!   directory with trust authentication, listening only on a Unix socket in that
//!   directory (`listen_addresses = ''`), fsync on, started with `pg_ctl -w start`. The
//!   server refuses to run as root, so as root its commands run as the `postgres` user
//!   (made by Debian's package) through `setpriv`; as another user, as that user.
//! - neither: [`pg`] skips the test visibly (a failure under `CI=true`).
//!
//! Stopping: a Rust test binary has no global teardown, and a test binary may be killed.
//! So each cluster gets a watchdog when its directory is made, before `initdb`: a
//! `sh` in its own process group, ignoring SIGINT, SIGTERM and SIGHUP, blocked reading a
//! pipe whose only write end this process holds. When the process ends, however it ends,
//! the kernel closes that end; the watchdog then stops the server (`pg_ctl stop -m fast`,
//! else `-m immediate`) and removes the directory. A private cluster closes its end when
//! dropped (also while a panic unwinds) and waits for the watchdog. The shared cluster's
//! watchdog finishes just after the test binary exits (a fraction of a second).
//!
//! Each test's database is dropped (`WITH (FORCE)`) when its [`Pg`] is dropped, so that a
//! long run does not fill the disk with databases.
//!
//! The contract tests (`engine_tests!`) make a database per fixture, hundreds a run, and
//! `CREATE DATABASE` (a copy of `template1` through the WAL) and `DROP DATABASE` (an
//! immediate checkpoint) each take a good fraction of a second on a busy machine. So
//! their fixtures take their databases from [`pooled_pg`]: on the shared cluster one
//! background thread keeps a few fresh databases made ahead, and drops the databases of
//! finished fixtures while the tests go on (left undropped when the test binary exits,
//! they go with the cluster). On `SPOOL_TEST_PG_URL`'s server, [`pooled_pg`] is [`pg`]'s
//! database made and dropped in the test, as nothing would remove leftovers there.
//!
//! Connections: the shared cluster takes 200 (`max_connections`). The pool holds one; a
//! test holds one per spool process and psql it runs at once (a handful; `run -j N` is one
//! process). With cargo's default of a test thread per core that is far below the
//! limit; a `--test-threads` of many dozens might reach it.

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use super::{is_root, skip};

/// The variable naming an existing server to use instead of a cluster of our own.
pub const PG_URL_VAR: &str = "SPOOL_TEST_PG_URL";

/// The operating-system user that runs the server when the tests run as root.
const OS_USER: &str = "postgres";

/// The database superuser of our clusters (`initdb --username`).
const DB_USER: &str = "postgres";

/// The server's settings, appended to `postgresql.conf` (the socket directory is added
/// per cluster). Tests run in parallel, each with spool processes of its own: many
/// connections; few buffers are needed.
const SETTINGS: &str = "\
listen_addresses = ''
max_connections = 200
shared_buffers = 16MB
fsync = on
";

/// A server available to the tests, and one database of its own for the test holding
/// it (dropped with it).
pub struct Pg {
    server: Server,
    db: String,
    /// Dropped by the pool's thread rather than at once (see [`pooled_pg`]).
    pooled: bool,
}

/// Where the databases are made.
#[derive(Clone, Copy)]
enum Server {
    /// The shared cluster of this test binary.
    Cluster(&'static Cluster),
    /// `SPOOL_TEST_PG_URL`.
    External(&'static str),
}

/// The server for this test, with a fresh database; or `None`, after [`skip`]ping
/// visibly (a failure under `CI=true`) when no server can be had here. A server that is
/// installed but fails to start is a failure, with its log.
#[track_caller]
pub fn pg() -> Option<Pg> {
    match try_pg() {
        Ok(pg) => Some(pg),
        Err(why) => {
            skip(&why);
            None
        }
    }
}

/// Like [`pg`], with the reason instead of a skip.
#[track_caller]
pub fn try_pg() -> Result<Pg, String> {
    let server = match external_url() {
        Some(url) => Server::External(url),
        None => Server::Cluster(Cluster::shared()?),
    };
    let db = new_db_name();
    let pg = Pg {
        server,
        db,
        pooled: false,
    };
    pg.psql(&pg.admin_db(), &format!("CREATE DATABASE {}", pg.db));
    Ok(pg)
}

/// `Ok` when a server can be had here (`SPOOL_TEST_PG_URL`, or the shared cluster,
/// started now if need be); otherwise the reason to skip. Panics when PostgreSQL is
/// installed but does not start.
#[track_caller]
pub fn pg_server_available() -> Result<(), String> {
    match external_url() {
        Some(_) => Ok(()),
        None => Cluster::shared().map(drop),
    }
}

/// Like [`try_pg`], for the contract tests' fixtures: on the shared cluster the database
/// was made ahead by the pool's thread, and is dropped by it after the fixture (see the
/// module's page).
#[track_caller]
pub fn pooled_pg() -> Result<Pg, String> {
    if external_url().is_some() {
        return try_pg();
    }
    let cluster = Cluster::shared()?;
    Ok(Pg {
        server: Server::Cluster(cluster),
        db: Pool::of(cluster).take(),
        pooled: true,
    })
}

/// How many fresh databases the pool keeps made ahead.
const AHEAD: usize = 3;

/// The databases made ahead on the shared cluster, and those waiting to be dropped; one
/// thread makes and drops them, through one connection of its own.
struct Pool {
    state: Mutex<PoolState>,
    changed: Condvar,
}

#[derive(Default)]
struct PoolState {
    ready: Vec<String>,
    to_drop: Vec<String>,
    /// Why the pool's thread stopped, if it did.
    broken: Option<String>,
}

impl Pool {
    /// The pool of the shared cluster, its thread started on first use.
    fn of(cluster: &'static Cluster) -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        let mut started = false;
        let pool = POOL.get_or_init(|| {
            started = true;
            Pool {
                state: Mutex::new(PoolState::default()),
                changed: Condvar::new(),
            }
        });
        if started {
            std::thread::Builder::new()
                .name("pg-pool".into())
                .spawn(move || {
                    let why = pool.work(cluster);
                    pool.lock().broken = Some(why);
                    pool.changed.notify_all();
                })
                .expect("spawn the PostgreSQL pool's thread");
        }
        pool
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh database, waiting for the thread to make one if none is ready.
    #[track_caller]
    fn take(&self) -> String {
        let mut state = self.lock();
        loop {
            if let Some(db) = state.ready.pop() {
                self.changed.notify_all();
                return db;
            }
            if let Some(why) = &state.broken {
                panic!("the PostgreSQL pool: {why}");
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Hands database `db` to the thread to drop.
    fn give_back(&self, db: String) {
        self.lock().to_drop.push(db);
        self.changed.notify_all();
    }

    /// The thread: keeps [`AHEAD`] databases ready, and drops the returned ones, making
    /// first; returns why it stopped.
    fn work(&self, cluster: &Cluster) -> String {
        let url = cluster.url("postgres");
        let mut client = match postgres::Client::connect(&url, postgres::NoTls) {
            Ok(c) => c,
            Err(e) => return format!("connect {url}: {e}\nserver log:\n{}", cluster.log()),
        };
        loop {
            let job = {
                let mut state = self.lock();
                loop {
                    if state.ready.len() < AHEAD {
                        break None;
                    }
                    if let Some(db) = state.to_drop.pop() {
                        break Some(db);
                    }
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            };
            let (sql, db) = match job {
                None => {
                    let db = new_db_name();
                    (format!("CREATE DATABASE {db}"), Some(db))
                }
                Some(old) => (format!("DROP DATABASE IF EXISTS {old} WITH (FORCE)"), None),
            };
            if let Err(e) = client.batch_execute(&sql) {
                return format!("{sql}: {e}\nserver log:\n{}", cluster.log());
            }
            if let Some(db) = db {
                self.lock().ready.push(db);
                self.changed.notify_all();
            }
        }
    }
}

/// `SPOOL_TEST_PG_URL`, read once.
fn external_url() -> Option<&'static str> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(|| std::env::var(PG_URL_VAR).ok().filter(|u| !u.is_empty()))
        .as_deref()
}

/// A database name no other test of any run on the same server uses: `t_PID_N_NANOS`.
fn new_db_name() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "t_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Pg {
    /// The URL of this test's database (what `--url` and `SPOOL_URL` take).
    pub fn url(&self) -> String {
        self.url_of(&self.db)
    }

    /// The URL of database `db` on the same server.
    pub fn url_of(&self, db: &str) -> String {
        match self.server {
            Server::Cluster(c) => c.url(db),
            Server::External(url) => with_database(url, db),
        }
    }

    /// The name of this test's database.
    pub fn db(&self) -> &str {
        &self.db
    }

    /// Runs `sql` with psql in database `db` and returns what it printed (unaligned,
    /// tuples only: `a|b` a row, one row a line); panics, with psql's message, when it
    /// fails.
    #[track_caller]
    pub fn psql(&self, db: &str, sql: &str) -> String {
        psql(&self.url_of(db), sql).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The path of PostgreSQL's program `name` (`psql`, `pg_ctl`, `pg_isready`...): in
    /// the server's binary directory, else the newest installed, else `name` for `PATH`.
    pub fn bin(&self, name: &str) -> PathBuf {
        match self.server {
            Server::Cluster(c) => c.bin(name),
            Server::External(_) => bin(name),
        }
    }

    /// The shared cluster, unless the server is `SPOOL_TEST_PG_URL`'s. Shared by tests
    /// running at the same time: never stop or crash it (use [`Cluster::private`]).
    pub fn cluster(&self) -> Option<&'static Cluster> {
        match self.server {
            Server::Cluster(c) => Some(c),
            Server::External(_) => None,
        }
    }

    /// The database to connect to for creating and dropping others.
    fn admin_db(&self) -> String {
        match self.server {
            Server::Cluster(_) => "postgres".into(),
            Server::External(url) => database_of(url).unwrap_or_else(|| "postgres".into()),
        }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if self.pooled
            && let Server::Cluster(cluster) = self.server
        {
            return Pool::of(cluster).give_back(std::mem::take(&mut self.db));
        }
        // Never panics (a drop while a test's panic unwinds would abort the run).
        let _ = psql(
            &self.url_of(&self.admin_db()),
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db),
        );
    }
}

/// Runs `sql` with psql on the database `url` names; what it printed, or why it failed.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(bin("psql"))
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env_remove("PGHOST")
        .env_remove("PGPORT")
        .env_remove("PGUSER")
        .env_remove("PGDATABASE")
        .env_remove("PGSERVICE")
        .env_remove("PGOPTIONS")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "psql {:?} -c {sql:?}: {}\n{}",
            redact(url),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.into(),
        },
        None => url.into(),
    }
}

/// The span of the database name in a `postgres://` URL: after the authority's `/`, up
/// to `?`; `None` when the URL has no `/` after the authority.
fn database_span(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let slash = start + url[start..].find(['/', '?'])?;
    if url.as_bytes()[slash] != b'/' {
        return None;
    }
    let end = url[slash..].find('?').map_or(url.len(), |i| slash + i);
    Some((slash + 1, end))
}

/// The database a URL names, if any.
fn database_of(url: &str) -> Option<String> {
    let (a, b) = database_span(url)?;
    (a < b).then(|| url[a..b].to_string())
}

/// `url` naming database `db` instead.
fn with_database(url: &str, db: &str) -> String {
    match database_span(url) {
        Some((a, b)) => format!("{}{db}{}", &url[..a], &url[b..]),
        None => {
            let at = url.find('?').unwrap_or(url.len());
            format!("{}/{db}{}", &url[..at], &url[at..])
        }
    }
}

/// Percent-encodes a path for a URL's query (everything but unreserved characters and
/// `/`).
fn encode(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The directory of the newest installed PostgreSQL server: the highest
/// `/usr/lib/postgresql/VERSION/bin` holding `initdb`, `pg_ctl` and `postgres`, else
/// `pg_config --bindir` if it holds them.
pub fn server_bin_dir() -> Option<PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let complete = |dir: &Path| {
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|p| dir.join(p).is_file())
        };
        let mut versions: Vec<(Vec<u64>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let version: Vec<u64> = name
                    .split('.')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .ok()?;
                Some((version, e.path().join("bin")))
            })
            .filter(|(_, dir)| complete(dir))
            .collect();
        versions.sort();
        versions.pop().map(|(_, dir)| dir).or_else(|| {
            let out = Command::new("pg_config")
                .arg("--bindir")
                .stderr(Stdio::null())
                .output()
                .ok()?;
            let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim_end());
            (out.status.success() && complete(&dir)).then_some(dir)
        })
    })
    .clone()
}

/// The path of PostgreSQL's program `name`: in the server's directory if installed
/// there, else `name` (found in `PATH`).
pub fn bin(name: &str) -> PathBuf {
    server_bin_dir()
        .map(|d| d.join(name))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A throwaway PostgreSQL cluster: a temporary directory holding its data directory
/// (`data/`), its log (`log`) and its Unix socket; stopped and removed by its watchdog
/// (see the module's page).
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    /// The operating-system user the server's programs run as (`None`: ours).
    os_user: Option<String>,
    /// The write end of the watchdog's pipe, and the watchdog.
    watchdog: Mutex<Option<(ChildStdin, Child)>>,
}

/// Why there is no cluster.
enum NoCluster {
    /// Not installed here: the test skips.
    Unavailable(String),
    /// Installed, but it failed: the test fails.
    Broken(String),
}

impl Cluster {
    /// The cluster shared by all the tests of this process, started by the first test
    /// that asks; `Err` (a reason to skip) when PostgreSQL is not installed here. Panics
    /// when it is installed but does not start.
    #[track_caller]
    pub fn shared() -> Result<&'static Cluster, String> {
        static SHARED: OnceLock<Result<Cluster, NoCluster>> = OnceLock::new();
        match SHARED.get_or_init(Cluster::start_new) {
            Ok(c) => Ok(c),
            Err(NoCluster::Unavailable(why)) => Err(why.clone()),
            Err(NoCluster::Broken(why)) => panic!("the shared PostgreSQL cluster: {why}"),
        }
    }

    /// A cluster of the caller's own, for tests that stop, crash or restart their server;
    /// stopped and removed when dropped. `Err` (a reason to skip) when PostgreSQL is not
    /// installed; panics when it does not start.
    #[track_caller]
    pub fn private() -> Result<Cluster, String> {
        match Cluster::start_new() {
            Ok(c) => Ok(c),
            Err(NoCluster::Unavailable(why)) => Err(why),
            Err(NoCluster::Broken(why)) => panic!("a private PostgreSQL cluster: {why}"),
        }
    }

    fn start_new() -> Result<Cluster, NoCluster> {
        let bin = server_bin_dir().ok_or_else(|| {
            NoCluster::Unavailable(
                "PostgreSQL's server (initdb, pg_ctl, postgres) is not installed".into(),
            )
        })?;
        let os_user = if is_root() {
            let id = |flag: &str| -> Option<u32> {
                let out = Command::new("id").args([flag, OS_USER]).output().ok()?;
                String::from_utf8(out.stdout).ok()?.trim().parse().ok()
            };
            let (Some(uid), Some(gid)) = (id("-u"), id("-g")) else {
                return Err(NoCluster::Unavailable(format!(
                    "running as root, and there is no user {OS_USER:?} to run PostgreSQL's \
                     server (installing Debian's postgresql package makes it)"
                )));
            };
            Some((uid, gid))
        } else {
            None
        };
        let broken = |e: String| NoCluster::Broken(e);
        let dir = tempfile::Builder::new()
            .prefix("spool-pg-")
            .tempdir()
            .map_err(|e| broken(format!("temporary directory: {e}")))?
            // From now on the watchdog removes it.
            .keep();
        let cluster = Cluster {
            dir,
            bin,
            os_user: os_user.map(|_| OS_USER.to_string()),
            watchdog: Mutex::new(None),
        };
        // The watchdog before anything that might leave a server behind.
        cluster.start_watchdog().map_err(broken)?;
        // The socket directory is open to every user (tests run spool as other users);
        // the data directory is the server's alone (initdb makes it 0700).
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&cluster.dir, fs::Permissions::from_mode(0o755))
            .map_err(|e| broken(format!("chmod {}: {e}", cluster.dir.display())))?;
        if let Some((uid, gid)) = os_user {
            std::os::unix::fs::chown(&cluster.dir, Some(uid), Some(gid))
                .map_err(|e| broken(format!("chown {}: {e}", cluster.dir.display())))?;
        }
        let data = cluster.data_dir();
        cluster
            .run(
                "initdb",
                &[
                    "-D".as_ref(),
                    data.as_os_str(),
                    "--auth=trust".as_ref(),
                    format!("--username={DB_USER}").as_ref(),
                    "--encoding=UTF8".as_ref(),
                    "--locale=C".as_ref(),
                ],
            )
            .map_err(broken)?;
        let settings = format!(
            "\n# The tests' settings\n{SETTINGS}unix_socket_directories = '{}'\n",
            cluster.dir.display().to_string().replace('\'', "''")
        );
        fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .map_err(|e| broken(format!("postgresql.conf: {e}")))?;
        cluster.start().map_err(broken)?;
        Ok(cluster)
    }

    /// Starts the watchdog (see the module's page): `sh` blocked reading a pipe, which
    /// then stops the server and removes the directory.
    fn start_watchdog(&self) -> Result<(), String> {
        const SCRIPT: &str = r#"
trap '' INT TERM HUP
read -r _ || :
dir=$1 data=$2 pg_ctl=$3
shift 3
if [ -f "$data/postmaster.pid" ]; then
    "$@" "$pg_ctl" -D "$data" stop -m fast -w -t 30 >/dev/null 2>&1 ||
        "$@" "$pg_ctl" -D "$data" stop -m immediate -w -t 30 >/dev/null 2>&1
fi
rm -rf -- "$dir"
"#;
        let mut cmd = Command::new("sh");
        cmd.args(["-c", SCRIPT, "pg-watchdog"])
            .arg(&self.dir)
            .arg(self.data_dir())
            .arg(self.bin("pg_ctl"))
            .args(self.as_user())
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Not in the test binary's group: Ctrl-C stops the tests, not the cleanup.
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| format!("spawn sh: {e}"))?;
        let pipe = child.stdin.take().expect("piped stdin");
        *self.watchdog.lock().unwrap_or_else(|e| e.into_inner()) = Some((pipe, child));
        Ok(())
    }

    /// The words that run a program as the server's user (none when that is us).
    fn as_user(&self) -> Vec<String> {
        match &self.os_user {
            Some(u) => vec![
                "setpriv".into(),
                format!("--reuid={u}"),
                format!("--regid={u}"),
                "--init-groups".into(),
            ],
            None => Vec::new(),
        }
    }

    /// Runs the server's program `name` with `args` as the server's user; its output, or
    /// why it failed.
    fn run(&self, name: &str, args: &[&std::ffi::OsStr]) -> Result<String, String> {
        let program = self.bin(name);
        let wrapper = self.as_user();
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("spawn {}: {e}", program.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            let shown: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
            Err(format!(
                "{} {} failed ({}):\n{text}\nserver log {}:\n{}",
                program.display(),
                shown.join(" "),
                out.status,
                self.log_path().display(),
                self.log()
            ))
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<String, String> {
        let data = self.data_dir();
        let mut all: Vec<&std::ffi::OsStr> = vec!["-D".as_ref(), data.as_os_str()];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        self.run("pg_ctl", &all)
    }

    /// Starts the server (`pg_ctl -w start`, logging to [`log_path`](Self::log_path)).
    pub fn start(&self) -> Result<(), String> {
        let log = self.log_path();
        let log = log.to_str().ok_or("log path is not UTF-8")?;
        self.pg_ctl(&["-l", log, "-w", "-t", "60", "start"])
            .map(drop)
    }

    /// Stops the server with `pg_ctl stop -m MODE` (`fast`: a clean stop; `immediate`: a
    /// crash, no checkpoint), waiting until it is gone.
    pub fn stop(&self, mode: &str) -> Result<(), String> {
        self.pg_ctl(&["-m", mode, "-w", "-t", "60", "stop"])
            .map(drop)
    }

    /// Crashes the server (`pg_ctl stop -m immediate`).
    pub fn crash(&self) -> Result<(), String> {
        self.stop("immediate")
    }

    /// Starts the server again after a stop or a crash.
    pub fn restart(&self) -> Result<(), String> {
        self.start()
    }

    /// The temporary directory: the data directory, the log and the socket are in it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of the Unix socket (`host=` in a URL).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The data directory (`pg_ctl -D`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// The path of the server's program `name` (`pg_ctl`, `psql`, `pg_isready`...).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// The URL of database `db`: `postgres:///DB?host=SOCKET_DIR&user=postgres`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres:///{db}?host={}&user={DB_USER}",
            encode(self.socket_dir())
        )
    }

    /// Makes a fresh database and returns its name.
    #[track_caller]
    pub fn create_database(&self) -> String {
        let db = new_db_name();
        self.psql("postgres", &format!("CREATE DATABASE {db}"));
        db
    }

    /// Runs `sql` with psql in database `db` and returns what it printed (see
    /// [`Pg::psql`]); panics when it fails.
    #[track_caller]
    pub fn psql(&self, db: &str, sql: &str) -> String {
        psql(&self.url(db), sql).unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", self.log()))
    }
}

impl Drop for Cluster {
    /// Closes the watchdog's pipe and waits while it stops the server and removes the
    /// directory (the shared cluster, in a static, is never dropped: its watchdog acts
    /// when the process ends).
    fn drop(&mut self) {
        let watchdog = self
            .watchdog
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((pipe, mut child)) = watchdog {
            drop(pipe);
            let _ = child.wait();
        }
    }
}

/// The role of a [`TlsCluster`] that logs in over TCP, with [`TLS_PASSWORD`].
pub const TLS_USER: &str = "spool_tls";

/// The password of [`TLS_USER`]: a string no output should ever hold.
pub const TLS_PASSWORD: &str = "Pw-k3Zq9-neverShown";

/// The database of a [`TlsCluster`], owned by [`TLS_USER`].
pub const TLS_DB: &str = "spool_tls";

/// A private cluster that also listens on 127.0.0.1 (a free port) with TLS: a server
/// certificate for `localhost` only, signed by a CA made here (`ca`); `other_ca` signed
/// nothing the server has. Its `pg_hba.conf`: [`TLS_USER`] logs in with scram-sha-256
/// over the Unix socket and over TCP with TLS; TCP without TLS is rejected for everyone;
/// other users over the Unix socket are trusted. The socket is `.s.PGSQL.PORT` in the
/// cluster's directory (the port is the TCP one).
pub struct TlsCluster {
    pub cluster: Cluster,
    pub port: u16,
    /// The PEM certificate of the CA that signed the server's certificate.
    pub ca: PathBuf,
    /// The PEM certificate of a CA that signed nothing the server has.
    pub other_ca: PathBuf,
}

impl Cluster {
    /// A [`TlsCluster`] of the caller's own; `Err` (a reason to skip) when PostgreSQL is
    /// not installed; panics when it does not start.
    #[track_caller]
    pub fn private_tls() -> Result<TlsCluster, String> {
        let cluster = Cluster::private()?;
        let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
            panic!("a TLS cluster: {what}: {e}\nserver log:\n{}", cluster.log())
        };
        cluster.psql(
            "postgres",
            &format!("CREATE ROLE {TLS_USER} LOGIN PASSWORD '{TLS_PASSWORD}'"),
        );
        cluster.psql(
            "postgres",
            &format!("CREATE DATABASE {TLS_DB} OWNER {TLS_USER}"),
        );
        cluster.stop("fast").unwrap_or_else(|e| fail("stop", &e));

        // The certificates: a CA, the server's (for localhost only), another CA.
        let (ca, ca_issuer) = test_ca("spool test CA").unwrap_or_else(|e| fail("CA", &e));
        let (other_ca, _) = test_ca("another CA").unwrap_or_else(|e| fail("CA", &e));
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| fail("key", &e));
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap_or_else(|e| fail("certificate", &e));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let cert = params
            .signed_by(&key, &ca_issuer)
            .unwrap_or_else(|e| fail("certificate", &e));
        let ca_path = cluster.dir().join("ca.pem");
        let other_ca_path = cluster.dir().join("other-ca.pem");
        let data = cluster.data_dir();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| fail("a free port", &e));
        let hba = format!(
            "local all {TLS_USER} scram-sha-256\n\
             local all all trust\n\
             hostssl all {TLS_USER} 127.0.0.1/32 scram-sha-256\n\
             hostnossl all all 127.0.0.1/32 reject\n"
        );
        let settings = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nssl = on\n\
             ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
        );
        let write = |path: &Path, text: &str, mode: u32| {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            fs::write(path, text).unwrap_or_else(|e| fail(&path.display().to_string(), &e));
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| fail(&path.display().to_string(), &e));
            // The server's files belong to the server's user, as its data directory does.
            let owner = fs::metadata(&data).unwrap_or_else(|e| fail("data directory", &e));
            std::os::unix::fs::chown(path, Some(owner.uid()), Some(owner.gid()))
                .unwrap_or_else(|e| fail(&path.display().to_string(), &e));
        };
        write(&ca_path, &ca, 0o644);
        write(&other_ca_path, &other_ca, 0o644);
        write(&data.join("server.crt"), &cert.pem(), 0o644);
        write(&data.join("server.key"), &key.serialize_pem(), 0o600);
        write(&data.join("pg_hba.conf"), &hba, 0o600);
        fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .unwrap_or_else(|e| fail("postgresql.conf", &e));
        cluster.start().unwrap_or_else(|e| fail("start", &e));
        Ok(TlsCluster {
            cluster,
            port,
            ca: ca_path,
            other_ca: other_ca_path,
        })
    }
}

/// A self-signed CA named `name`: its PEM certificate and the issuer that signs with it.
fn test_ca(name: &str) -> Result<(String, rcgen::Issuer<'static, rcgen::KeyPair>), rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), rcgen::Issuer::new(params, key)))
}

impl TlsCluster {
    /// `postgres://TLS_USER@HOST:PORT/TLS_DB` followed by `params` (`?sslmode=…`), with
    /// no password.
    pub fn url(&self, host: &str, params: &str) -> String {
        format!(
            "postgres://{TLS_USER}@{host}:{}/{TLS_DB}{params}",
            self.port
        )
    }

    /// The directory of the server's Unix socket (with [`port`](Self::port)).
    pub fn socket_dir(&self) -> &Path {
        self.cluster.socket_dir()
    }

    /// The URL of [`TLS_DB`] over the Unix socket as [`TLS_USER`], with no password.
    pub fn socket_url(&self, params: &str) -> String {
        format!(
            "postgres:///{TLS_DB}?host={}&port={}&user={TLS_USER}{params}",
            encode(self.socket_dir()),
            self.port
        )
    }
}

impl Cluster {
    /// A private cluster that also listens on TCP at each of `addresses` (which must be
    /// up on this machine: a veth end of a [`Netns`](super::Netns)), on the default port
    /// 5432 (the addresses are the test's own, and the Unix socket keeps its name, so
    /// [`url`](Self::url) and [`psql`](Self::psql) still work), trusting every connection
    /// from `10.0.0.0/8` (the test's own links). Returns it and the port. `Err` (a reason
    /// to skip) when PostgreSQL is not installed; panics when it does not start.
    #[track_caller]
    pub fn private_on_tcp(addresses: &[&str]) -> Result<(Cluster, u16), String> {
        let cluster = Cluster::private()?;
        let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
            panic!("a TCP cluster: {what}: {e}\nserver log:\n{}", cluster.log())
        };
        cluster.stop("fast").unwrap_or_else(|e| fail("stop", &e));
        let data = cluster.data_dir();
        let append = |name: &str, text: &str| {
            fs::OpenOptions::new()
                .append(true)
                .open(data.join(name))
                .and_then(|mut f| f.write_all(text.as_bytes()))
                .unwrap_or_else(|e| fail(name, &e));
        };
        append(
            "postgresql.conf",
            &format!("listen_addresses = '{}'\n", addresses.join(",")),
        );
        append("pg_hba.conf", "host all all 10.0.0.0/8 trust\n");
        cluster.start().unwrap_or_else(|e| fail("start", &e));
        Ok((cluster, 5432))
    }

    /// The URL of database `db` over TCP at `host:port` (no TLS).
    pub fn tcp_url(&self, host: &str, port: u16, db: &str) -> String {
        format!("postgres://{DB_USER}@{host}:{port}/{db}?sslmode=disable")
    }
}
