//! The queue's rates, for `stats`: two records of a [`Rate`] (48 bytes, as
//! [`Rate::to_bytes`] writes them). `published` is in the queue's row of `spool.queues`,
//! updated by a push in its transaction, under the row lock it holds already.
//! `consumed` (messages popped, acked, failed for good) is a row of `spool.consumed`,
//! apart from the queue's row so that consumers never wait for a push: after the
//! consumption commits, it is read, then written back only where it is still what was
//! read (read again when another consumer wrote it meanwhile).
//!
//! The records only feed statistics: a missing or damaged one reads as none, and the
//! next event writes it anew.

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

impl Queue {
    /// Counts `n` messages consumed, for a consumption already committed: the record is
    /// read, then written back only if no one changed it meanwhile (and read again if
    /// someone did), two statements without a transaction of their own.
    pub(crate) fn count_consumed(&self, n: u64) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let mut client = self.conn.client()?;
        let mut run = || -> std::result::Result<(), postgres::Error> {
            // Each consumer that lost a race retries; a count lost after many is a
            // figure of the stats, never a message.
            for _ in 0..16 {
                let old: Option<Vec<u8>> = client
                    .query_typed(
                        "SELECT record FROM spool.consumed WHERE queue = $1",
                        &[(&self.name, Type::TEXT)],
                    )?
                    .first()
                    .and_then(|row| row.get(0));
                let new = recorded(old.as_deref(), n);
                let written = client.execute_typed(
                    "INSERT INTO spool.consumed AS c (queue, record) VALUES ($1, $2) \
                     ON CONFLICT (queue) DO UPDATE SET record = excluded.record \
                     WHERE c.record IS NOT DISTINCT FROM $3",
                    &[
                        (&self.name, Type::TEXT),
                        (&new, Type::BYTEA),
                        (&old, Type::BYTEA),
                    ],
                )?;
                if written > 0 {
                    break;
                }
            }
            Ok(())
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
