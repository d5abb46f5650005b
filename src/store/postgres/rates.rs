//! The queue's rates, for `stats`: two records of a [`Rate`] (48 bytes, as
//! [`Rate::to_bytes`] writes them) in the queue's row of `spool.queues`: `published`,
//! updated by a push in its transaction, under the row lock it holds already, and
//! `consumed` (messages popped, acked, failed for good), read and written back under the
//! same row lock, in the transaction that consumes them or in a short one of its own.
//!
//! The records only feed statistics: a missing or damaged one reads as none, and the
//! next event writes it anew. The lock serialises the writers of a record, so no event
//! is lost; a consumer's count waits for a push of the same queue in progress to commit.

use postgres::GenericClient;
use postgres::types::Type;

use super::Queue;
use super::connect::db_error;
use crate::clock::now_ms;
use crate::store::Result;
use crate::store::rate::Rate;

/// A stored record as a rate: none when missing or damaged.
pub(crate) fn rate(stored: Option<&[u8]>) -> Rate {
    stored.map(Rate::from_bytes).unwrap_or_default()
}

/// The record `stored` with an event of `n` messages counted now; `None` when `n` is 0
/// (nothing to write).
pub(crate) fn recorded(stored: Option<&[u8]>, n: u64) -> Option<Vec<u8>> {
    if n == 0 {
        return None;
    }
    let mut rate = rate(stored);
    rate.record(now_ms(), n);
    Some(rate.to_bytes().to_vec())
}

/// Counts `n` messages consumed from `queue` in the transaction of `client`: the queue's
/// row is locked until it commits. Call it last, just before the commit, so that the
/// lock is held briefly; the count commits with the consumption, or not at all.
pub(crate) fn count_consumed_in(
    client: &mut impl GenericClient,
    queue: &str,
    n: u64,
) -> std::result::Result<(), postgres::Error> {
    if n == 0 {
        return Ok(());
    }
    // Typed statements: each one round trip, with no statement prepared first.
    let Some(row) = client.query_typed_opt(
        "SELECT consumed FROM spool.queues WHERE name = $1 FOR NO KEY UPDATE",
        &[(&queue, Type::TEXT)],
    )?
    else {
        return Ok(()); // the queue was removed meanwhile
    };
    let consumed = recorded(row.get(0), n);
    client
        .execute_typed(
            "UPDATE spool.queues SET consumed = $2 WHERE name = $1",
            &[(&queue, Type::TEXT), (&consumed, Type::BYTEA)],
        )
        .map(drop)
}

impl Queue {
    /// Counts `n` messages consumed, in a short transaction of its own (for a
    /// consumption already committed).
    #[allow(dead_code, reason = "for the acks and fails of claims, still to come")]
    pub(crate) fn count_consumed(&self, n: u64) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let mut client = self.conn.client()?;
        let mut run = || -> std::result::Result<(), postgres::Error> {
            let mut tx = client.transaction()?;
            count_consumed_in(&mut tx, &self.name, n)?;
            tx.commit()
        };
        run().map_err(|e| {
            db_error(
                format!(
                    "count the messages consumed from {} in {}",
                    self.name, self.conn.shown
                ),
                &e,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_damaged_record_is_no_rate() {
        assert_eq!(rate(None), Rate::default());
        assert_eq!(rate(Some(&[1, 2, 3])), Rate::default());
        let mut damaged = [0u8; 48];
        damaged[8..16].copy_from_slice(&f64::NAN.to_le_bytes());
        assert_eq!(rate(Some(&damaged)), Rate::default());
    }

    #[test]
    fn an_event_is_recorded_on_what_was_stored() {
        assert_eq!(recorded(None, 0), None);
        let first = recorded(None, 3).expect("a record");
        assert_eq!(rate(Some(&first)).total, 3);
        let second = recorded(Some(&first), 2).expect("a record");
        assert_eq!(rate(Some(&second)).total, 5);
        // A damaged record starts anew.
        assert_eq!(rate(recorded(Some(&[9; 7]), 4).as_deref()).total, 4);
    }
}
