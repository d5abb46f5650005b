//! fsck on PostgreSQL: the schema's version (refused when newer, upgraded when older, by
//! opening), claims whose holder is gone, and rows in a shape the engine never writes
//! (a table changed by hand, or by another program). With `--repair`, each is mended in
//! one transaction under the queue's row lock: a claim goes back to its place, a message
//! without a place goes to the back of the queue, the counter moves past every id, and
//! of messages sharing a key, all but the first lose it.

use std::fmt::Write as _;

use postgres::Transaction;
use postgres::types::Type;

use super::push::time;
use super::{Postgres, Queue};
use crate::clock::now_ms;
use crate::store::{Error, Finding, Result};

/// What a check does to the messages it found, when repairing.
#[derive(Clone, Copy)]
enum Mend {
    /// Back to ready, at its place (a new one at the back if it has none).
    GiveBack,
    /// Ready, at the back of the queue.
    ToBack,
    /// Attempts set to 0.
    ZeroAttempts,
}

/// One check: which messages break a rule, and how they are mended.
struct Check {
    /// The condition on a row of the queue (a constant, never user input).
    condition: &'static str,
    /// What is wrong, said of one message.
    problem: &'static str,
    mend: Mend,
    /// What the repair did, said of one message.
    repaired: &'static str,
}

const CHECKS: [Check; 6] = [
    Check {
        condition: "state = 'claimed' AND token IS NOT NULL AND holder IS NULL \
                    AND lease_until <= p.now",
        problem: "its claim's lease ended",
        mend: Mend::GiveBack,
        repaired: "given back to its place in the queue",
    },
    Check {
        condition: "state = 'claimed' AND token IS NOT NULL AND holder IS NOT NULL \
                    AND holder IS DISTINCT FROM p.mine \
                    AND (pg_try_advisory_xact_lock(holder) \
                         OR NOT EXISTS (SELECT 1 FROM spool.holders h WHERE h.key = holder))",
        problem: "claimed by a process whose connection ended",
        mend: Mend::GiveBack,
        repaired: "given back to its place in the queue",
    },
    Check {
        condition: "state = 'claimed' AND (token IS NULL \
                    OR (holder IS NULL AND lease_until IS NULL))",
        problem: "claimed without a token, a holder or a lease: nothing could ever end the claim",
        mend: Mend::GiveBack,
        repaired: "given back to its place in the queue",
    },
    Check {
        condition: "state = 'ready' AND position IS NULL",
        problem: "ready without a position: no take would find it in order",
        mend: Mend::ToBack,
        repaired: "placed at the back of the queue",
    },
    Check {
        condition: "state = 'delayed' AND due_at IS NULL",
        problem: "delayed without a due time: it would never fall due",
        mend: Mend::ToBack,
        repaired: "made ready at the back of the queue",
    },
    Check {
        condition: "attempts < 0",
        problem: "has a negative count of attempts",
        mend: Mend::ZeroAttempts,
        repaired: "attempts set to 0",
    },
];

impl Postgres {
    pub(crate) fn fsck(&self, name: &str, repair: bool) -> Result<Vec<Finding>> {
        let Some(queue) = self.open(name)? else {
            return Err(Error::invalid(
                format!("fsck {name} in {}", self.conn.shown),
                None,
                "no such queue",
            ));
        };
        queue.fsck(repair)
    }
}

impl Queue {
    fn fsck(&self, repair: bool) -> Result<Vec<Finding>> {
        let mut findings = Vec::new();
        let now = now_ms();
        let holder = self.conn.holder.get();
        let mut client = self.conn.client()?;
        let mut run = || -> std::result::Result<(), postgres::Error> {
            let mut tx = client.transaction()?;
            // The queue's row first, as every change: pushes, nacks and requeues wait
            // while it is checked.
            let next: i64 = tx
                .query_typed(
                    "SELECT next_id FROM spool.queues WHERE name = $1 FOR UPDATE",
                    &[(&self.name, Type::TEXT)],
                )?
                .first()
                .map_or(1, |row| row.get(0));
            for check in &CHECKS {
                // A condition names the time as p.now and this process's lock as p.mine.
                // The rows found are locked, and the condition checked again on a row
                // that changed meanwhile (an extend, an ack): the repair acts only on
                // what is still wrong.
                let sql = format!(
                    "WITH p AS (SELECT $2::timestamptz AS now, $3::bigint AS mine) \
                     SELECT id FROM spool.messages, p WHERE queue = $1 AND ({}) ORDER BY id \
                     FOR UPDATE OF messages",
                    check.condition
                );
                let ids: Vec<i64> = tx
                    .query(&sql, &[&self.name, &time(now), &holder])?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                if repair {
                    self.mend(&mut tx, check.mend, &ids)?;
                }
                for id in ids {
                    findings.push(Finding {
                        place: self.place(Some(id)),
                        problem: check.problem.to_string(),
                        repair: repair.then(|| check.repaired.to_string()),
                    });
                }
            }
            // Ids and positions come from next_id: one at or past it would be reused.
            let row = tx.query_one(
                "SELECT max(id), max(position) FROM spool.messages WHERE queue = $1",
                &[&self.name],
            )?;
            let highest = [row.get::<_, Option<i64>>(0), row.get(1)]
                .into_iter()
                .flatten()
                .max();
            if let Some(highest) = highest.filter(|&h| h >= next) {
                if repair {
                    tx.execute(
                        "UPDATE spool.queues SET next_id = $2 WHERE name = $1",
                        &[&self.name, &(highest + 1)],
                    )?;
                }
                findings.push(Finding {
                    place: self.place(None),
                    problem: format!(
                        "next_id is {next}, not past the highest id or position in use ({highest}): ids would be reused"
                    ),
                    repair: repair.then(|| format!("next_id set to {}", highest + 1)),
                });
            }
            // Two ready messages in one place: their order is the server's whim.
            let rows = tx.query(
                "SELECT priority, position, array_agg(id ORDER BY id) FROM spool.messages \
                 WHERE queue = $1 AND state = 'ready' AND position IS NOT NULL \
                 GROUP BY priority, position HAVING count(*) > 1 ORDER BY priority, position",
                &[&self.name],
            )?;
            for row in rows {
                let ids: Vec<i64> = row.get(2);
                if repair {
                    self.mend(&mut tx, Mend::ToBack, &ids[1..])?;
                }
                let mut problem = String::from("messages");
                for id in &ids {
                    let _ = write!(problem, " {id}");
                }
                let _ = write!(
                    problem,
                    " share position {} of priority {}",
                    row.get::<_, i64>(1),
                    row.get::<_, i16>(0)
                );
                findings.push(Finding {
                    place: self.place(None),
                    problem,
                    repair: repair.then(|| "all but the first placed at the back".to_string()),
                });
            }
            // Two messages in the queue with one key (the unique index messages_key
            // forbids it; a table changed by hand may not have it).
            let rows = tx.query(
                "SELECT key, array_agg(id ORDER BY id) FROM spool.messages \
                 WHERE queue = $1 AND key IS NOT NULL AND state <> 'failed' \
                 GROUP BY key HAVING count(*) > 1 ORDER BY key",
                &[&self.name],
            )?;
            for row in rows {
                let key: String = row.get(0);
                let ids: Vec<i64> = row.get(1);
                if repair {
                    tx.execute(
                        "UPDATE spool.messages SET key = NULL WHERE queue = $1 AND id = ANY($2)",
                        &[&self.name, &&ids[1..]],
                    )?;
                }
                let mut problem = String::from("messages");
                for id in &ids {
                    let _ = write!(problem, " {id}");
                }
                let _ = write!(problem, " hold the same key {key}");
                findings.push(Finding {
                    place: self.place(None),
                    problem,
                    repair: repair.then(|| "all but the first lose the key".to_string()),
                });
            }
            tx.commit()
        };
        run().map_err(|e| self.error("check", &e))?;
        Ok(findings)
    }

    /// Where a finding is: the queue, or one of its messages.
    fn place(&self, id: Option<i64>) -> String {
        match id {
            Some(id) => format!("{} message {id} in {}", self.name, self.conn.shown),
            None => format!("{} in {}", self.name, self.conn.shown),
        }
    }

    fn mend(
        &self,
        tx: &mut Transaction<'_>,
        mend: Mend,
        ids: &[i64],
    ) -> std::result::Result<(), postgres::Error> {
        match mend {
            Mend::ZeroAttempts => {
                tx.execute(
                    "UPDATE spool.messages SET attempts = 0 WHERE queue = $1 AND id = ANY($2)",
                    &[&self.name, &ids],
                )?;
            }
            Mend::GiveBack | Mend::ToBack => {
                let keep = matches!(mend, Mend::GiveBack);
                let placeless: Vec<i64> = tx
                    .query(
                        "SELECT id FROM spool.messages WHERE queue = $1 AND id = ANY($2) \
                         AND (position IS NULL OR NOT $3) ORDER BY id",
                        &[&self.name, &ids, &keep],
                    )?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                tx.execute(
                    "UPDATE spool.messages SET state = 'ready', token = NULL, holder = NULL, \
                     lease_until = NULL, due_at = NULL WHERE queue = $1 AND id = ANY($2)",
                    &[&self.name, &ids],
                )?;
                if !placeless.is_empty() {
                    let first = self.allocate(tx, placeless.len() as i64)?;
                    tx.execute(
                        "UPDATE spool.messages m SET position = $3 + f.n - 1 \
                         FROM unnest($2::bigint[]) WITH ORDINALITY AS f(id, n) \
                         WHERE m.queue = $1 AND m.id = f.id",
                        &[&self.name, &placeless, &first],
                    )?;
                }
                self.changed(tx)?;
            }
        }
        Ok(())
    }
}
