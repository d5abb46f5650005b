//! The storage engines the contract tests run on, and the macro that runs them.
//!
//! An engine decides the global arguments every command of a fixture gets (the local
//! engine: `--dir ROOT`) and the environment a shell script gets. Tests of behaviour that
//! any engine must have are written once as `fn name(engine: Engine)` and listed in
//! [`engine_tests!`], which makes one `#[test]` per engine, named `name::local`, ... .
//! Adding an engine is a variant here and one line in [`each_engine!`].

use std::ffi::OsString;
use std::path::Path;

/// A storage engine of spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// A spool directory, one file per message (`--dir ROOT`).
    Local,
}

impl Engine {
    /// The global arguments that point spool at the store of a fixture whose root is
    /// `root`.
    pub fn args(self, root: &Path) -> Vec<OsString> {
        match self {
            Engine::Local => vec!["--dir".into(), root.into()],
        }
    }

    /// The environment that points a shell script's `spool` at the same store.
    pub fn env(self, root: &Path) -> Vec<(&'static str, OsString)> {
        match self {
            Engine::Local => vec![("SPOOL_DIR", root.into())],
        }
    }

    /// A fresh fixture on this engine.
    pub fn fixture(self) -> super::Fixture {
        super::Fixture::on(self)
    }
}

/// One `#[test]` per engine calling `$test(engine)`: the one list of engines.
macro_rules! each_engine {
    ($test:path) => {
        #[test]
        fn local() {
            $test($crate::harness::Engine::Local)
        }
    };
}

/// Runs each of the named `fn NAME(engine: Engine)` once per engine, as `NAME::local`, ...
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
