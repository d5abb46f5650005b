//! The storage layer: a spool directory of queues. No command line, no printing: it
//! returns values and errors, and hands warnings about skipped entries to a callback.

mod entry;
mod error;
pub mod names;
mod queue;
mod sys;
pub mod wait;

use std::path::{Path, PathBuf};
use std::rc::Rc;

pub use error::{Error, Result, describe};
pub use queue::{
    Claimed, FORMAT, Finding, Hold, Info, LATEST_MS, Message, Published, PushOptions, Queue,
    Settle, Staging, State, Stats, TakeOptions, lane_dir, now_ms, read_full,
};

/// A spool: the root directory under which each queue is a directory.
#[derive(Clone)]
pub struct Spool {
    root: PathBuf,
    warn: Rc<dyn Fn(&str)>,
}

impl Spool {
    /// A spool rooted at `root`; `warn` receives one line per skipped entry.
    pub fn new(root: impl Into<PathBuf>, warn: impl Fn(&str) + 'static) -> Spool {
        Spool {
            root: root.into(),
            warn: Rc::new(warn),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn warner(&self) -> queue::Warn {
        let warn = Rc::clone(&self.warn);
        Box::new(move |m| warn(m))
    }

    /// Opens an existing queue; `Ok(None)` when it does not exist. Creates nothing.
    pub fn open(&self, name: &str) -> Result<Option<Queue>> {
        check_name(name)?;
        Queue::open(&self.root, name, self.warner())
    }

    /// Opens a queue, creating the root and the queue when missing.
    pub fn create(&self, name: &str) -> Result<Queue> {
        check_name(name)?;
        Queue::create(&self.root, name, self.warner())
    }

    /// Checks a queue (and mends it, with `repair`). A queue directory whose format file
    /// is missing is reported, and completed when repairing.
    pub fn fsck(&self, name: &str, repair: bool) -> Result<Vec<Finding>> {
        check_name(name)?;
        let mut findings = Vec::new();
        let queue = match Queue::open(&self.root, name, self.warner())? {
            Some(q) => q,
            None => {
                let path = self.root.join(name);
                if std::fs::symlink_metadata(&path).is_err() {
                    return Err(Error::invalid("fsck", Some(&path), "no such queue"));
                }
                findings.push(Finding {
                    path: path.join("format"),
                    problem: "is missing: the queue was never completely created".into(),
                    repair: repair.then(|| "created".to_string()),
                });
                if !repair {
                    return Ok(findings);
                }
                self.create(name)?
            }
        };
        findings.extend(queue.fsck(repair)?);
        Ok(findings)
    }

    /// The names of the queues of this spool, sorted.
    pub fn queues(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read spool", &self.root, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read spool", &self.root, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !names::is_valid_queue_name(&name) {
                continue;
            }
            let format = entry.path().join("format");
            match std::fs::symlink_metadata(&format) {
                Ok(m) if m.file_type().is_file() && entry.file_type().is_ok_and(|t| t.is_dir()) => {
                    names.push(name)
                }
                _ => {}
            }
        }
        names.sort();
        Ok(names)
    }
}

fn check_name(name: &str) -> Result<()> {
    if names::is_valid_queue_name(name) {
        Ok(())
    } else {
        Err(Error::invalid(
            format!("invalid queue name {name:?}"),
            None,
            names::QUEUE_NAME_RULE,
        ))
    }
}
