//! The PostgreSQL engine: queues kept in tables of the schema `spool` of a database,
//! reached with `--url postgres://…` or `$SPOOL_URL`.
//!
//! One connection per process, opened on first use ([`connect`]), and a second one of a
//! command that waits, to listen ([`listen`]); the schema is created on the first push
//! ([`schema`]) and a schema newer than this binary is refused. The tables
//! (docs/FORMAT.md, "The PostgreSQL engine", is the reference):
//!
//! - `spool.version`: one row, the schema's version;
//! - `spool.queues`: one row per queue, with the queue's counter `next_id` and the
//!   records of its rates;
//! - `spool.messages`: one row per message, keyed by (queue, id), with its state
//!   (`ready`, `delayed`, `claimed`, `failed`) and its `position` in its priority.
//!
//! Invariants:
//!
//! - Ids and positions of a queue come from its row in `spool.queues`, updated in the
//!   pushing transaction: the row lock serialises the queue's producers until they
//!   commit, so ids commit in increasing order and a take, which sees only committed
//!   rows, never sees a smaller id appear behind a larger one (strict FIFO within a
//!   priority, as in the local engine). Ids are never reused, also after a clear.
//! - A take (`take.rs`) is one statement: `UPDATE … WHERE (queue, id) IN (SELECT …
//!   ORDER BY priority DESC, position FOR UPDATE SKIP LOCKED LIMIT n) RETURNING`, in a
//!   transaction that stays open while the messages are delivered: the removal of the
//!   delivered ones commits once they are written out (a transaction per round of pop),
//!   and a consumer that dies leaves nothing taken (the server rolls its transaction
//!   back when the connection drops).
//! - Delayed messages fall due into the back of their priority (a new position) under
//!   the queue's row lock, before a push allocates ids, and before a take looks.
//! - Nothing is ever built by formatting SQL: every value is a parameter. A password in
//!   the URL is never shown: errors name the URL with it masked.
//! - A change that makes a message available notifies the channel `spool` with the
//!   queue's name, in its transaction (delivered at the commit); a waiting command
//!   listens on a connection of its own, opened at its first sleep, and still polls
//!   ([`listen`]).
//! - The rates of publishing and consumption are records in the queue's row, updated
//!   under its row lock: by a push in its transaction, by a consumption in its own
//!   ([`rates`]).
//!

mod claims;
mod connect;
mod engine;
mod fsck;
mod listen;
mod push;
mod rates;
mod read;
mod schema;
mod take;

use std::cell::RefCell;
use std::rc::Rc;

pub use connect::{check_url, redact};
pub use listen::Waiter;

use crate::store::Result;
use connect::Connection;

/// The PostgreSQL engine: a database, connected to on first use.
pub struct Postgres {
    conn: Rc<Connection>,
}

impl Postgres {
    /// The engine for `url` (already checked by [`check_url`]); connects on first use.
    pub fn new(url: &str) -> Result<Postgres> {
        Ok(Postgres {
            conn: Rc::new(Connection::new(url)?),
        })
    }
}

/// One queue of the database, open.
pub struct Queue {
    conn: Rc<Connection>,
    name: String,
}

impl Queue {
    /// Records `n` messages consumed (popped, acked, failed for good) in the queue's
    /// rate; stats only, so it never fails the operation.
    pub(crate) fn note_consumed(&self, n: u64) {
        let _ = self.count_consumed(n);
    }

    /// Tells waiting consumers, on commit of `client`'s transaction, that messages may be
    /// ready.
    pub(crate) fn changed(
        &self,
        client: &mut impl postgres::GenericClient,
    ) -> std::result::Result<(), postgres::Error> {
        listen::notify(client, &self.name)
    }
}

/// 16 fresh random hex digits, for a claim's token.
pub(crate) fn random_hex() -> String {
    crate::store::token::token()
}

/// The client, borrowed for one operation.
pub(crate) type Client<'a> = std::cell::RefMut<'a, postgres::Client>;

/// Shared state of a connection not yet opened.
pub(crate) type Lazy = RefCell<Option<postgres::Client>>;

impl Queue {
    /// Takes the relay lock: a session advisory lock of the two-key form (the one-key
    /// form is the holders' space), `'spoo'` and the hash of the queue's name, held until
    /// the connection ends. Two queue names of one 32-bit hash would share it (the second
    /// relay is refused, as if it were the same queue).
    pub(crate) fn lock_relay(&self) -> Result<bool> {
        let mut client = self.conn.client()?;
        let row = client
            .query_one(
                "SELECT pg_try_advisory_lock(1936748399, hashtext($1))",
                &[&self.name],
            )
            .map_err(|e| connect::db_error(format!("lock {}", self.name), &e))?;
        Ok(row.get(0))
    }
}
