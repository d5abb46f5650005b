//! The storage engines the contract tests run on, and the macro that runs them.
//!
//! An engine decides the global arguments every command of a fixture gets (the local
//! engine: `--dir ROOT`; PostgreSQL: `--url URL` of a database of the fixture's own) and
//! the environment a shell script gets (`SPOOL_DIR`, `SPOOL_URL`). Tests of behaviour
//! that any engine must have are written once as `fn name(engine: Engine)` and listed in
//! [`engine_tests!`], which makes one `#[test]` per engine, named `name::local`,
//! `name::postgres`. Adding an engine is a variant here and one line in
//! [`each_engine!`].

use std::ffi::OsString;
use std::path::Path;

/// A storage engine of spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// A spool directory, one file per message (`--dir ROOT`).
    Local,
    /// A PostgreSQL database of the fixture's own on the harness's server (`--url URL`).
    Postgres,
}

/// Where a fixture's store is, as its engine's arguments and environment name it.
pub enum Store<'a> {
    /// A spool directory.
    Dir(&'a Path),
    /// A database's URL.
    Url(&'a str),
}

impl Engine {
    /// The global arguments that point spool at `store`.
    pub fn args(store: Store) -> Vec<OsString> {
        match store {
            Store::Dir(root) => vec!["--dir".into(), root.into()],
            Store::Url(url) => vec!["--url".into(), url.into()],
        }
    }

    /// The environment that points a shell script's `spool` at `store`.
    pub fn env(store: Store) -> Vec<(&'static str, OsString)> {
        match store {
            Store::Dir(root) => vec![("SPOOL_DIR", root.into())],
            Store::Url(url) => vec![("SPOOL_URL", url.into())],
        }
    }

    /// A fresh fixture on this engine.
    #[track_caller]
    pub fn fixture(self) -> super::Fixture {
        super::Fixture::on(self)
    }

    /// Whether this engine can be had here: PostgreSQL needs a server (see
    /// `postgres.rs`). When not, says so with [`skip`](super::skip) (a failure under
    /// `CI=true`) and returns false.
    #[track_caller]
    pub fn available(self) -> bool {
        match self {
            Engine::Local => true,
            Engine::Postgres => match super::pg_server_available() {
                Ok(()) => true,
                Err(why) => {
                    super::skip(&why);
                    false
                }
            },
        }
    }
}

/// One `#[test]` per engine calling `$test(engine)`: the one list of engines.
macro_rules! each_engine {
    ($test:path) => {
        #[test]
        fn local() {
            $test($crate::harness::Engine::Local)
        }
        #[test]
        fn postgres() {
            if $crate::harness::Engine::Postgres.available() {
                $test($crate::harness::Engine::Postgres)
            }
        }
    };
}

/// Runs each of the named `fn NAME(engine: Engine)` once per engine, as `NAME::local`,
/// `NAME::postgres`.
macro_rules! engine_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                $crate::harness::each_engine!(super::$name);
            }
        )*
    };
}

pub(crate) use {each_engine, engine_tests};
