//! The connection: the URL checked and masked, its settings completed as libpq does,
//! one client per process opened on first use, TLS by rustls (no OpenSSL), and the errors
//! of the server said in one line.
//!
//! Settings: what the URL says wins; what it leaves out comes from libpq's variables
//! (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`, `PGPASSFILE`, `PGSSLMODE`,
//! `PGSSLROOTCERT`, `PGCONNECT_TIMEOUT`, `PGAPPNAME`; empty counts as unset), then
//! libpq's defaults: the Unix socket in `/var/run/postgresql`, port 5432, the operating
//! system's user name, a database named as the user. Without a password from the URL or
//! `PGPASSWORD`, the password file is looked up for each host (`pgpass.rs`); a password
//! file others may read is ignored with a warning on standard error, said here, at
//! connection time (the one message of this engine that is not an error).
//!
//! Several hosts (`host=a,b` or `postgres://a,b/db`) are tried in order, as libpq does;
//! the error names the last one's failure.
//!
//! TLS (`tls.rs`): `sslmode` as libpq means it. `disable`: never; `allow` and `prefer`
//! (the default; `allow` is taken as `prefer`): when the server offers it, with no check
//! of its certificate; `require`: always, with no check unless a root certificate file
//! is given (`sslrootcert`, else `~/.postgresql/root.crt` when it exists), then checked
//! as `verify-ca`; `verify-ca`: the chain must lead to the root certificates;
//! `verify-full`: the chain and the host name. `sslrootcert=system` is the Mozilla roots
//! and makes the default `verify-full` (a weaker mode with it is refused, as libpq 16
//! does). A Unix socket is never encrypted, whatever `sslmode` says (libpq ignores it
//! there).

mod pgpass;
mod tls;

use std::cell::{Cell, RefCell, RefMut};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::{Client, Lazy, schema};
use crate::store::{Error, Result};
use tls::{Check, Roots};

/// How long a connection may take when neither the URL nor `PGCONNECT_TIMEOUT` says.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long sent data may stay unacknowledged before the connection is given up.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// The server's keepalive settings for the session (over TCP; ignored on a Unix socket),
/// unless the URL's `options` set them: idle 30 s, then a probe every 10 s, 3 unanswered.
const SERVER_KEEPALIVES: [(&str, &str); 3] = [
    ("tcp_keepalives_idle", "30"),
    ("tcp_keepalives_interval", "10"),
    ("tcp_keepalives_count", "3"),
];

/// The Unix socket directory when no host is given: Debian's (libpq's default there).
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// The port when none is given.
const DEFAULT_PORT: u16 = 5432;

/// Checks that `url` names a PostgreSQL database (`postgres://` or `postgresql://`);
/// the error, for `--url: `, shows the URL masked.
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Settings::resolve(url, &|_| None, &NoSystem)
            .map(drop)
            .map_err(|e| format!("invalid URL {}: {e}", shown(url)))
    } else {
        Err(format!(
            "not a PostgreSQL URL (postgres://… or postgresql://…): {}",
            shown(url)
        ))
    }
}

/// The URL as errors show it: masked, cut, on one line.
fn shown(url: &str) -> String {
    format!("{:?}", crate::excerpt::cut(&redact(url)))
}

/// `url` with its password masked (`***`), in the user part and in a `password=`
/// parameter. When unsure where the password ends, masks more.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(at) => url.split_at(at + 3),
        None => ("", url),
    };
    let mut out = String::from(scheme);
    // user:password@host: everything from the first ':' to the last '@' is the secret.
    let rest = match (rest.find(':'), rest.rfind('@')) {
        (Some(colon), Some(at)) if colon < at => {
            out.push_str(&rest[..=colon]);
            out.push_str("***");
            &rest[at..]
        }
        _ => rest,
    };
    // A parameter whose name decodes to `password` (`pass%77ord` too), in any case.
    let (head, query) = match rest.find('?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    out.push_str(head);
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if decode_lossy(name).trim().eq_ignore_ascii_case("password") => {
                    format!("{name}=***")
                }
                _ => param.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

/// What the URL itself says, decoded: `None` or empty where it says nothing.
#[derive(Debug, Default)]
struct Url {
    user: Option<String>,
    password: Option<String>,
    /// Hosts: names, IP addresses, or socket directories (starting with '/').
    hosts: Vec<String>,
    /// Ports, one per host of the authority (`None`: that host has none) or from `port=`.
    ports: Vec<Option<u16>>,
    dbname: Option<String>,
    /// The other parameters, in order.
    params: Vec<(String, String)>,
}

impl Url {
    /// Parses a `postgres://` or `postgresql://` URL as libpq does:
    /// `postgres://[user[:password]@][host[:port][,...]][/dbname][?param=value&...]`.
    fn parse(url: &str) -> std::result::Result<Url, String> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or("not a postgres:// URL")?;
        let mut out = Url::default();
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let hostlist = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => {
                let (user, password) = match userinfo.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (userinfo, None),
                };
                out.user = Some(decode(user, "user")?).filter(|u| !u.is_empty());
                if let Some(p) = password {
                    out.password = Some(decode(p, "password")?);
                }
                hosts
            }
            None => authority,
        };
        if !hostlist.is_empty() {
            for chunk in hostlist.split(',') {
                let (host, port) = if let Some(bracketed) = chunk.strip_prefix('[') {
                    let (host, after) = bracketed.split_once(']').ok_or("invalid host")?;
                    let port = match after {
                        "" => None,
                        p => Some(p.strip_prefix(':').ok_or("invalid host")?),
                    };
                    (host.to_string(), port)
                } else {
                    match chunk.split_once(':') {
                        Some((h, p)) => (decode(h, "host")?, Some(p)),
                        None => (decode(chunk, "host")?, None),
                    }
                };
                out.hosts.push(host);
                out.ports.push(match port {
                    None | Some("") => None,
                    Some(p) => Some(parse_port(&decode(p, "port")?)?),
                });
            }
        }
        if let Some(path) = path.filter(|p| !p.is_empty()) {
            out.dbname = Some(decode(path, "database name")?);
        }
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            if pair.is_empty() {
                continue;
            }
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("parameter {:?} without a value", decode_lossy(pair)))?;
            let key = decode(key, "parameter")?;
            let value = decode(value, &key)?;
            match key.as_str() {
                "user" => out.user = Some(value).filter(|v| !v.is_empty()),
                "password" => out.password = Some(value),
                "dbname" => out.dbname = Some(value).filter(|v| !v.is_empty()),
                "host" => {
                    out.hosts = value.split(',').map(str::to_string).collect();
                    out.hosts.retain(|h| !h.is_empty());
                }
                "port" => {
                    out.ports = value
                        .split(',')
                        .map(|p| {
                            if p.is_empty() {
                                Ok(None)
                            } else {
                                parse_port(p).map(Some)
                            }
                        })
                        .collect::<std::result::Result<_, _>>()?;
                }
                _ => out.params.push((key, value)),
            }
        }
        Ok(out)
    }

    /// The value of parameter `key`, the last one given.
    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A port number, 1 to 65535.
fn parse_port(text: &str) -> std::result::Result<u16, String> {
    text.parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("invalid port {:?}", crate::excerpt::cut(text)))
}

/// Percent-decodes `text`, a part of the URL named `what`.
fn decode(text: &str, what: &str) -> std::result::Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-encoding in the {what}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("the {what} is not valid UTF-8"))
}

/// `text` decoded where it can be, for a message.
fn decode_lossy(text: &str) -> String {
    decode(text, "").unwrap_or_else(|_| text.to_string())
}

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> std::result::Result<SslMode, String> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "invalid sslmode {:?} (disable, allow, prefer, require, verify-ca or \
                     verify-full)",
                    crate::excerpt::cut(other)
                ));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where a server is: a TCP host (a name or an IP address) or a Unix socket directory.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Host {
    Tcp(String),
    Unix(PathBuf),
}

/// One server to try.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    host: Host,
    port: u16,
}

impl Target {
    /// The host as the password file names it: `localhost` for the default socket
    /// directory, as libpq does.
    fn pgpass_host(&self) -> String {
        match &self.host {
            Host::Tcp(name) => name.clone(),
            Host::Unix(dir) if dir == Path::new(DEFAULT_SOCKET_DIR) => "localhost".into(),
            Host::Unix(dir) => dir.display().to_string(),
        }
    }

    /// The server as an error names it.
    fn shown(&self) -> String {
        match &self.host {
            Host::Tcp(name) if name.contains(':') => format!("[{name}]:{}", self.port),
            Host::Tcp(name) => format!("{name}:{}", self.port),
            Host::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), self.port),
        }
    }
}

/// What the system tells when the URL and the variables do not: the user's name and
/// home directory.
trait System {
    fn user_name(&self) -> Option<String>;
    fn home(&self) -> Option<PathBuf>;
}

/// No system: for checking a URL's syntax only.
struct NoSystem;

impl System for NoSystem {
    fn user_name(&self) -> Option<String> {
        Some("-".into())
    }
    fn home(&self) -> Option<PathBuf> {
        None
    }
}

/// This process's system: `$HOME`, else the password database; the effective user's
/// name from the password database (as libpq does).
struct ThisSystem;

impl ThisSystem {
    /// The fields of this process's effective user in /etc/passwd.
    fn passwd() -> Option<Vec<String>> {
        let uid = rustix::process::geteuid().as_raw().to_string();
        let text = std::fs::read_to_string("/etc/passwd").ok()?;
        text.lines()
            .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
            .find(|f| f.len() >= 6 && f[2] == uid)
    }
}

impl System for ThisSystem {
    fn user_name(&self) -> Option<String> {
        ThisSystem::passwd()
            .map(|f| f[0].clone())
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
    }
    fn home(&self) -> Option<PathBuf> {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| ThisSystem::passwd().map(|f| PathBuf::from(&f[5])))
    }
}

/// The settings of a connection, complete: the URL's, else the environment's, else
/// the defaults. Cloned and sent to another thread, they open another connection the
/// same way ([`Settings::connect`]).
#[derive(Clone)]
pub(super) struct Settings {
    /// Everything but the host, port, password and TLS.
    config: postgres::Config,
    targets: Vec<Target>,
    user: String,
    dbname: String,
    /// From the URL or `PGPASSWORD`; else the password file is looked up.
    password: Option<String>,
    passfile: Option<PathBuf>,
    check: Check,
    /// What TCP connections do: `disable`, `prefer` or `require`.
    mode: postgres::config::SslMode,
    roots: Option<Roots>,
}

impl Settings {
    /// The settings of `url` with the variables `var` gives and what `system` says.
    fn resolve(
        url: &str,
        var: &dyn Fn(&str) -> Option<String>,
        system: &dyn System,
    ) -> std::result::Result<Settings, String> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let parsed = Url::parse(url)?;

        // The parameters tokio-postgres knows, checked by it; libpq's TLS ones are ours.
        let mut conninfo = String::new();
        for (key, value) in &parsed.params {
            if matches!(key.as_str(), "sslmode" | "sslrootcert" | "passfile") {
                continue;
            }
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            conninfo.push_str(&format!("{key}='{quoted}' "));
        }
        let mut config = if conninfo.is_empty() {
            postgres::Config::new()
        } else {
            postgres::Config::from_str(&conninfo).map_err(|e| cause(&e))?
        };
        if !config.get_hostaddrs().is_empty() {
            return Err("hostaddr is not supported: give the address as the host".into());
        }

        let user = match parsed.user.clone().or_else(|| var("PGUSER")) {
            Some(user) => user,
            None => system
                .user_name()
                .ok_or("no user name: give one in the URL or PGUSER")?,
        };
        let dbname = parsed
            .dbname
            .clone()
            .or_else(|| var("PGDATABASE"))
            .unwrap_or_else(|| user.clone());
        config.user(&user).dbname(&dbname);
        if parsed.param("application_name").is_none() {
            config.application_name(var("PGAPPNAME").as_deref().unwrap_or("spool"));
        }
        // A network cut must fail a command, not hang it: data unacknowledged for 30 s,
        // or an idle connection unanswered for about a minute, ends the connection.
        if parsed.param("tcp_user_timeout").is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        if parsed.param("keepalives_idle").is_none() {
            config.keepalives_idle(Duration::from_secs(30));
        }
        if parsed.param("keepalives_interval").is_none() {
            config.keepalives_interval(Duration::from_secs(10));
        }
        if parsed.param("keepalives_retries").is_none() {
            config.keepalives_retries(3);
        }
        // The server's end of the connection likewise: a session whose client vanished
        // in a network cut would otherwise hold its locks (a push's row lock on its
        // queue, a relay's lock, its claims) for the hours of the system's keepalive
        // default, and every later push to that queue would wait for them. With these
        // the server ends it within about a minute of silence (at once once the link is
        // back: the client's host answers the first probe with a reset).
        let mut options = config.get_options().unwrap_or_default().to_string();
        for (name, value) in SERVER_KEEPALIVES {
            if !options.contains(name) {
                options.push_str(&format!(" -c {name}={value}"));
            }
        }
        config.options(options.trim_start());
        if parsed.param("connect_timeout").is_none() {
            let timeout = match var("PGCONNECT_TIMEOUT") {
                Some(t) => t.trim().parse::<i64>().map_err(|_| {
                    format!("invalid PGCONNECT_TIMEOUT {:?}", crate::excerpt::cut(&t))
                })?,
                None => CONNECT_TIMEOUT.as_secs() as i64,
            };
            // libpq: zero or less waits for ever; under 2 s is 2 s.
            if timeout > 0 {
                config.connect_timeout(Duration::from_secs(timeout.max(2) as u64));
            }
        }

        // Hosts and ports.
        let hosts: Vec<String> = if parsed.hosts.is_empty() {
            match var("PGHOST") {
                Some(h) => h.split(',').map(str::to_string).collect(),
                None => vec![DEFAULT_SOCKET_DIR.into()],
            }
        } else {
            parsed.hosts.clone()
        };
        let hosts: Vec<Host> = hosts
            .into_iter()
            .map(|h| match h.as_str() {
                "" => Host::Unix(DEFAULT_SOCKET_DIR.into()),
                h if h.starts_with('/') => Host::Unix(h.into()),
                h => Host::Tcp(h.into()),
            })
            .collect();
        let ports: Vec<Option<u16>> = if parsed.ports.iter().any(Option::is_some) {
            parsed.ports.clone()
        } else {
            match var("PGPORT") {
                Some(p) => p
                    .split(',')
                    .map(|p| {
                        if p.is_empty() {
                            Ok(None)
                        } else {
                            parse_port(p).map(Some)
                        }
                    })
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| format!("PGPORT: {e}"))?,
                None => Vec::new(),
            }
        };
        let count = hosts.len();
        let port_of = |i: usize| -> std::result::Result<u16, String> {
            Ok(match ports.len() {
                0 => None,
                1 => ports[0],
                n if n == count => ports[i],
                _ => return Err("as many ports as hosts, or one, are needed".into()),
            }
            .unwrap_or(DEFAULT_PORT))
        };
        let targets = hosts
            .into_iter()
            .enumerate()
            .map(|(i, host)| {
                Ok(Target {
                    host,
                    port: port_of(i)?,
                })
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;

        let password = parsed.password.clone().or_else(|| var("PGPASSWORD"));
        let home = system.home();
        let passfile = parsed
            .param("passfile")
            .map(PathBuf::from)
            .or_else(|| var("PGPASSFILE").map(PathBuf::from))
            .or_else(|| home.as_ref().map(|h| h.join(".pgpass")));

        // TLS.
        let rootcert = parsed
            .param("sslrootcert")
            .map(str::to_string)
            .or_else(|| var("PGSSLROOTCERT"));
        let given_mode = match parsed.param("sslmode") {
            Some(m) => Some(SslMode::parse(m)?),
            None => var("PGSSLMODE")
                .map(|m| SslMode::parse(&m).map_err(|e| format!("PGSSLMODE: {e}")))
                .transpose()?,
        };
        let system_roots = rootcert.as_deref() == Some("system");
        let sslmode = match given_mode {
            None if system_roots => SslMode::VerifyFull,
            None => SslMode::Prefer,
            Some(m) if system_roots && m != SslMode::VerifyFull => {
                return Err(format!(
                    "weak sslmode \"{}\" may not be used with sslrootcert=system (use \
                     \"verify-full\")",
                    m.name()
                ));
            }
            Some(m) => m,
        };
        let default_rootcert = home.as_ref().map(|h| h.join(".postgresql/root.crt"));
        let roots = match rootcert {
            Some(r) if r == "system" => Some(Roots::System),
            Some(path) => Some(Roots::File(path.into())),
            None => default_rootcert.clone().map(Roots::File),
        };
        let root_file_exists = match &roots {
            Some(Roots::System) => true,
            Some(Roots::File(p)) => tls::exists(p),
            None => false,
        };
        let (check, mode) = match sslmode {
            SslMode::Disable => (Check::None, postgres::config::SslMode::Disable),
            SslMode::Allow | SslMode::Prefer => (Check::None, postgres::config::SslMode::Prefer),
            SslMode::Require if root_file_exists => {
                (Check::Chain, postgres::config::SslMode::Require)
            }
            SslMode::Require => (Check::None, postgres::config::SslMode::Require),
            SslMode::VerifyCa => (Check::Chain, postgres::config::SslMode::Require),
            SslMode::VerifyFull => (Check::Full, postgres::config::SslMode::Require),
        };
        Ok(Settings {
            config,
            targets,
            user,
            dbname,
            password,
            passfile,
            check,
            mode,
            roots: if check == Check::None { None } else { roots },
        })
    }

    /// Connects to the first target that takes the connection; the error is the cause
    /// of one `spool: ` line, naming the server.
    pub(super) fn connect(&self) -> std::result::Result<postgres::Client, String> {
        let tcp = self.targets.iter().any(|t| matches!(t.host, Host::Tcp(_)));
        let connector = if tcp && self.mode != postgres::config::SslMode::Disable {
            if self.check != Check::None
                && let Some(Roots::File(path)) = &self.roots
                && !tls::exists(path)
            {
                return Err(format!(
                    "root certificate file \"{}\" does not exist; either provide the file, \
                     use the system's trusted roots with sslrootcert=system, or change \
                     sslmode to disable server certificate verification",
                    path.display()
                ));
            }
            Some(tls::connector(self.check, self.roots.as_ref())?)
        } else {
            None
        };
        let passfile = match (&self.password, &self.passfile) {
            (None, Some(path)) => {
                let (file, warning) = pgpass::File::read(path);
                // Once per process, however many connections it opens.
                static WARNED: std::sync::Once = std::sync::Once::new();
                if let Some(w) = warning {
                    WARNED.call_once(|| eprintln!("spool: warning: {w}"));
                }
                file
            }
            _ => None,
        };
        let mut last = String::from("no host");
        for target in &self.targets {
            let mut config = self.config.clone();
            config.port(target.port);
            match &target.host {
                Host::Tcp(name) => {
                    config.host(name).ssl_mode(self.mode);
                }
                Host::Unix(dir) => {
                    config
                        .host_path(dir)
                        .ssl_mode(postgres::config::SslMode::Disable);
                }
            }
            let password = self.password.clone().or_else(|| {
                passfile.as_ref().and_then(|f| {
                    f.lookup(&pgpass::Key {
                        host: &target.pgpass_host(),
                        port: target.port,
                        dbname: &self.dbname,
                        user: &self.user,
                    })
                })
            });
            if let Some(p) = password {
                config.password(p);
            }
            let result = match (&target.host, &connector) {
                (Host::Tcp(_), Some(tls)) => config.connect(tls.clone()),
                _ => config.connect(postgres::NoTls),
            };
            match result {
                Ok(client) => return Ok(client),
                Err(e) => {
                    let said = cause(&e).replace(
                        "invalid configuration: password missing",
                        "the server asks for a password: none in the URL, PGPASSWORD or \
                         the password file",
                    );
                    last = format!("{}: {said}", target.shown());
                }
            }
        }
        Err(last)
    }
}

/// A server error, or a connection's, as the cause of one `spool: ` line.
pub(crate) fn cause(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    // As strerror says it: without Rust's "(os error N)".
    while let Some(at) = text.find(" (os error ") {
        let end = text[at..].find(')').map_or(text.len(), |e| at + e + 1);
        text.replace_range(at..end, "");
    }
    words_for_names(&text.replace('\n', " "))
}

/// rustls names some certificate errors by their Rust names (`invalid peer certificate:
/// UnknownIssuer`): those in words (`unknown issuer`).
fn words_for_names(text: &str) -> String {
    const AFTER: &str = "invalid peer certificate: ";
    let Some(at) = text.find(AFTER) else {
        return text.to_string();
    };
    let start = at + AFTER.len();
    let end = text[start..]
        .find(|c: char| !c.is_ascii_alphanumeric())
        .map_or(text.len(), |e| start + e);
    let name = &text[start..end];
    if !name.starts_with(|c: char| c.is_ascii_uppercase()) {
        return text.to_string();
    }
    let mut words = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() && !words.is_empty() {
            words.push(' ');
        }
        words.push(c.to_ascii_lowercase());
    }
    format!("{}{words}{}", &text[..start], &text[end..])
}

/// The error of step `what` on the database.
pub(crate) fn db_error(what: impl Into<String>, e: &postgres::Error) -> Error {
    Error::invalid(what, None, cause(e))
}

/// The connection of this process: opened on first use, then kept.
pub(crate) struct Connection {
    /// The URL, masked, for errors.
    pub(crate) shown: String,
    settings: Settings,
    client: Lazy,
    /// The schema's state, once looked at.
    pub(crate) schema: Cell<schema::Seen>,
    /// The key of the session's advisory lock that marks this process's claims (pop,
    /// run), once taken: one per session, whatever queues it opens.
    pub(crate) holder: Cell<Option<i64>>,
}

impl Connection {
    pub(crate) fn new(url: &str) -> Result<Connection> {
        let settings = Settings::resolve(url, &|name| std::env::var(name).ok(), &ThisSystem)
            .map_err(|e| Error::invalid(format!("--url {}", redact(url)), None, e))?;
        Ok(Connection {
            shown: redact(url),
            settings,
            client: RefCell::new(None),
            schema: Cell::new(schema::Seen::Unknown),
            holder: Cell::new(None),
        })
    }

    /// The settings this connection is opened with (for another connection).
    pub(super) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The client, connecting first if this process has not yet.
    pub(crate) fn client(&self) -> Result<Client<'_>> {
        let mut slot = self.client.borrow_mut();
        if slot.is_none() {
            let client = self
                .settings()
                .connect()
                .map_err(|e| Error::invalid(format!("connect {}", self.shown), None, e))?;
            *slot = Some(client);
        }
        Ok(RefMut::map(slot, |c| c.as_mut().expect("connected above")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            redact("postgres://u:s3cret@db.example/q"),
            "postgres://u:***@db.example/q"
        );
        assert_eq!(redact("postgres://u:p@ss@h/q"), "postgres://u:***@h/q");
        assert_eq!(
            redact("postgresql://h/q?user=u&password=s3cret&sslmode=require"),
            "postgresql://h/q?user=u&password=***&sslmode=require"
        );
        assert_eq!(redact("postgres://u@h:5432/q"), "postgres://u@h:5432/q");
        assert_eq!(
            redact("postgresql:///db?host=/tmp&pass%77ord=s3cret&PASSWORD=x"),
            "postgresql:///db?host=/tmp&pass%77ord=***&PASSWORD=***"
        );
        assert_eq!(redact("postgres://h:5432/q"), "postgres://h:5432/q");
    }

    #[test]
    fn only_postgres_urls_are_taken() {
        assert!(check_url("postgres://u@localhost/db").is_ok());
        assert!(check_url("postgresql:///db?host=/tmp").is_ok());
        let e = check_url("mysql://u:s3cret@h/db").unwrap_err();
        assert!(e.starts_with("not a PostgreSQL URL"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }

    /// A system whose user is `os` and home `/home/os`.
    struct Fake;

    impl System for Fake {
        fn user_name(&self) -> Option<String> {
            Some("os".into())
        }
        fn home(&self) -> Option<PathBuf> {
            Some("/nonexistent/home/os".into())
        }
    }

    fn resolve(url: &str, vars: &[(&str, &str)]) -> std::result::Result<Settings, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::resolve(
            url,
            &move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            &Fake,
        )
    }

    fn tcp(host: &str, port: u16) -> Target {
        Target {
            host: Host::Tcp(host.into()),
            port,
        }
    }

    #[test]
    fn defaults_are_libpqs() {
        let s = resolve("postgres://", &[]).unwrap();
        assert_eq!(s.user, "os");
        assert_eq!(s.dbname, "os");
        assert_eq!(
            s.targets,
            [Target {
                host: Host::Unix(DEFAULT_SOCKET_DIR.into()),
                port: 5432
            }]
        );
        assert_eq!(s.password, None);
        assert_eq!(s.passfile, Some("/nonexistent/home/os/.pgpass".into()));
        assert_eq!(
            (s.check, s.mode),
            (Check::None, postgres::config::SslMode::Prefer)
        );
        assert_eq!(s.config.get_application_name(), Some("spool"));
        assert_eq!(s.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(
            s.config.get_options(),
            Some(
                "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 \
                 -c tcp_keepalives_count=3"
            )
        );
    }

    #[test]
    fn the_url_options_keep_their_own_keepalives() {
        let s = resolve(
            "postgres://h/x?options=-c%20tcp_keepalives_idle%3D5%20-c%20work_mem%3D8MB",
            &[],
        )
        .unwrap();
        assert_eq!(
            s.config.get_options(),
            Some(
                "-c tcp_keepalives_idle=5 -c work_mem=8MB -c tcp_keepalives_interval=10 \
                 -c tcp_keepalives_count=3"
            )
        );
    }

    #[test]
    fn the_environment_fills_what_the_url_leaves_out() {
        let env = [
            ("PGHOST", "db.example,/run/pg"),
            ("PGPORT", "5433"),
            ("PGUSER", "alice"),
            ("PGDATABASE", "jobs"),
            ("PGPASSWORD", "s3cret"),
            ("PGPASSFILE", "/etc/pgpass"),
            ("PGAPPNAME", "worker"),
            ("PGCONNECT_TIMEOUT", "3"),
        ];
        let s = resolve("postgresql://", &env).unwrap();
        assert_eq!((s.user.as_str(), s.dbname.as_str()), ("alice", "jobs"));
        assert_eq!(
            s.targets,
            [
                tcp("db.example", 5433),
                Target {
                    host: Host::Unix("/run/pg".into()),
                    port: 5433
                }
            ]
        );
        assert_eq!(s.password.as_deref(), Some("s3cret"));
        assert_eq!(s.passfile, Some("/etc/pgpass".into()));
        assert_eq!(s.config.get_application_name(), Some("worker"));
        assert_eq!(
            s.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );

        // The URL's own parts win, each on its own.
        let s = resolve("postgres://bob:pw@h1:6000,h2/app?application_name=x", &env).unwrap();
        assert_eq!((s.user.as_str(), s.dbname.as_str()), ("bob", "app"));
        assert_eq!(s.targets, [tcp("h1", 6000), tcp("h2", 5432)]);
        assert_eq!(s.password.as_deref(), Some("pw"));
        assert_eq!(s.config.get_application_name(), Some("x"));
        // A host without a port takes PGPORT; the user alone takes the database.
        let s = resolve("postgres://h/?user=carol", &[("PGPORT", "7000")]).unwrap();
        assert_eq!(s.targets, [tcp("h", 7000)]);
        assert_eq!((s.user.as_str(), s.dbname.as_str()), ("carol", "carol"));
        // Empty variables count as unset.
        let s = resolve("postgres:///db", &[("PGHOST", ""), ("PGUSER", "")]).unwrap();
        assert_eq!(s.user, "os");
        assert_eq!(s.targets[0].host, Host::Unix(DEFAULT_SOCKET_DIR.into()));
    }

    #[test]
    fn url_parts_are_decoded() {
        let s = resolve(
            "postgres://us%40er:p%3Ass@[::1]:5434/d%20b?host=%2Ftmp%2Fpg&port=5999&sslmode=disable",
            &[],
        )
        .unwrap();
        assert_eq!(s.user, "us@er");
        assert_eq!(s.password.as_deref(), Some("p:ss"));
        assert_eq!(s.dbname, "d b");
        assert_eq!(
            s.targets,
            [Target {
                host: Host::Unix("/tmp/pg".into()),
                port: 5999
            }]
        );
        let s = resolve("postgres://h/x?application_name=it%27s%20a%5Cb", &[]).unwrap();
        assert_eq!(s.config.get_application_name(), Some("it's a\\b"));
        let s = resolve("postgres://[::1]:5434/x", &[]).unwrap();
        assert_eq!(s.targets, [tcp("::1", 5434)]);
        assert!(resolve("postgres://h:99999/x", &[]).is_err());
        let e = resolve("postgres://h/x?hostaddr=127.0.0.1", &[]).err();
        assert!(
            e.as_deref()
                .is_some_and(|e| e.starts_with("hostaddr is not supported")),
            "{e:?}"
        );
        assert!(resolve("postgres://h/x?sslmode=sometimes", &[]).is_err());
        assert!(resolve("postgres://h/x?nonsense=1", &[]).is_err());
        assert!(resolve("postgres://h/x?port=1,2&host=a,b,c", &[]).is_err());
    }

    #[test]
    fn sslmodes_as_libpq() {
        use postgres::config::SslMode as Wire;
        let mode =
            |url: &str, env: &[(&str, &str)]| resolve(url, env).map(|s| (s.check, s.mode, s.roots));
        let file = |p: &str| Some(Roots::File(p.into()));
        assert_eq!(
            mode("postgres://h/d?sslmode=disable", &[]),
            Ok((Check::None, Wire::Disable, None))
        );
        assert_eq!(
            mode("postgres://h/d?sslmode=allow", &[]),
            Ok((Check::None, Wire::Prefer, None))
        );
        assert_eq!(
            mode("postgres://h/d", &[("PGSSLMODE", "require")]),
            Ok((Check::None, Wire::Require, None))
        );
        // require with a root certificate file that exists: verify-ca.
        assert_eq!(
            mode("postgres://h/d?sslmode=require&sslrootcert=/dev/null", &[]),
            Ok((Check::Chain, Wire::Require, file("/dev/null")))
        );
        assert_eq!(
            mode(
                "postgres://h/d?sslmode=require&sslrootcert=/nonexistent",
                &[]
            ),
            Ok((Check::None, Wire::Require, None))
        );
        assert_eq!(
            mode(
                "postgres://h/d?sslmode=verify-ca",
                &[("PGSSLROOTCERT", "/ca.pem")]
            ),
            Ok((Check::Chain, Wire::Require, file("/ca.pem")))
        );
        assert_eq!(
            mode("postgres://h/d?sslmode=verify-full", &[]),
            Ok((
                Check::Full,
                Wire::Require,
                file("/nonexistent/home/os/.postgresql/root.crt")
            ))
        );
        // The URL wins over PGSSLMODE.
        assert_eq!(
            mode(
                "postgres://h/d?sslmode=disable",
                &[("PGSSLMODE", "verify-full")]
            ),
            Ok((Check::None, Wire::Disable, None))
        );
        // sslrootcert=system: verify-full by default, weaker modes refused.
        assert_eq!(
            mode("postgres://h/d?sslrootcert=system", &[]),
            Ok((Check::Full, Wire::Require, Some(Roots::System)))
        );
        let bad = mode("postgres://h/d", &[("PGSSLMODE", "on")]).unwrap_err();
        assert!(
            bad.starts_with("PGSSLMODE: invalid sslmode \"on\""),
            "{bad}"
        );
        let weak = mode("postgres://h/d?sslrootcert=system&sslmode=require", &[]).unwrap_err();
        assert!(weak.contains("weak sslmode \"require\""), "{weak}");
    }

    #[test]
    fn certificate_errors_in_words() {
        assert_eq!(
            words_for_names("x: invalid peer certificate: UnknownIssuer"),
            "x: invalid peer certificate: unknown issuer"
        );
        assert_eq!(
            words_for_names("invalid peer certificate: BadSignature; more"),
            "invalid peer certificate: bad signature; more"
        );
        let said = "invalid peer certificate: certificate not valid for name \"a\"";
        assert_eq!(words_for_names(said), said);
    }

    #[test]
    fn pgpass_names_the_default_socket_localhost() {
        let unix = |dir: &str| Target {
            host: Host::Unix(dir.into()),
            port: 5432,
        };
        assert_eq!(unix(DEFAULT_SOCKET_DIR).pgpass_host(), "localhost");
        assert_eq!(unix("/tmp/pg").pgpass_host(), "/tmp/pg");
        assert_eq!(tcp("db", 1).pgpass_host(), "db");
    }
}
