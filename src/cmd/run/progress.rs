//! `run --progress`: one status line on a terminal's standard error, redrawn every
//! second: what this run did (done, failed, running) and what the queue holds and where
//! it is heading, from the same estimate as `stats` (see [`crate::health`]).

use std::time::{Duration, Instant};

use crate::health::{Health, Trend};
use crate::store::{Queue, Result, now_ms};
use crate::timefmt;

/// Time between two drawings.
pub(super) const EVERY: Duration = Duration::from_secs(1);

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

/// When the status line was last drawn.
pub(super) struct Progress {
    drawn: Option<Instant>,
}

impl Progress {
    pub(super) fn new() -> Progress {
        Progress { drawn: None }
    }

    /// When the line is to be drawn next.
    pub(super) fn next(&self) -> Instant {
        self.drawn.map_or_else(Instant::now, |t| t + EVERY)
    }

    /// The status line, if it is time to draw it (or `now`), read from `q`.
    pub(super) fn line<Q: Queue>(
        &mut self,
        q: &Q,
        counts: Counts,
        now: bool,
    ) -> Result<Option<String>> {
        if !now && self.drawn.is_some_and(|t| t.elapsed() < EVERY) {
            return Ok(None);
        }
        self.drawn = Some(Instant::now());
        let health = Health::of(&q.stats()?, now_ms());
        Ok(Some(status(counts, &health)))
    }
}

/// `done 120, failed 2, running 4, waiting 340, 22.9/s, empty in 15s`.
fn status(c: Counts, h: &Health) -> String {
    let mut line = format!(
        "done {}, failed {}, running {}, waiting {}",
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
            "done 120, failed 2, running 4, waiting 340, 22.9/s, empty in 26s"
        );
        let h = Health {
            growth: Some(4.77),
            ..health(700, Trend::Growing)
        };
        assert_eq!(
            status(c, &h),
            "done 120, failed 2, running 4, waiting 700, 22.9/s, growing by 4.8/s"
        );
        let h = Health {
            service: None,
            ..health(0, Trend::Idle)
        };
        assert_eq!(status(c, &h), "done 120, failed 2, running 4, waiting 0");
    }
}
