//! A rate of events (messages published, messages consumed) that is right within seconds
//! of starting or changing, and that decays when the events stop.
//!
//! The state is four numbers, updated once per operation (a push of many messages is one
//! event of `n`): the time of the last event, and two decayed sums over the intervals
//! between events since the activity started, one of messages and one of seconds. Each
//! interval enters both sums with the same weight, which halves every `τ ln 2` of age, so
//! their ratio is a weighted average of the rate over the span actually observed: after
//! 15 s of a consumer's work it is the rate of those 15 s, not 15 s of work spread over a
//! fixed window that the span does not fill. τ adapts to the rate (about fifty
//! intervals, between 5 s and 10 minutes), so that a fast queue follows a change within
//! seconds and a slow one still averages over enough messages.
//!
//! An event after a stall (a pause much longer than the usual interval) starts the
//! activity anew: the pause is not averaged into the rate of the work that follows it.
//! Read at a later time, the open interval since the last event counts once it is longer
//! than the usual one, so the rate decays towards zero when the events stop; past the
//! stall threshold it is reported as stopped.

/// The weight of an interval halves after about this many intervals of the current rate.
const TAU_INTERVALS: f64 = 50.0;
/// Bounds of the time constant τ, in seconds.
const TAU_MIN: f64 = 5.0;
const TAU_MAX: f64 = 600.0;
/// A pause longer than this many usual intervals, and than [`STALL_MIN_MS`], is a stall.
const STALL_INTERVALS: f64 = 10.0;
/// The shortest pause that counts as a stall, in milliseconds.
pub const STALL_MIN_MS: u64 = 5_000;

/// The stored state of a rate. All zero: no event ever.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    /// Unix milliseconds of the last event (0: none).
    pub last_ms: u64,
    /// Decayed sum of the messages of the intervals observed.
    pub messages: f64,
    /// Decayed sum of the lengths of those intervals, in seconds.
    pub seconds: f64,
    /// Messages counted in all, since the queue was made (for monitoring).
    pub total: u64,
}

/// A rate as read at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Events per second; `None` until two events of one activity were seen.
    pub per_second: Option<f64>,
    /// Milliseconds since the last event (`None`: never an event).
    pub since_ms: Option<u64>,
    /// The events have stopped: the pause is past the stall threshold. `per_second` is
    /// then 0.
    pub stopped: bool,
}

/// The size of [`Rate::to_bytes`].
pub const RATE_BYTES: usize = 32;

impl Rate {
    /// The usual interval between events, in seconds, when known.
    fn interval(&self) -> Option<f64> {
        (self.messages > 0.0 && self.seconds > 0.0).then(|| self.seconds / self.messages)
    }

    /// The time constant for the current rate, in seconds.
    fn tau(&self) -> f64 {
        self.interval()
            .map_or(TAU_MIN, |i| (i * TAU_INTERVALS).clamp(TAU_MIN, TAU_MAX))
    }

    /// The pause, in milliseconds, after which the events count as stopped.
    pub fn stall_ms(&self) -> u64 {
        let usual = self
            .interval()
            .map_or(0, |i| (i * STALL_INTERVALS * 1000.0) as u64);
        usual.max(STALL_MIN_MS)
    }

    /// Counts `n` events at `now_ms`.
    pub fn record(&mut self, now_ms: u64, n: u64) {
        if n == 0 {
            return;
        }
        self.total = self.total.saturating_add(n);
        let first = self.last_ms == 0;
        let gap_ms = now_ms.saturating_sub(self.last_ms);
        let known = self.interval().is_some();
        if first || (known && gap_ms > self.stall_ms()) {
            // The activity starts (again) here: this event opens the span observed.
            self.messages = 0.0;
            self.seconds = 0.0;
        } else {
            let gap = gap_ms as f64 / 1000.0;
            let d = (-gap / self.tau()).exp();
            self.messages = self.messages * d + n as f64;
            self.seconds = self.seconds * d + gap;
        }
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// The rate as seen at `now_ms`.
    pub fn read(&self, now_ms: u64) -> Reading {
        if self.last_ms == 0 {
            return Reading {
                per_second: None,
                since_ms: None,
                stopped: false,
            };
        }
        let since_ms = now_ms.saturating_sub(self.last_ms);
        let stopped = since_ms > self.stall_ms();
        let per_second = match self.interval() {
            _ if stopped => Some(0.0),
            None => None,
            Some(usual) => {
                let open = since_ms as f64 / 1000.0;
                let d = (-open / self.tau()).exp();
                // The open interval counts for what it has run past the usual one.
                let excess = (open - usual).max(0.0);
                Some(self.messages * d / (self.seconds * d + excess))
            }
        };
        Reading {
            per_second,
            since_ms: Some(since_ms),
            stopped,
        }
    }

    /// The state as stored: four little-endian numbers.
    pub fn to_bytes(&self) -> [u8; RATE_BYTES] {
        let mut b = [0u8; RATE_BYTES];
        b[..8].copy_from_slice(&self.last_ms.to_le_bytes());
        b[8..16].copy_from_slice(&self.messages.to_le_bytes());
        b[16..24].copy_from_slice(&self.seconds.to_le_bytes());
        b[24..].copy_from_slice(&self.total.to_le_bytes());
        b
    }

    /// The state from stored bytes; a short or damaged record reads as none (it only
    /// feeds statistics, and the next event writes it anew).
    pub fn from_bytes(b: &[u8]) -> Rate {
        let Some(b) = b.get(..RATE_BYTES) else {
            return Rate::default();
        };
        let u = |r: std::ops::Range<usize>| u64::from_le_bytes(b[r].try_into().expect("8 bytes"));
        let rate = Rate {
            last_ms: u(0..8),
            messages: f64::from_bits(u(8..16)),
            seconds: f64::from_bits(u(16..24)),
            total: u(24..32),
        };
        let sane = |x: f64| x.is_finite() && x >= 0.0;
        if sane(rate.messages) && sane(rate.seconds) && rate.last_ms <= crate::clock::LATEST_MS {
            rate
        } else {
            Rate::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000;

    /// Events of one message every `every_ms`, from `from` for `for_ms`; returns the time
    /// of the last.
    fn steady(rate: &mut Rate, from: u64, every_ms: u64, for_ms: u64) -> u64 {
        let mut t = from;
        while t < from + for_ms {
            rate.record(t, 1);
            t += every_ms;
        }
        t - every_ms
    }

    fn per_second(rate: &Rate, at: u64) -> f64 {
        rate.read(at).per_second.expect("a rate")
    }

    #[track_caller]
    fn near(got: f64, want: f64, within: f64) {
        assert!(
            (got / want - 1.0).abs() <= within,
            "{got} is not within {within} of {want}"
        );
    }

    #[test]
    fn nothing_seen_is_no_rate() {
        let r = Rate::default();
        assert_eq!(
            r.read(T0),
            Reading {
                per_second: None,
                since_ms: None,
                stopped: false
            }
        );
        let mut r = Rate::default();
        r.record(T0, 1);
        assert_eq!(r.read(T0 + 10).per_second, None, "one event is no rate yet");
        assert_eq!(r.read(T0 + 10).since_ms, Some(10));
    }

    #[test]
    fn a_consumer_is_measured_right_within_seconds_of_starting() {
        // The case the fixed five-minute window got wrong: 23 a second for 15 s.
        let mut r = Rate::default();
        let last = steady(&mut r, T0, 43, 15_000);
        near(per_second(&r, last + 20), 1000.0 / 43.0, 0.03);
        // And after only two seconds.
        let mut r = Rate::default();
        let last = steady(&mut r, T0, 43, 2_000);
        near(per_second(&r, last + 20), 1000.0 / 43.0, 0.03);
    }

    #[test]
    fn a_pause_before_the_work_is_not_averaged_into_it() {
        let mut r = Rate::default();
        let last = steady(&mut r, T0, 100, 60_000); // 10 a second for a minute
        let restart = last + 240_000; // four minutes of nothing
        let last = steady(&mut r, restart, 43, 3_000);
        near(per_second(&r, last + 10), 1000.0 / 43.0, 0.05);
    }

    #[test]
    fn a_change_of_rate_is_followed_within_seconds() {
        let mut r = Rate::default();
        let last = steady(&mut r, T0, 50, 60_000); // 20 a second
        let last = steady(&mut r, last + 100, 100, 15_000); // then 10 a second
        near(per_second(&r, last + 10), 10.0, 0.15);
        let last = steady(&mut r, last + 25, 25, 15_000); // then 40 a second
        near(per_second(&r, last + 5), 40.0, 0.15);
    }

    #[test]
    fn a_slow_rate_is_measured_over_its_own_intervals() {
        let mut r = Rate::default();
        let last = steady(&mut r, T0, 30_000, 600_000); // one every 30 s
        near(per_second(&r, last + 1_000), 1.0 / 30.0, 0.02);
        // Halfway to the next one, it has not dropped.
        near(per_second(&r, last + 15_000), 1.0 / 30.0, 0.02);
        assert!(!r.read(last + 200_000).stopped);
        assert!(r.read(last + 301_000).stopped);
    }

    #[test]
    fn a_rate_decays_when_the_events_stop_and_then_reads_stopped() {
        let mut r = Rate::default();
        let last = steady(&mut r, T0, 50, 30_000);
        let mut previous = per_second(&r, last);
        for after in [500, 1_000, 2_000, 4_000] {
            let now = per_second(&r, last + after);
            assert!(
                now < previous,
                "{now} after {after} ms is not below {previous}"
            );
            previous = now;
        }
        assert!(previous < 10.0);
        let reading = r.read(last + STALL_MIN_MS + 1);
        assert!(reading.stopped);
        assert_eq!(reading.per_second, Some(0.0));
        assert_eq!(reading.since_ms, Some(STALL_MIN_MS + 1));
    }

    #[test]
    fn batches_count_their_messages() {
        let mut r = Rate::default();
        for i in 0..10 {
            r.record(T0 + i * 1_000, 100); // a batch of 100 each second
        }
        near(per_second(&r, T0 + 9_000), 100.0, 0.01);
        assert_eq!(r.total, 1_000);
    }

    #[test]
    fn a_clock_that_steps_back_does_not_break_the_rate() {
        let mut r = Rate::default();
        let last = steady(&mut r, T0, 50, 5_000);
        r.record(last - 60_000, 1);
        let reading = r.read(last + 10);
        assert!(reading.per_second.is_some_and(|p| p.is_finite() && p > 0.0));
    }

    #[test]
    fn the_state_round_trips_and_damage_reads_as_none() {
        let mut r = Rate::default();
        steady(&mut r, T0, 50, 5_000);
        assert_eq!(Rate::from_bytes(&r.to_bytes()), r);
        assert_eq!(Rate::from_bytes(&[1, 2, 3]), Rate::default());
        let mut bad = r.to_bytes();
        bad[8..16].copy_from_slice(&f64::NAN.to_le_bytes());
        assert_eq!(Rate::from_bytes(&bad), Rate::default());
        bad[8..16].copy_from_slice(&(-1.0f64).to_le_bytes());
        assert_eq!(Rate::from_bytes(&bad), Rate::default());
    }
}
