//! The queue's rates, for `stats`: two records of a [`Rate`] (48 bytes, as
//! [`Rate::to_bytes`] writes them) in the queue's row of `spool.queues`: `published`,
//! updated by a push in its transaction, under the row lock it holds already, and
//! `consumed` (messages popped, acked, failed for good), after the consumption commits:
//! read, then written back only where it is still what was read.
//!
//! The records only feed statistics: a missing or damaged one reads as none, and the
//! next event writes it anew. The lock serialises the writers of a record, so no event
//! is lost; a consumer's count waits for a push of the same queue in progress to commit.

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
                let Some(row) = client.query_typed_opt(
                    "SELECT consumed FROM spool.queues WHERE name = $1",
                    &[(&self.name, Type::TEXT)],
                )?
                else {
                    return Ok(()); // the queue was removed meanwhile
                };
                let old: Option<Vec<u8>> = row.get(0);
                let new = recorded(old.as_deref(), n);
                let written = client.execute_typed(
                    "UPDATE spool.queues SET consumed = $2 \
                     WHERE name = $1 AND consumed IS NOT DISTINCT FROM $3",
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
