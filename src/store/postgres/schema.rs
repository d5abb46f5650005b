//! The schema `spool`: created on first use, versioned, refused when newer.
//!
//! Creation runs in one transaction under a transaction-level advisory lock, so that two
//! first pushes at once do not both create it (`CREATE … IF NOT EXISTS` alone races on
//! the catalog). Reading commands create nothing: without the schema there are no queues.

use postgres::error::SqlState;

use super::connect::{Connection, db_error};
use crate::store::{Error, Result};

/// The version of the schema this binary writes and reads.
pub(crate) const VERSION: i32 = 1;

/// The advisory lock key held while creating the schema (any constant; "spool" in ASCII).
const CREATE_LOCK: i64 = 0x73_70_6f_6f_6c;

/// What this process knows of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Not looked at yet.
    Unknown,
    /// Not there.
    Missing,
    /// There, at our version.
    Current,
}

/// The tables and indexes, version 1 (docs/FORMAT.md describes them).
const CREATE: &str = r#"
CREATE SCHEMA IF NOT EXISTS spool;
CREATE TABLE IF NOT EXISTS spool.version (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS spool.queues (
    name text PRIMARY KEY COLLATE "C",
    next_id bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS spool.messages (
    queue text NOT NULL COLLATE "C" REFERENCES spool.queues (name) ON DELETE CASCADE,
    id bigint NOT NULL,
    position bigint,
    priority smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 9),
    state text NOT NULL CHECK (state IN ('ready', 'delayed', 'claimed', 'failed')),
    payload bytea NOT NULL,
    enqueued_at timestamptz NOT NULL,
    due_at timestamptz,
    expires_at timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    token text,
    lease_until timestamptz,
    reason text,
    PRIMARY KEY (queue, id)
);
CREATE INDEX IF NOT EXISTS messages_ready
    ON spool.messages (queue, priority DESC, position) WHERE state = 'ready';
CREATE INDEX IF NOT EXISTS messages_delayed
    ON spool.messages (queue, due_at, id) WHERE state = 'delayed';
CREATE INDEX IF NOT EXISTS messages_expiring
    ON spool.messages (queue, expires_at)
    WHERE expires_at IS NOT NULL AND state IN ('ready', 'delayed');
"#;

impl Connection {
    /// Whether the schema exists (refusing a newer one); looks once per process.
    pub(crate) fn schema_exists(&self) -> Result<bool> {
        match self.schema.get() {
            Seen::Current => return Ok(true),
            Seen::Missing => return Ok(false),
            Seen::Unknown => {}
        }
        let version: Option<i32> = {
            let mut client = self.client()?;
            match client.query_one("SELECT max(version) FROM spool.version", &[]) {
                Ok(row) => row.get(0),
                Err(e)
                    if e.code() == Some(&SqlState::UNDEFINED_TABLE)
                        || e.code() == Some(&SqlState::INVALID_SCHEMA_NAME) =>
                {
                    None
                }
                Err(e) => {
                    return Err(db_error(
                        format!("read the schema version in {}", self.shown),
                        &e,
                    ));
                }
            }
        };
        self.accept(version)
    }

    /// Records what the version row says, refusing a version this binary does not know.
    fn accept(&self, version: Option<i32>) -> Result<bool> {
        match version {
            None => {
                self.schema.set(Seen::Missing);
                Ok(false)
            }
            Some(v) if v > VERSION => Err(Error::invalid(
                format!("open {}", self.shown),
                None,
                format!(
                    "schema spool is version {v}, newer than this spool knows ({VERSION}): upgrade spool"
                ),
            )),
            Some(_) => {
                self.schema.set(Seen::Current);
                Ok(true)
            }
        }
    }

    /// Creates the schema if it is missing.
    pub(crate) fn ensure_schema(&self) -> Result<()> {
        if self.schema_exists()? {
            return Ok(());
        }
        let what = || format!("create schema spool in {}", self.shown);
        let version: Option<i32> = {
            let mut client = self.client()?;
            let mut tx = client.transaction().map_err(|e| db_error(what(), &e))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CREATE_LOCK])
                .map_err(|e| db_error(what(), &e))?;
            tx.batch_execute(CREATE).map_err(|e| db_error(what(), &e))?;
            tx.execute(
                "INSERT INTO spool.version (version) SELECT $1 \
                 WHERE NOT EXISTS (SELECT 1 FROM spool.version)",
                &[&VERSION],
            )
            .map_err(|e| db_error(what(), &e))?;
            let v = tx
                .query_one("SELECT max(version) FROM spool.version", &[])
                .map_err(|e| db_error(what(), &e))?
                .get(0);
            tx.commit().map_err(|e| db_error(what(), &e))?;
            v
        };
        self.schema.set(Seen::Unknown);
        self.accept(version).map(drop)
    }
}
