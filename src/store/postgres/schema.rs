//! The schema `spool`: created on first use, versioned, upgraded forward, refused when
//! newer.
//!
//! A schema of an older version is upgraded by the first command that opens it, under the
//! same lock as creation, each step in the transaction that records its version: a
//! binary never migrates down, and refuses a schema newer than it knows.
//!
//! Creation runs in one transaction under a transaction-level advisory lock, so that two
//! first pushes at once do not both create it (`CREATE … IF NOT EXISTS` alone races on
//! the catalog). Reading commands create nothing: without the schema there are no queues.

use postgres::error::SqlState;

use super::connect::{Connection, db_error};
use crate::store::{Error, Result};

/// The version of the schema this binary writes and reads.
pub(crate) const VERSION: i32 = 3;

/// The advisory lock key held while creating the schema (any constant; "spool" in ASCII).
const CREATE_LOCK: i64 = 0x73_70_6f_6f_6c;

/// What this process knows of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Not looked at yet.
    Unknown,
    /// Not there when last looked.
    Missing,
    /// There, at our version.
    Current,
}

/// The tables and indexes of the current version (docs/FORMAT.md describes them).
const CREATE: &str = r#"
CREATE SCHEMA IF NOT EXISTS spool;
CREATE TABLE IF NOT EXISTS spool.version (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS spool.queues (
    name text PRIMARY KEY COLLATE "C",
    next_id bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    published bytea
);
CREATE TABLE IF NOT EXISTS spool.messages (
    queue text NOT NULL COLLATE "C",
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
    holder bigint,
    reason text,
    key text COLLATE "C",
    PRIMARY KEY (queue, id)
);
CREATE INDEX IF NOT EXISTS messages_ready
    ON spool.messages (queue, priority DESC, position) WHERE state = 'ready';
CREATE INDEX IF NOT EXISTS messages_delayed
    ON spool.messages (queue, due_at, id) WHERE state = 'delayed';
CREATE INDEX IF NOT EXISTS messages_expiring
    ON spool.messages (queue, expires_at)
    WHERE expires_at IS NOT NULL AND state IN ('ready', 'delayed');
CREATE INDEX IF NOT EXISTS messages_leased
    ON spool.messages (queue, lease_until) WHERE state = 'claimed' AND holder IS NULL;
CREATE INDEX IF NOT EXISTS messages_held
    ON spool.messages (holder) WHERE state = 'claimed' AND holder IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS messages_key
    ON spool.messages (queue, key) WHERE key IS NOT NULL AND state <> 'failed';
CREATE TABLE IF NOT EXISTS spool.holders (
    key bigint PRIMARY KEY,
    since timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS spool.consumed (
    queue text PRIMARY KEY COLLATE "C",
    record bytea
);
"#;

/// The steps from each older version to the next: `UPGRADES[v - 1]` takes version `v`
/// to `v + 1`.
const UPGRADES: [&str; 2] = [
    // 1 → 2: rates, and claims held by a session (run) or a lease (claim).
    r#"
ALTER TABLE spool.queues ADD COLUMN IF NOT EXISTS published bytea;
ALTER TABLE spool.messages ADD COLUMN IF NOT EXISTS holder bigint;
ALTER TABLE spool.messages DROP CONSTRAINT IF EXISTS messages_queue_fkey;
CREATE INDEX IF NOT EXISTS messages_leased
    ON spool.messages (queue, lease_until) WHERE state = 'claimed' AND holder IS NULL;
CREATE INDEX IF NOT EXISTS messages_held
    ON spool.messages (holder) WHERE state = 'claimed' AND holder IS NOT NULL;
CREATE TABLE IF NOT EXISTS spool.holders (
    key bigint PRIMARY KEY,
    since timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS spool.consumed (
    queue text PRIMARY KEY COLLATE "C",
    record bytea
);
"#,
    // 2 → 3: deduplication keys, held by the messages in the queue (not by dead letters).
    r#"
ALTER TABLE spool.messages ADD COLUMN IF NOT EXISTS key text COLLATE "C";
CREATE UNIQUE INDEX IF NOT EXISTS messages_key
    ON spool.messages (queue, key) WHERE key IS NOT NULL AND state <> 'failed';
"#,
];

impl Connection {
    /// Whether the schema exists (refusing a newer one, upgrading an older one); once
    /// found, not looked at again. A missing schema is looked for again at each call: a
    /// command waiting for a queue sees the schema made by the push that makes it.
    pub(crate) fn schema_exists(&self) -> Result<bool> {
        match self.schema.get() {
            Seen::Current => return Ok(true),
            Seen::Missing | Seen::Unknown => {}
        }
        let version: Option<i32> = {
            let mut client = self.client()?;
            // Every statement of a take and a peek reads a queue in its index's order;
            // a sort is never the better plan for them, but the planner picks one while
            // the table's statistics are missing or stale (after a large push, before
            // autovacuum analyses it), and sorts the whole queue for each take. Without
            // sorts it follows the indexes, whatever the statistics say.
            client
                .batch_execute("SET enable_sort = off")
                .map_err(|e| db_error(format!("set up the session in {}", self.shown), &e))?;
            match client.query_typed("SELECT max(version) FROM spool.version", &[]) {
                Ok(rows) => rows.first().and_then(|row| row.get(0)),
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
        match version {
            Some(v) if v < VERSION => self.settle_schema(false).map(|()| true),
            _ => self.accept(version),
        }
    }

    /// Records what the version row says, refusing a version this binary does not know.
    fn accept(&self, version: Option<i32>) -> Result<bool> {
        match version {
            None => {
                self.schema.set(Seen::Missing);
                Ok(false)
            }
            Some(v) if v > VERSION => Err(self.too_new(v)),
            Some(_) => {
                self.schema.set(Seen::Current);
                Ok(true)
            }
        }
    }

    fn too_new(&self, v: i32) -> Error {
        Error::invalid(
            format!("open {}", self.shown),
            None,
            format!(
                "schema spool is version {v}, newer than this spool knows ({VERSION}): upgrade spool"
            ),
        )
    }

    /// Creates the schema if it is missing.
    pub(crate) fn ensure_schema(&self) -> Result<()> {
        if self.schema_exists()? {
            return Ok(());
        }
        self.settle_schema(true)
    }

    /// Under the schema lock: creates the schema (if `create`) when missing, upgrades it
    /// when older, refuses it when newer.
    fn settle_schema(&self, create: bool) -> Result<()> {
        let what = |verb: &str| format!("{verb} schema spool in {}", self.shown);
        let mut verb = "create";
        let version: Option<i32> = {
            let mut client = self.client()?;
            let mut tx = client.transaction().map_err(|e| db_error(what(verb), &e))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CREATE_LOCK])
                .map_err(|e| db_error(what(verb), &e))?;
            let exists: bool = tx
                .query_one("SELECT to_regclass('spool.version') IS NOT NULL", &[])
                .map_err(|e| db_error(what(verb), &e))?
                .get(0);
            let found: Option<i32> = if exists {
                tx.query_one("SELECT max(version) FROM spool.version", &[])
                    .map_err(|e| db_error(what(verb), &e))?
                    .get(0)
            } else {
                None
            };
            let settled = match found {
                None if !create => None,
                None => {
                    tx.batch_execute(CREATE)
                        .map_err(|e| db_error(what(verb), &e))?;
                    tx.execute(
                        "INSERT INTO spool.version (version) SELECT $1 \
                         WHERE NOT EXISTS (SELECT 1 FROM spool.version)",
                        &[&VERSION],
                    )
                    .map_err(|e| db_error(what(verb), &e))?;
                    Some(VERSION)
                }
                Some(v) if v > VERSION => return Err(self.too_new(v)),
                Some(v) => {
                    verb = "upgrade";
                    for step in &UPGRADES[(v.max(1) - 1) as usize..] {
                        tx.batch_execute(step)
                            .map_err(|e| db_error(what(verb), &e))?;
                    }
                    tx.execute("UPDATE spool.version SET version = $1", &[&VERSION])
                        .map_err(|e| db_error(what(verb), &e))?;
                    Some(VERSION)
                }
            };
            tx.commit().map_err(|e| db_error(what(verb), &e))?;
            settled
        };
        self.schema.set(Seen::Unknown);
        self.accept(version).map(drop)
    }
}
