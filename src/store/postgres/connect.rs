//! The connection: the URL checked and masked, one client per process opened on first
//! use, TLS by rustls (no OpenSSL), and the errors of the server said in one line.
//!
//! TLS: with `sslmode=prefer` (the default) or `require`, a TCP connection is encrypted
//! when the server offers it, and the server's certificate is verified against the
//! Mozilla roots (webpki-roots) and the host name; a Unix socket is never encrypted.
//! A server whose certificate does not verify is refused, also under `prefer`.

use std::cell::{Cell, RefCell, RefMut};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::{Client, Lazy, schema};
use crate::store::{Error, Result};

/// How long a connection may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks that `url` names a PostgreSQL database (`postgres://` or `postgresql://`);
/// the error, for `--url: `, shows the URL masked.
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        postgres::Config::from_str(url)
            .map(drop)
            .map_err(|e| format!("invalid URL {}: {}", shown(url), cause(&e)))
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
    let mut tail = rest;
    while let Some(at) = tail.find("password=") {
        let start = at + "password=".len();
        out.push_str(&tail[..start]);
        out.push_str("***");
        tail = &tail[start..];
        tail = &tail[tail.find('&').unwrap_or(tail.len())..];
    }
    out.push_str(tail);
    out
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
    text.replace('\n', " ")
}

/// The error of step `what` on the database.
pub(crate) fn db_error(what: impl Into<String>, e: &postgres::Error) -> Error {
    Error::invalid(what, None, cause(e))
}

/// The connection of this process: opened on first use, then kept.
pub(crate) struct Connection {
    /// The URL, masked, for errors.
    pub(crate) shown: String,
    /// What a connection is opened with (also the waiter's, on a thread of its own).
    pub(super) config: postgres::Config,
    client: Lazy,
    /// The schema's state, once looked at.
    pub(crate) schema: Cell<schema::Seen>,
}

impl Connection {
    pub(crate) fn new(url: &str) -> Result<Connection> {
        let mut config = postgres::Config::from_str(url)
            .map_err(|e| Error::invalid(format!("--url {}", redact(url)), None, cause(&e)))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("spool");
        Ok(Connection {
            shown: redact(url),
            config,
            client: RefCell::new(None),
            schema: Cell::new(schema::Seen::Unknown),
        })
    }

    /// The client, connecting first if this process has not yet.
    pub(crate) fn client(&self) -> Result<Client<'_>> {
        let mut slot = self.client.borrow_mut();
        if slot.is_none() {
            let client = self
                .config
                .connect(tls()?)
                .map_err(|e| db_error(format!("connect {}", self.shown), &e))?;
            *slot = Some(client);
        }
        Ok(RefMut::map(slot, |c| c.as_mut().expect("connected above")))
    }
}

/// The TLS connector: rustls with the ring provider and the Mozilla roots.
pub(super) fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid("set up TLS", None, e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
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
}
