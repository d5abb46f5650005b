//! A rate of events (messages published, messages consumed) that is right within seconds
//! of starting or changing, and that decays when the events stop.
//!
//! An event is one operation of `n` messages (a push of many lines, a pop of many, an
//! ack). The state is a few numbers, updated once per event: the time of the last event,
//! and decayed sums over the intervals between events since the activity started: of
//! messages M, of seconds S and of events E, and G, the longest of about the last fifty
//! intervals (a maximum that loses 2% with each event).
//! Each interval enters every sum with the same weight, which halves every `τ ln 2` of
//! age, so M / S is a weighted average of the rate over the span actually observed: after
//! 15 s of a consumer's work it is the rate of those 15 s, not 15 s of work spread over a
//! fixed window that the span does not fill. S / E is the usual interval between events
//! (not between messages: a pop of a hundred is one event); τ is fifty of them, between
//! 5 s and 10 minutes, so that a fast queue follows a change within seconds and a slow one
//! still averages over enough events.
//!
//! A pause much longer than the usual interval (ten of them, twice the longest recent
//! one, at least 5 s) is a stall: the next event starts the activity anew, so that the
//! pause is not averaged into the work that follows; the pause is kept as the longest
//! recent interval, so that work in bursts (sixteen commands finishing together every
//! 30 s) is measured over its cycle from the second burst on. Likewise a span of one long interval
//! followed by one ten times shorter starts anew at the event between them (a lone event,
//! then work an hour later). Read at a later time, the interval open since the last event
//! counts once it is half as long again as the longest recent one, so the rate decays towards zero
//! when the events stop; past the stall threshold it is reported as stopped.

/// τ is this many usual intervals.
const TAU_INTERVALS: f64 = 50.0;
/// Bounds of the time constant τ, in seconds.
const TAU_MIN: f64 = 5.0;
const TAU_MAX: f64 = 600.0;
/// A pause longer than this many usual intervals, twice the longest recent interval, and
/// [`STALL_MIN_MS`], is a stall.
const STALL_INTERVALS: f64 = 10.0;
/// The shortest pause that counts as a stall, in milliseconds.
pub const STALL_MIN_MS: u64 = 5_000;
/// What G keeps of itself at each event.
const LONGEST_KEPT: f64 = 1.0 - 1.0 / TAU_INTERVALS;

/// The stored state of a rate. All zero: no event ever.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    /// Unix milliseconds of the last event (0: none).
    pub last_ms: u64,
    /// M: decayed sum of the messages of the intervals observed.
    pub messages: f64,
    /// S: decayed sum of the lengths of those intervals, in seconds.
    pub seconds: f64,
    /// E: decayed count of those intervals.
    pub events: f64,
    /// G: the longest recent interval, in seconds (decayed by event).
    pub longest: f64,
    /// Messages counted in all, since the queue was made.
    pub total: u64,
}

/// A rate as read at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Messages per second; `None` until two events of one activity were seen.
    pub per_second: Option<f64>,
    /// Milliseconds since the last event (`None`: never an event).
    pub since_ms: Option<u64>,
    /// The events have stopped: the pause is past the stall threshold. `per_second` is
    /// then 0.
    pub stopped: bool,
}

/// The size of [`Rate::to_bytes`].
pub const RATE_BYTES: usize = 48;

impl Rate {
    /// The usual interval between events, in seconds, when known.
    fn interval(&self) -> Option<f64> {
        (self.events > 0.0 && self.seconds > 0.0).then(|| self.seconds / self.events)
    }

    /// The time constant for the current rate, in seconds.
    fn tau(&self) -> f64 {
        self.interval()
            .map_or(TAU_MIN, |i| (i * TAU_INTERVALS).clamp(TAU_MIN, TAU_MAX))
    }

    /// The pause, in milliseconds, after which the events count as stopped.
    pub fn stall_ms(&self) -> u64 {
        let usual = self.interval().map_or(0.0, |i| i * STALL_INTERVALS);
        let seconds = usual.max(2.0 * self.longest);
        ((seconds * 1000.0) as u64).max(STALL_MIN_MS)
    }

    /// Starts the span observed anew.
    fn restart(&mut self) {
        (self.messages, self.seconds, self.events, self.longest) = (0.0, 0.0, 0.0, 0.0);
    }

    /// Counts an event of `n` messages at `now_ms`.
    pub fn record(&mut self, now_ms: u64, n: u64) {
        if n == 0 {
            return;
        }
        self.total = self.total.saturating_add(n);
        let first = self.last_ms == 0;
        // A clock that went back: this event follows the last at once.
        let gap = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        let known = self.interval().is_some();
        if first {
            self.restart();
        } else if known && now_ms.saturating_sub(self.last_ms) > self.stall_ms() {
            // The activity starts again here: this event opens the span observed, and the
            // pause is remembered as an interval that may come again.
            self.restart();
            self.longest = gap;
        } else if known && self.events <= 1.0 && gap * 10.0 < self.seconds {
            // One long interval, then a short one: the work started at the last event.
            self.restart();
            (self.messages, self.seconds, self.events, self.longest) = (n as f64, gap, 1.0, gap);
        } else {
            let d = (-gap / self.tau()).exp();
            self.messages = self.messages * d + n as f64;
            self.seconds = self.seconds * d + gap;
            self.events = self.events * d + 1.0;
            self.longest = (self.longest * LONGEST_KEPT).max(gap);
        }
        self.last_ms = now_ms;
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
                // The open interval counts for what it has run past one and a half times
                // the longest recent one, weighed as the newest: M·d / (S·d + excess),
                // with d = e^(−open/τ).
                let open = since_ms as f64 / 1000.0;
                let excess = open - usual.max(1.5 * self.longest);
                let span = if excess > 0.0 {
                    self.seconds + excess * (open / self.tau()).exp()
                } else {
                    self.seconds
                };
                let rate = self.messages / span;
                Some(if rate.is_finite() { rate } else { 0.0 })
            }
        };
        Reading {
            per_second,
            since_ms: Some(since_ms),
            stopped,
        }
    }

    /// The state as stored: six little-endian numbers.
    pub fn to_bytes(&self) -> [u8; RATE_BYTES] {
        let mut b = [0u8; RATE_BYTES];
        b[..8].copy_from_slice(&self.last_ms.to_le_bytes());
        b[8..16].copy_from_slice(&self.messages.to_le_bytes());
        b[16..24].copy_from_slice(&self.seconds.to_le_bytes());
        b[24..32].copy_from_slice(&self.events.to_le_bytes());
        b[32..40].copy_from_slice(&self.longest.to_le_bytes());
        b[40..].copy_from_slice(&self.total.to_le_bytes());
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
            events: f64::from_bits(u(24..32)),
            longest: f64::from_bits(u(32..40)),
            total: u(40..48),
        };
        let sane = |x: f64| x.is_finite() && x >= 0.0;
        let numbers = [rate.messages, rate.seconds, rate.events, rate.longest];
        if numbers.into_iter().all(sane) && rate.last_ms <= crate::clock::LATEST_MS {
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

    // A clock stepped back made every event count with no time between them until the
    // clock caught up: the rate grew without bound.
    #[test]
    fn a_clock_that_steps_back_does_not_inflate_the_rate() {
        let mut r = Rate::default();
        let last = steady(&mut r, T0, 50, 5_000);
        // An hour back, then 20 a second on from there.
        let last = steady(&mut r, last - 3_600_000, 50, 10_000);
        let got = per_second(&r, last + 10);
        assert!((10.0..=30.0).contains(&got), "{got}");
    }

    #[test]
    fn batches_at_long_intervals_are_neither_stalled_nor_inflated() {
        // pop -n 100 every 10 s: ten a second, and no stall between two pops.
        let mut r = Rate::default();
        for i in 0..30 {
            r.record(T0 + i * 10_000, 100);
        }
        let last = T0 + 29 * 10_000;
        for after in [10, 5_000, 9_900] {
            let reading = r.read(last + after);
            assert!(!reading.stopped, "stopped {after} ms after a batch");
            near(reading.per_second.unwrap(), 10.0, 0.02);
        }
        assert!(r.read(last + 101_000).stopped);
    }

    #[test]
    fn bursts_are_measured_over_their_cycle() {
        // Sixteen commands of 30 s each finishing together (run -j 16): 16 every 30 s.
        let mut r = Rate::default();
        for cycle in 0..20 {
            for k in 0..16 {
                r.record(T0 + cycle * 30_000 + k * 5, 1);
            }
        }
        let last = T0 + 19 * 30_000 + 15 * 5;
        for after in [10, 15_000, 29_000] {
            let reading = r.read(last + after);
            assert!(!reading.stopped, "stopped {after} ms after a burst");
            near(reading.per_second.unwrap(), 16.0 / 30.0, 0.05);
        }
    }

    #[test]
    fn a_lone_event_long_before_the_work_does_not_dilute_it() {
        let mut r = Rate::default();
        r.record(T0, 1); // one push by hand
        let start = T0 + 3_600_000; // an hour later, ten a second
        let last = steady(&mut r, start, 100, 2_000);
        near(per_second(&r, last + 10), 10.0, 0.05);
    }

    #[test]
    fn a_reading_long_after_slow_events_is_finite() {
        // One event a week: read days later, the decay underflows without a NaN.
        let mut r = Rate::default();
        let week = 7 * 86_400_000;
        for i in 0..4 {
            r.record(T0 + i * week, 1);
        }
        let last = T0 + 3 * week;
        for after in [86_400_000, 5 * 86_400_000, 6 * 86_400_000] {
            let p = r.read(last + after).per_second.unwrap();
            assert!(p.is_finite() && p >= 0.0, "{p} after {after} ms");
        }
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
        let mut bad = r.to_bytes();
        bad[32..40].copy_from_slice(&f64::INFINITY.to_le_bytes());
        assert_eq!(Rate::from_bytes(&bad), Rate::default());
    }
}
