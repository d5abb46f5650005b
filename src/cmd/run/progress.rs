//! `run --progress`: one status line on a terminal's standard error: what this run did
//! (commands done, failed attempts, commands running) and what the queue holds and where
//! it is heading, from the same estimate as `stats` (see [`crate::health`]).
//!
//! The queue's figures are read on a schedule: reading them walks every message, and
//! run's one loop waits meanwhile (for its commands' output, its signals, its leases). So
//! the next reading waits at least [`EVERY`], and at least [`COST`] times as long as the
//! last reading took: on a deep queue the figures come less often, and reading them never
//! takes more than a small part of run's time. Between two readings, the line is made
//! again with this run's counts as they change and the figures last read.

use std::time::{Duration, Instant};

use crate::health::{Health, Trend};
use crate::store::{Queue, Result, now_ms};
use crate::timefmt;

/// The shortest time between two readings of the queue's figures.
pub(super) const EVERY: Duration = Duration::from_secs(1);

/// The time between two readings is at least this many times what the last one took.
const COST: u32 = 20;

/// What this run did so far.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counts {
    /// Commands that succeeded (their messages acked).
    pub done: u64,
    /// Attempts that failed (retried or moved to failed).
    pub failed: u64,
    /// Commands running now.
    pub running: usize,
}

/// The queue's figures as last read, and when to read them again.
pub(super) struct Progress {
    health: Option<Health>,
    due: Instant,
}

impl Progress {
    pub(super) fn new() -> Progress {
        Progress {
            health: None,
            due: Instant::now(),
        }
    }

    /// When the queue's figures are to be read next.
    pub(super) fn next(&self) -> Instant {
        self.due
    }

    /// The status line: `counts`, and the queue's figures, read from `q` when they are due
    /// (or `now`); `None` while they were never read.
    pub(super) fn line<Q: Queue>(
        &mut self,
        q: &Q,
        counts: Counts,
        now: bool,
    ) -> Result<Option<String>> {
        let start = Instant::now();
        if now || start >= self.due {
            // A queue that cannot be read is tried again on the schedule, not at once.
            self.due = start + EVERY;
            let stats = q.stats()?;
            self.health = Some(Health::of(&stats, now_ms()));
            let end = Instant::now();
            self.due = next_reading(end, end - start);
        }
        Ok(self.health.as_ref().map(|h| status(counts, h)))
    }
}

/// When the figures are read next, after a reading that ended at `end` and took `took`.
fn next_reading(end: Instant, took: Duration) -> Instant {
    end + EVERY.max(took.saturating_mul(COST))
}

/// `120 done, 2 failed attempts, 4 running, 340 waiting, 22.9/s, empty in 15s`.
fn status(c: Counts, h: &Health) -> String {
    let attempts = if c.failed == 1 { "attempt" } else { "attempts" };
    let mut line = format!(
        "{} done, {} failed {attempts}, {} running, {} waiting",
        c.done, c.failed, c.running, h.waiting
    );
    if let Some(r) = h.service.filter(|&r| r > 0.0) {
        line.push_str(&format!(", {r:.1}/s"));
    }
    match h.trend {
        Trend::Draining => {
            if let Some(t) = h.time_to_empty {
                line.push_str(&format!(", empty in {}", timefmt::age(t)));
            }
        }
        Trend::Growing => {
            if let Some(g) = h.growth {
                line.push_str(&format!(", growing by {g:.1}/s"));
            }
        }
        Trend::Steady if h.waiting > 0 => line.push_str(", steady"),
        // Stalled, unless by the commands running now, which have not finished yet.
        Trend::Stalled if c.running == 0 => line.push_str(", stalled"),
        _ => {}
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(waiting: u64, trend: Trend) -> Health {
        Health {
            waiting,
            arrival: Some(10.0),
            service: Some(22.94),
            utilisation: Some(0.44),
            expected_wait: Some(15.0),
            trend,
            time_to_empty: None,
            growth: None,
            last_consumed: Some(0.1),
            consumption_stopped: false,
        }
    }

    #[test]
    fn the_line_says_what_was_done_and_where_the_queue_is_heading() {
        let c = Counts {
            done: 120,
            failed: 2,
            running: 4,
        };
        let h = Health {
            time_to_empty: Some(26.0),
            ..health(340, Trend::Draining)
        };
        assert_eq!(
            status(c, &h),
            "120 done, 2 failed attempts, 4 running, 340 waiting, 22.9/s, empty in 26s"
        );
        let h = Health {
            growth: Some(4.77),
            ..health(700, Trend::Growing)
        };
        assert_eq!(
            status(c, &h),
            "120 done, 2 failed attempts, 4 running, 700 waiting, 22.9/s, growing by 4.8/s"
        );
        let h = Health {
            service: None,
            ..health(0, Trend::Idle)
        };
        assert_eq!(
            status(c, &h),
            "120 done, 2 failed attempts, 4 running, 0 waiting"
        );
        let c = Counts {
            done: 0,
            failed: 1,
            running: 0,
        };
        assert_eq!(
            status(c, &h),
            "0 done, 1 failed attempt, 0 running, 0 waiting"
        );
    }

    #[test]
    fn a_slow_reading_puts_the_next_one_off() {
        let end = Instant::now();
        let ms = Duration::from_millis;
        // A second at least, and twenty times what the last reading took.
        assert_eq!(next_reading(end, Duration::ZERO), end + EVERY);
        assert_eq!(next_reading(end, ms(50)), end + EVERY);
        assert_eq!(next_reading(end, ms(80)), end + ms(1600));
        assert_eq!(next_reading(end, Duration::from_secs(3)), end + ms(60_000));
    }
}
