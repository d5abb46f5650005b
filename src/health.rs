//! A queue's health as queueing theory reads it: waiting L, arrival rate λ, service rate
//! R, utilisation ρ = λ/R, the expected wait L/R of a message pushed now (Little's law
//! for the line ahead of it), and the trend: draining (empty in L/(R − λ)), steady, or
//! growing (by λ − R a second). `stats` and `run --progress` show this one estimate.

use crate::store::Stats;
use crate::store::rate::Reading;

/// ρ within this of 1 is steady: the rates are estimates, a few percent apart is noise.
const STEADY_WITHIN: f64 = 0.05;

/// Where a queue is heading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trend {
    /// Nothing waiting, nothing arriving.
    #[default]
    Idle,
    /// Messages wait, and none has been consumed for a while (or ever).
    Stalled,
    /// Consumption outpaces arrivals: the backlog shrinks.
    Draining,
    /// Consumption keeps up with arrivals (or nothing waits while messages come and go).
    Steady,
    /// Arrivals outpace consumption: the backlog, and so the wait, grows without bound.
    Growing,
    /// Messages wait and consumption has only just started: its pace is not known yet.
    Unknown,
}

impl Trend {
    /// The word `stats` prints (and JSON holds).
    pub fn as_str(self) -> &'static str {
        match self {
            Trend::Idle => "idle",
            Trend::Stalled => "stalled",
            Trend::Draining => "draining",
            Trend::Steady => "steady",
            Trend::Growing => "growing",
            Trend::Unknown => "unknown",
        }
    }
}

/// The model's figures for one queue at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// L: messages waiting (ready now).
    pub waiting: u64,
    /// λ: messages published per second (`None`: not yet measured).
    pub arrival: Option<f64>,
    /// R: messages consumed per second (`None`: not yet measured).
    pub service: Option<f64>,
    /// ρ = λ / R.
    pub utilisation: Option<f64>,
    /// L / R: how long a message pushed now waits before it is taken.
    pub expected_wait: Option<f64>,
    pub trend: Trend,
    /// When draining: L / (R − λ), seconds until nothing waits.
    pub time_to_empty: Option<f64>,
    /// When growing: λ − R, messages a second.
    pub growth: Option<f64>,
    /// Seconds since the last consumption (`None`: none ever).
    pub last_consumed: Option<f64>,
    /// Consumption has stopped: nothing consumed for much longer than its usual interval.
    pub consumption_stopped: bool,
}

impl Health {
    /// The model of `stats` at `now_ms`.
    pub fn of(stats: &Stats, now_ms: u64) -> Health {
        let arrival = stats.published.read(now_ms);
        let service = stats.consumed.read(now_ms);
        Health::from_readings(stats.ready, arrival, service)
    }

    fn from_readings(waiting: u64, arrival: Reading, service: Reading) -> Health {
        let lambda = arrival.per_second;
        let r = service.per_second;
        let l = waiting as f64;
        let moving = r.is_some_and(|r| r > 0.0);
        let never_consumed = service.since_ms.is_none();
        // A figure out of a tiny rate can be infinite: it is then not known.
        let finite = |x: f64| x.is_finite().then_some(x);
        let mut health = Health {
            waiting,
            arrival: lambda,
            service: r,
            utilisation: match (lambda, r) {
                (Some(a), Some(r)) if r > 0.0 => finite(a / r),
                _ => None,
            },
            expected_wait: match r {
                // Nothing ahead: taken as soon as a consumer looks, if there is one.
                _ if waiting == 0 && !never_consumed => Some(0.0),
                Some(r) if r > 0.0 => finite(l / r),
                _ => None,
            },
            trend: Trend::Steady,
            time_to_empty: None,
            growth: None,
            last_consumed: service.since_ms.map(|ms| ms as f64 / 1000.0),
            consumption_stopped: service.stopped,
        };
        let a = lambda.unwrap_or(0.0);
        health.trend = if waiting == 0 {
            if a > 0.0 || moving {
                Trend::Steady
            } else {
                Trend::Idle
            }
        } else if service.stopped || never_consumed {
            Trend::Stalled
        } else {
            match r {
                // One consumption so far: working, its pace not yet known.
                None => Trend::Unknown,
                Some(r) if a > r * (1.0 + STEADY_WITHIN) => Trend::Growing,
                Some(r) if a < r * (1.0 - STEADY_WITHIN) => Trend::Draining,
                Some(_) => Trend::Steady,
            }
        };
        match health.trend {
            Trend::Draining => {
                health.time_to_empty = r.and_then(|r| finite(l / (r - a)));
            }
            Trend::Growing => {
                health.growth = Some(a - r.unwrap_or(0.0));
            }
            _ => {}
        }
        health
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Rate;

    const T0: u64 = 1_800_000_000_000;

    /// A rate that saw one event every `every_ms` for a minute, up to `T0`.
    fn rate(every_ms: u64) -> Rate {
        let mut r = Rate::default();
        let mut t = T0 - 60_000;
        while t <= T0 {
            r.record(t, 1);
            t += every_ms;
        }
        r
    }

    fn stats(ready: u64, published: Rate, consumed: Rate) -> Stats {
        Stats {
            ready,
            published,
            consumed,
            ..Stats::default()
        }
    }

    #[track_caller]
    fn near(got: Option<f64>, want: f64) {
        let got = got.expect("a figure");
        assert!((got / want - 1.0).abs() < 0.03, "{got} is not near {want}");
    }

    #[test]
    fn a_draining_queue_says_when_it_is_empty() {
        // λ = 10/s, R = 20/s, L = 300: the wait is 15 s, empty in 30 s.
        let h = Health::of(&stats(300, rate(100), rate(50)), T0 + 10);
        assert_eq!(h.trend, Trend::Draining);
        near(h.arrival, 10.0);
        near(h.service, 20.0);
        near(h.utilisation, 0.5);
        near(h.expected_wait, 15.0);
        near(h.time_to_empty, 30.0);
        assert_eq!(h.growth, None);
    }

    #[test]
    fn a_growing_queue_says_how_fast() {
        // λ = 25/s, R = 20/s: ρ = 1.25, 5 more a second.
        let h = Health::of(&stats(100, rate(40), rate(50)), T0 + 10);
        assert_eq!(h.trend, Trend::Growing);
        near(h.utilisation, 1.25);
        near(h.growth, 5.0);
        near(h.expected_wait, 5.0);
        assert_eq!(h.time_to_empty, None);
    }

    #[test]
    fn rates_a_few_percent_apart_are_steady() {
        let h = Health::of(&stats(100, rate(51), rate(50)), T0 + 10);
        assert_eq!(h.trend, Trend::Steady);
        assert_eq!((h.time_to_empty, h.growth), (None, None));
    }

    #[test]
    fn a_backlog_without_consumption_is_stalled_not_a_wait_of_hours() {
        let h = Health::of(&stats(40, rate(1000), rate(50)), T0 + 180_000);
        assert_eq!(h.trend, Trend::Stalled);
        assert_eq!(h.service, Some(0.0));
        assert_eq!(h.expected_wait, None);
        assert!(h.consumption_stopped);
        near(h.last_consumed, 180.0);
        // Never consumed at all.
        let h = Health::of(&stats(40, rate(1000), Rate::default()), T0 + 10);
        assert_eq!(h.trend, Trend::Stalled);
        assert_eq!(h.last_consumed, None);
        assert_eq!((h.service, h.expected_wait), (None, None));
    }

    #[test]
    fn one_consumption_is_no_pace_yet() {
        let mut consumed = Rate::default();
        consumed.record(T0, 1);
        let h = Health::of(&stats(40, Rate::default(), consumed), T0 + 100);
        assert_eq!(h.trend, Trend::Unknown);
        assert_eq!((h.service, h.expected_wait), (None, None));
        near(h.last_consumed, 0.1);
    }

    #[test]
    fn an_empty_queue_is_idle_or_keeping_up() {
        let h = Health::of(&stats(0, Rate::default(), Rate::default()), T0);
        assert_eq!(h.trend, Trend::Idle);
        assert_eq!(
            h.expected_wait, None,
            "no consumer ever: no wait to promise"
        );
        let h = Health::of(&stats(0, rate(100), rate(100)), T0 + 10);
        assert_eq!(h.trend, Trend::Steady);
        assert_eq!(h.expected_wait, Some(0.0));
    }
}
