//! Opening and listing queues, and reading them: peek, walk (list), stats (with the
//! rates of rates.rs), len, clear.
//! Reading commands create nothing; a queue is a row of `spool.queues`.

use std::io::Cursor;

use super::connect::db_error;
use super::push::{millis, time};
use super::rates::rate;
use super::{Postgres, Queue};
use crate::clock::now_ms;
use crate::store::{Info, Message, Payload, Result, State, Stats, check_queue_name};

impl Postgres {
    pub(crate) fn open(&self, name: &str) -> Result<Option<Queue>> {
        check_queue_name(name)?;
        if !self.conn.schema_exists()? {
            return Ok(None);
        }
        let found = self
            .conn
            .client()?
            .query_typed_opt(
                "SELECT 1 FROM spool.queues WHERE name = $1",
                &[(&name, postgres::types::Type::TEXT)],
            )
            .map_err(|e| db_error(format!("open {name} in {}", self.conn.shown), &e))?;
        Ok(found.map(|_| self.queue(name)))
    }

    pub(crate) fn create(&self, name: &str) -> Result<Queue> {
        check_queue_name(name)?;
        self.conn.ensure_schema()?;
        self.conn
            .client()?
            .execute_typed(
                "INSERT INTO spool.queues (name) VALUES ($1) ON CONFLICT DO NOTHING",
                &[(&name, postgres::types::Type::TEXT)],
            )
            .map_err(|e| db_error(format!("create {name} in {}", self.conn.shown), &e))?;
        Ok(self.queue(name))
    }

    fn queue(&self, name: &str) -> Queue {
        Queue {
            conn: self.conn.clone(),
            name: name.to_string(),
        }
    }

    pub(crate) fn queues(&self) -> Result<Vec<String>> {
        if !self.conn.schema_exists()? {
            return Ok(Vec::new());
        }
        let rows = self
            .conn
            .client()?
            .query("SELECT name FROM spool.queues ORDER BY name", &[])
            .map_err(|e| db_error(format!("list the queues in {}", self.conn.shown), &e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

/// The columns of a message's metadata, for [`info`].
pub(crate) const INFO: &str = "state, id, octet_length(payload)::bigint, enqueued_at, attempts, priority, \
                    coalesce(due_at, lease_until), expires_at, reason, key";

fn state(name: &str) -> State {
    match name {
        "delayed" => State::Delayed,
        "claimed" => State::Claimed,
        "failed" => State::Failed,
        _ => State::Ready,
    }
}

pub(crate) fn info(row: &postgres::Row) -> Info {
    Info {
        state: state(row.get(0)),
        id: row.get::<_, i64>(1) as u64,
        size: row.get::<_, i64>(2) as u64,
        enqueued: row.get(3),
        attempts: row.get::<_, i32>(4) as u32,
        priority: row.get::<_, i16>(5) as u8,
        until: row.get::<_, Option<std::time::SystemTime>>(6).map(millis),
        expires: row.get::<_, Option<std::time::SystemTime>>(7).map(millis),
        reason: row.get(8),
        key: row.get(9),
    }
}

impl Queue {
    fn fail(&self, verb: &str) -> impl Fn(postgres::Error) -> crate::store::Error + '_ {
        let verb = verb.to_string();
        move |e| db_error(format!("{verb} {} in {}", self.name, self.conn.shown), &e)
    }

    pub(crate) fn peek(
        &self,
        n: usize,
        mut each: impl FnMut(Message) -> Result<bool>,
    ) -> Result<usize> {
        self.upkeep("peek into")?;
        let rows = self
            .conn
            .client()?
            .query(
                "SELECT id, attempts, payload FROM spool.messages \
                 WHERE queue = $1 AND state = 'ready' AND (expires_at IS NULL OR expires_at > $3) \
                 ORDER BY priority DESC, position LIMIT $2",
                &[
                    &self.name,
                    &(n.min(i64::MAX as usize) as i64),
                    &time(now_ms()),
                ],
            )
            .map_err(self.fail("peek into"))?;
        let mut seen = 0;
        for row in rows {
            let payload: Vec<u8> = row.get(2);
            seen += 1;
            let message = Message {
                id: row.get::<_, i64>(0) as u64,
                size: payload.len() as u64,
                attempts: row.get::<_, i32>(1) as u32,
                payload: Payload::Memory(Cursor::new(payload)),
            };
            if !each(message)? {
                break;
            }
        }
        Ok(seen)
    }

    pub(crate) fn walk(
        &self,
        states: &[State],
        mut each: impl FnMut(&Info, &dyn Fn() -> Result<Option<Payload>>) -> Result<bool>,
    ) -> Result<()> {
        // One snapshot for every state: a message that moves from one state to another
        // while the listing runs is listed once, in the state it had at the start.
        self.conn
            .client()?
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(self.fail("list"))?;
        let walked = self.walk_in_snapshot(states, &mut each);
        let end = if walked.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = self
            .conn
            .client()
            .and_then(|mut c| c.batch_execute(end).map_err(self.fail("list")));
        walked.and(ended)
    }

    fn walk_in_snapshot(
        &self,
        states: &[State],
        each: &mut impl FnMut(&Info, &dyn Fn() -> Result<Option<Payload>>) -> Result<bool>,
    ) -> Result<()> {
        for &which in states {
            let order = match which {
                State::Ready => "priority DESC, position",
                State::Delayed => "due_at, id",
                State::Claimed | State::Failed => "id",
            };
            // The ORDER BY is one of the constants above, never user input.
            let sql = format!(
                "SELECT {INFO} FROM spool.messages WHERE queue = $1 AND state = $2 ORDER BY {order}"
            );
            let rows = self
                .conn
                .client()?
                .query(&sql, &[&self.name, &which.as_str()])
                .map_err(self.fail("list"))?;
            for row in &rows {
                let info = info(row);
                let open = || -> Result<Option<Payload>> {
                    let row = self
                        .conn
                        .client()?
                        .query_opt(
                            "SELECT payload FROM spool.messages WHERE queue = $1 AND id = $2",
                            &[&self.name, &(info.id as i64)],
                        )
                        .map_err(self.fail("read a message of"))?;
                    Ok(row.map(|r| Payload::Memory(Cursor::new(r.get(0)))))
                };
                if !each(&info, &open)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    pub(crate) fn stats(&self) -> Result<Stats> {
        let row = self
            .conn
            .client()?
            .query_one(
                "SELECT count(*) FILTER (WHERE state = 'ready'), \
                 coalesce(sum(octet_length(payload)) FILTER (WHERE state = 'ready'), 0)::bigint, \
                 min(enqueued_at) FILTER (WHERE state = 'ready'), \
                 count(*) FILTER (WHERE state = 'delayed'), \
                 count(*) FILTER (WHERE state = 'claimed'), \
                 count(*) FILTER (WHERE state = 'failed'), \
                 (SELECT next_id FROM spool.queues WHERE name = $1), \
                 (SELECT published FROM spool.queues WHERE name = $1), \
                 (SELECT record FROM spool.consumed WHERE queue = $1) \
                 FROM spool.messages WHERE queue = $1",
                &[&self.name],
            )
            .map_err(self.fail("read the stats of"))?;
        let count = |i| row.get::<_, i64>(i) as u64;
        Ok(Stats {
            ready: count(0),
            bytes: count(1),
            oldest: row.get(2),
            delayed: count(3),
            claimed: count(4),
            failed: count(5),
            next_id: row.get::<_, Option<i64>>(6).unwrap_or(1) as u64,
            // A missing or damaged record is no rate (rates.rs).
            published: rate(row.get(7)),
            consumed: rate(row.get(8)),
        })
    }

    pub(crate) fn waiting(&self) -> Result<u64> {
        let row = self
            .conn
            .client()?
            .query_one(
                "SELECT count(*) FROM spool.messages WHERE queue = $1 AND state = 'ready'",
                &[&self.name],
            )
            .map_err(self.fail("count the messages of"))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    pub(crate) fn clear(&self, states: &[State]) -> Result<u64> {
        let names: Vec<&str> = states
            .iter()
            .filter(|s| **s != State::Claimed)
            .map(|s| s.as_str())
            .collect();
        self.conn
            .client()?
            .execute(
                "DELETE FROM spool.messages WHERE queue = $1 AND state = ANY($2)",
                &[&self.name, &names],
            )
            .map_err(self.fail("clear"))
    }

    pub(crate) fn next_due(&self) -> Result<Option<u64>> {
        let row = self
            .conn
            .client()?
            .query_one(
                "SELECT min(t) FROM (SELECT min(due_at) FROM spool.messages \
                 WHERE queue = $1 AND state = 'delayed' UNION ALL \
                 SELECT min(lease_until) FROM spool.messages \
                 WHERE queue = $1 AND state = 'claimed' AND holder IS NULL) AS d(t)",
                &[&self.name],
            )
            .map_err(self.fail("read the next due time of"))?;
        Ok(row.get::<_, Option<std::time::SystemTime>>(0).map(millis))
    }
}

/// FNV-1a, 64 bits: the hash of a queue's identity (docs/FORMAT.md gives its input).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Queue {
    /// 16 hex digits of FNV-1a 64 over `spool-pg:SYSID:DATABASE:QUEUE:CREATED`: the
    /// server's system identifier (`pg_control_system()`, `-` where the role may not run
    /// it), the database, the queue's name and its row's creation time in microseconds
    /// (so a queue removed and made again is another).
    pub(crate) fn identity(&self) -> Result<String> {
        let fail = self.fail("read the identity of");
        let mut client = self.conn.client()?;
        let row = client
            .query_typed_opt(
                "SELECT has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE'), \
                 current_database()::text, \
                 floor(extract(epoch FROM created_at) * 1000000)::bigint \
                 FROM spool.queues WHERE name = $1",
                &[(&self.name, postgres::types::Type::TEXT)],
            )
            .map_err(&fail)?;
        let Some(row) = row else {
            return Err(crate::store::Error::invalid(
                format!("read the identity of {} in {}", self.name, self.conn.shown),
                None,
                "the queue was removed",
            ));
        };
        let system = if row.get::<_, bool>(0) {
            let sysid: i64 = client
                .query_typed_one("SELECT system_identifier FROM pg_control_system()", &[])
                .map_err(&fail)?
                .get(0);
            sysid.to_string()
        } else {
            "-".to_string()
        };
        let database: String = row.get(1);
        let created: i64 = row.get(2);
        let input = format!("spool-pg:{system}:{database}:{}:{created}", self.name);
        Ok(format!("{:016x}", fnv1a64(input.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::fnv1a64;

    #[test]
    fn fnv1a64_is_the_published_function() {
        // The reference values of FNV-1a 64.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
