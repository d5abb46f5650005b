//! `spool stats`: a queue's counts and its health as queueing theory reads it (see
//! [`crate::health`]), as text, JSON lines or OpenMetrics; `--watch` refreshes it, on a
//! terminal redrawn with the depth of the last minutes as a chart, in a pipe one line per
//! queue and interval.

use std::collections::{HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::time::SystemTime;

use serde::Serialize;

use super::failure::{Failure, Outcome};
use super::output::{stdout_error, stdout_file};
use crate::cli::{StatsArgs, StatsFormat};
use crate::exit::ExitStatus;
use crate::health::{Health, Trend};
use crate::store::{self, Engine, Queue, Result};
use crate::timefmt;

/// One queue's stats: what `--json` prints, one object a line.
#[derive(Default, Serialize)]
struct Row {
    queue: String,
    waiting: u64,
    delayed: u64,
    claimed: u64,
    failed: u64,
    bytes: u64,
    oldest_enqueued: Option<String>,
    oldest_age_seconds: Option<f64>,
    next_id: u64,
    /// λ: messages published per second.
    arrival_rate_per_second: Option<f64>,
    /// R: messages consumed per second (popped, acked, failed for good).
    rate_per_second: Option<f64>,
    /// ρ = λ / R.
    utilisation: Option<f64>,
    /// L / R: the wait of a message pushed now; null when nothing is being consumed.
    expected_wait_seconds: Option<f64>,
    trend: Trend,
    /// When draining: L / (R − λ).
    time_to_empty_seconds: Option<f64>,
    /// When growing: λ − R.
    growth_per_second: Option<f64>,
    last_consumed_seconds_ago: Option<f64>,
    #[serde(skip)]
    consumption_stopped: bool,
}

/// `x` rounded to `places` decimals.
fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// `x` rounded to four significant figures, so that a slow rate does not round to 0.
fn significant(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let magnitude = x.abs().log10().floor() as i32;
    round(x, (3 - magnitude).clamp(0, 12))
}

fn row<Q: Queue>(queue: Option<Q>, name: &str) -> Result<Row> {
    let s = match &queue {
        Some(q) => q.stats()?,
        None => store::Stats {
            next_id: 1,
            ..Default::default()
        },
    };
    let h = Health::of(&s, store::now_ms());
    let now = SystemTime::now();
    let r3 = |x: Option<f64>| x.map(significant);
    let r1 = |x: Option<f64>| x.map(|x| round(x, 1));
    Ok(Row {
        queue: name.to_string(),
        waiting: s.ready,
        delayed: s.delayed,
        claimed: s.claimed,
        failed: s.failed,
        bytes: s.bytes,
        oldest_enqueued: s.oldest.map(timefmt::rfc3339),
        oldest_age_seconds: s.oldest.map(|t| {
            now.duration_since(t)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        }),
        next_id: s.next_id,
        arrival_rate_per_second: r3(h.arrival),
        rate_per_second: r3(h.service),
        utilisation: r3(h.utilisation),
        expected_wait_seconds: r1(h.expected_wait),
        trend: h.trend,
        time_to_empty_seconds: r1(h.time_to_empty),
        growth_per_second: r3(h.growth),
        last_consumed_seconds_ago: r1(h.last_consumed),
        consumption_stopped: h.consumption_stopped,
    })
}

/// A rate for people: three significant figures (one decimal at least: a rate never
/// reads as a count), `0.000` for none.
fn rate_text(x: f64) -> String {
    let places = if x == 0.0 || !x.is_finite() {
        3
    } else {
        (2 - x.abs().log10().floor() as i32).clamp(1, 12) as usize
    };
    format!("{x:.places$}")
}

impl Row {
    fn is_stalled(&self) -> bool {
        self.trend == Trend::Stalled
    }

    /// Why there is no expected wait, for a stalled queue: `no consumer for 3m`, or, with
    /// messages claimed, `nothing consumed for 3m, 2 in progress`.
    fn stall(&self) -> String {
        match (self.last_consumed_seconds_ago, self.claimed) {
            (Some(ago), 0) => format!("no consumer for {}", timefmt::age(ago)),
            (Some(ago), n) => format!(
                "nothing consumed for {}, {n} in progress",
                timefmt::age(ago)
            ),
            (None, 0) => "nothing consumed yet".to_string(),
            (None, n) => format!("nothing consumed yet, {n} in progress"),
        }
    }

    fn wait_text(&self) -> String {
        self.expected_wait_seconds.map_or("-".into(), timefmt::age)
    }

    /// What follows the trend: ` (empty in 2m35s)`, ` (by 4.2/s)`.
    fn trend_detail(&self) -> String {
        if let Some(t) = self.time_to_empty_seconds {
            format!(" (empty in {})", timefmt::age(t))
        } else if let Some(g) = self.growth_per_second {
            format!(" (by {}/s)", rate_text(g))
        } else if self.is_stalled() {
            format!(" ({})", self.stall())
        } else {
            String::new()
        }
    }
}

/// One fact of a queue's stats, in both renderings.
struct Field {
    /// Its column in the table of many queues (`None`: only in the one-queue form).
    header: Option<&'static str>,
    /// Its label in the one-queue form.
    label: &'static str,
    value: String,
    /// What follows the value in the one-queue form.
    note: String,
}

/// The facts of one queue, in the order both renderings show them.
fn fields(r: &Row) -> Vec<Field> {
    let oldest = r.oldest_age_seconds.map_or("-".into(), timefmt::age);
    let oldest_at = r
        .oldest_enqueued
        .as_ref()
        .map_or(String::new(), |t| format!(" ({t})"));
    let per_second = |x: Option<f64>, why: &str| match x {
        Some(x) => (rate_text(x), format!("/s ({why})")),
        None => ("-".into(), String::new()),
    };
    let (arrivals, arrivals_note) = per_second(r.arrival_rate_per_second, "λ, published");
    let (service, mut service_note) = per_second(r.rate_per_second, "R, consumed");
    if r.consumption_stopped {
        let ago = r.last_consumed_seconds_ago.unwrap_or(0.0);
        service_note = format!("/s (R; none for {})", timefmt::age(ago));
    }
    let wait_note = if r.is_stalled() {
        format!(" ({})", r.stall())
    } else if r.expected_wait_seconds.is_none() {
        " (consumption has only just started)".into()
    } else {
        " (expected for a message pushed now: waiting / R)".into()
    };
    let (load, load_note) = match r.utilisation {
        Some(u) => (rate_text(u), " (ρ = λ / R)"),
        None => ("-".into(), ""),
    };
    [
        (Some("QUEUE"), "queue", r.queue.clone(), String::new()),
        (
            Some("WAITING"),
            "waiting",
            r.waiting.to_string(),
            String::new(),
        ),
        (
            Some("DELAYED"),
            "delayed",
            r.delayed.to_string(),
            String::new(),
        ),
        (
            Some("CLAIMED"),
            "claimed",
            r.claimed.to_string(),
            String::new(),
        ),
        (
            Some("FAILED"),
            "failed",
            r.failed.to_string(),
            String::new(),
        ),
        (Some("BYTES"), "bytes", r.bytes.to_string(), String::new()),
        (Some("OLDEST"), "oldest", oldest, oldest_at),
        (Some("IN/s"), "arrivals", arrivals, arrivals_note),
        (Some("OUT/s"), "consumed", service, service_note),
        (None, "load", load, load_note.into()),
        (Some("WAIT"), "wait", r.wait_text(), wait_note),
        // The one-queue form says the trend's figure beside it.
        (
            Some("TREND"),
            "trend",
            r.trend.as_str().to_string(),
            r.trend_detail(),
        ),
        (None, "next id", r.next_id.to_string(), String::new()),
    ]
    .into_iter()
    .map(|(header, label, value, note)| Field {
        header,
        label,
        value,
        note,
    })
    .collect()
}

/// The stats of one queue, a line per fact: `waiting:  3`.
fn render_one(r: &Row) -> String {
    let mut text = String::new();
    for f in fields(r) {
        let label = format!("{}:", f.label);
        text.push_str(&format!("{label:<10}{}{}\n", f.value, f.note));
    }
    text
}

/// The header of the table of many queues.
fn header() -> Vec<String> {
    fields(&Row::default())
        .into_iter()
        .filter_map(|f| f.header.map(String::from))
        .collect()
}

/// The cells of one queue in the table.
fn cells(r: &Row) -> Vec<String> {
    fields(r)
        .into_iter()
        .filter(|f| f.header.is_some())
        .map(|f| f.value)
        .collect()
}

/// The stats of many queues: the header line, then a line of cells per queue.
fn render_table(rows: &[Row]) -> Vec<Vec<String>> {
    std::iter::once(header())
        .chain(rows.iter().map(cells))
        .collect()
}

/// Lays out `table`. `aligned` (for a terminal): columns padded with spaces, the queue
/// names to the left, the figures to the right, as `ps` shows them. Otherwise
/// tab-separated values for `cut`, `awk` and `column -t`, the header kept as their first
/// line (as `ps` keeps it in a pipe): a reader skips it by position, never by guessing.
fn lay_out(table: &[Vec<String>], aligned: bool) -> String {
    let mut text = String::new();
    if !aligned {
        for line in table {
            text.push_str(&line.join("\t"));
            text.push('\n');
        }
        return text;
    }
    let columns = table.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            table
                .iter()
                .filter_map(|line| line.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    // Words to the left (the queue, the trend, a chart), figures to the right.
    let left: Vec<bool> = table.first().map_or(Vec::new(), |header| {
        header
            .iter()
            .map(|h| ["QUEUE", "TREND", "TIME"].contains(&h.as_str()) || h.starts_with("DEPTH"))
            .collect()
    });
    for line in table {
        let mut cells = Vec::with_capacity(columns);
        for (c, cell) in line.iter().enumerate() {
            let width = widths.get(c).copied().unwrap_or(0);
            let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
            cells.push(if left.get(c).copied().unwrap_or(false) {
                format!("{cell}{pad}")
            } else {
                format!("{pad}{cell}")
            });
        }
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// The OpenMetrics text exposition of `rows`: every family once, a `queue` label on each
/// sample, `# EOF` last. It is also the Prometheus text format that node_exporter's
/// textfile collector reads (`# UNIT` and `# EOF` are comments there): every family is a
/// gauge, the one type both formats spell alike.
fn openmetrics(rows: &[Row]) -> String {
    type Value = fn(&Row) -> Option<f64>;
    let families: [(&str, &str, Option<&str>, Value); 6] = [
        (
            "spool_waiting_bytes",
            "Payload bytes of the waiting messages.",
            Some("bytes"),
            |r| Some(r.bytes as f64),
        ),
        (
            "spool_oldest_waiting_age_seconds",
            "Age of the oldest waiting message.",
            Some("seconds"),
            |r| r.oldest_age_seconds.map(|x| round(x, 3)),
        ),
        (
            "spool_arrival_rate",
            "Messages published per second (lambda).",
            None,
            |r| r.arrival_rate_per_second,
        ),
        (
            "spool_service_rate",
            "Messages consumed per second: popped, acked or failed for good (R).",
            None,
            |r| r.rate_per_second,
        ),
        (
            "spool_utilisation",
            "Arrival rate over service rate (rho).",
            None,
            |r| r.utilisation,
        ),
        (
            "spool_expected_wait_seconds",
            "Expected wait of a message pushed now: waiting / service rate.",
            Some("seconds"),
            |r| r.expected_wait_seconds,
        ),
    ];
    let mut text = String::new();
    text.push_str("# HELP spool_messages Messages in the queue, by state.\n");
    text.push_str("# TYPE spool_messages gauge\n");
    for r in rows {
        for (state, n) in [
            ("waiting", r.waiting),
            ("delayed", r.delayed),
            ("claimed", r.claimed),
            ("failed", r.failed),
        ] {
            text.push_str(&format!(
                "spool_messages{{queue=\"{}\",state=\"{state}\"}} {n}\n",
                r.queue
            ));
        }
    }
    for (name, help, unit, value) in families {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        if let Some(unit) = unit {
            text.push_str(&format!("# UNIT {name} {unit}\n"));
        }
        for r in rows {
            // An unknown figure is left out, not written as 0.
            if let Some(v) = value(r) {
                text.push_str(&format!("{name}{{queue=\"{}\"}} {v}\n", r.queue));
            }
        }
    }
    text.push_str("# EOF\n");
    text
}

/// The rows of the queues asked for.
fn rows<E: Engine>(engine: &E, name: &str, all: bool) -> std::result::Result<Vec<Row>, Failure> {
    let names = if all {
        engine.queues()?
    } else {
        vec![name.to_string()]
    };
    let mut rows = Vec::with_capacity(names.len());
    for name in &names {
        rows.push(row(engine.open(name)?, name)?);
    }
    Ok(rows)
}

fn json_lines(rows: &[Row]) -> String {
    let mut text = String::new();
    for row in rows {
        text.push_str(&serde_json::to_string(row).expect("plain struct serializes"));
        text.push('\n');
    }
    text
}

pub(super) fn stats<E: Engine>(engine: &E, name: &str, args: StatsArgs) -> Outcome {
    let format = if args.json {
        StatsFormat::Json
    } else {
        args.format
    };
    // OpenMetrics is for a collector: every queue, unless one was named.
    let all = args.all || (format == StatsFormat::Openmetrics && !args.queue_named);
    if args.watch && format == StatsFormat::Openmetrics {
        return Err(Failure::Usage(
            "--watch: not with --format openmetrics (a collector reads it once per scrape)".into(),
        ));
    }
    let mut out = stdout_file()?;
    if args.watch {
        return watch(engine, name, all, format, &args, out);
    }
    let rows = rows(engine, name, all)?;
    let text = match format {
        StatsFormat::Json => json_lines(&rows),
        StatsFormat::Openmetrics => openmetrics(&rows),
        StatsFormat::Text if all => lay_out(&render_table(&rows), out.is_terminal()),
        StatsFormat::Text => rows.first().map(render_one).unwrap_or_default(),
    };
    out.write_all(text.as_bytes()).map_err(stdout_error)?;
    Ok(ExitStatus::Success)
}

/// Samples of depth kept per queue for the chart.
const HISTORY: usize = 120;
/// Columns of the chart.
const CHART_WIDTH: usize = 60;

/// `stats --watch`: the stats again every interval until interrupted. On a terminal the
/// screen is redrawn, with a chart of each queue's depth; in a pipe each refresh is one
/// line per queue (a JSON object with --json), under one header line.
fn watch<E: Engine>(
    engine: &E,
    name: &str,
    all: bool,
    format: StatsFormat,
    args: &StatsArgs,
    mut out: std::fs::File,
) -> Outcome {
    let tty = out.is_terminal();
    let mut history: HashMap<String, VecDeque<u64>> = HashMap::new();
    let mut first = true;
    loop {
        // A queue removed or damaged while watched is said, and the watch goes on.
        let rows = match rows(engine, name, all) {
            Ok(rows) => rows,
            Err(Failure::Store(e)) if !e.is_broken_pipe() => {
                let _ = std::io::stderr().write_all(format!("spool: {e}\n").as_bytes());
                std::thread::sleep(args.interval);
                continue;
            }
            Err(f) => return Err(f),
        };
        for r in &rows {
            let h = history.entry(r.queue.clone()).or_default();
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(r.waiting);
        }
        let span = args
            .interval
            .saturating_mul(HISTORY.min(history_len(&history)) as u32);
        let chart = |r: &Row, width| {
            let samples: Vec<u64> = history[&r.queue].iter().copied().collect();
            sparkline(&samples, width)
        };
        let mut text = String::new();
        if format == StatsFormat::Json {
            text = json_lines(&rows);
        } else if tty {
            text.push_str("\x1b[H\x1b[2J");
            if all {
                let mut table = render_table(&rows);
                table[0].push(format!("DEPTH ({})", timefmt::age(span.as_secs_f64())));
                for (line, r) in table[1..].iter_mut().zip(&rows) {
                    line.push(chart(r, CHART_WIDTH / 3));
                }
                text.push_str(&lay_out(&table, true));
            } else if let Some(r) = rows.first() {
                text.push_str(&render_one(r));
                let max = history[&r.queue].iter().max().copied().unwrap_or(0);
                text.push_str(&format!(
                    "{:<10}{} (last {}, up to {max})\n",
                    "depth:",
                    chart(r, CHART_WIDTH),
                    timefmt::age(span.as_secs_f64())
                ));
            }
        } else {
            let time = timefmt::rfc3339(SystemTime::now());
            let mut table = Vec::new();
            if first {
                let mut h = header();
                h.insert(0, "TIME".into());
                table.push(h);
            }
            for r in &rows {
                let mut line = cells(r);
                line.insert(0, time.clone());
                table.push(line);
            }
            text = lay_out(&table, false);
        }
        first = false;
        out.write_all(text.as_bytes()).map_err(stdout_error)?;
        std::thread::sleep(args.interval);
    }
}

fn history_len(history: &HashMap<String, VecDeque<u64>>) -> usize {
    history.values().map(VecDeque::len).max().unwrap_or(0)
}

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A chart of `samples` in at most `width` characters, the newest to the right, each
/// character the largest of the samples it stands for, scaled to the largest of all.
fn sparkline(samples: &[u64], width: usize) -> String {
    if samples.is_empty() || width == 0 {
        return String::new();
    }
    let per = samples.len().div_ceil(width);
    // Whole groups end at the newest sample.
    let skip = samples.len() % per;
    let mut groups: Vec<u64> = Vec::new();
    if skip > 0 {
        groups.push(samples[..skip].iter().copied().max().unwrap_or(0));
    }
    groups.extend(
        samples[skip..]
            .chunks(per)
            .map(|c| c.iter().copied().max().unwrap_or(0)),
    );
    let max = groups.iter().copied().max().unwrap_or(0);
    groups
        .into_iter()
        .map(|v| {
            if max == 0 {
                BARS[0]
            } else {
                BARS[((v as u128 * 7).div_ceil(max as u128)) as usize]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_many_queues_align_on_a_terminal_and_are_tab_separated_otherwise() {
        let row = |queue: &str, waiting, oldest| Row {
            queue: queue.into(),
            waiting,
            bytes: waiting * 10,
            oldest_age_seconds: oldest,
            arrival_rate_per_second: Some(0.1),
            rate_per_second: Some(0.25),
            expected_wait_seconds: Some(waiting as f64 * 4.0),
            trend: Trend::Draining,
            next_id: 7,
            ..Row::default()
        };
        let table = render_table(&[row("a", 12345, Some(61.0)), row("longer", 0, None)]);
        assert_eq!(
            lay_out(&table, true),
            "\
QUEUE   WAITING  DELAYED  CLAIMED  FAILED   BYTES  OLDEST   IN/s  OUT/s    WAIT  TREND
a         12345        0        0       0  123450    1m1s  0.100  0.250  13h43m  draining
longer        0        0        0       0       0       -  0.100  0.250     0ms  draining
"
        );
        assert_eq!(
            lay_out(&table, false),
            "\
QUEUE\tWAITING\tDELAYED\tCLAIMED\tFAILED\tBYTES\tOLDEST\tIN/s\tOUT/s\tWAIT\tTREND
a\t12345\t0\t0\t0\t123450\t1m1s\t0.100\t0.250\t13h43m\tdraining
longer\t0\t0\t0\t0\t0\t-\t0.100\t0.250\t0ms\tdraining
"
        );
    }

    #[test]
    fn rates_read_as_three_figures() {
        assert_eq!(rate_text(0.0), "0.000");
        assert_eq!(rate_text(0.7777), "0.778");
        assert_eq!(rate_text(2.5), "2.50");
        assert_eq!(rate_text(23.456), "23.5");
        assert_eq!(rate_text(1234.56), "1234.6");
        // One message every 40 minutes is not nothing.
        assert_eq!(rate_text(1.0 / 2400.0), "0.000417");
        assert_eq!(significant(1.0 / 2400.0), 0.0004167);
        assert_eq!(significant(22.93456), 22.93);
        assert_eq!(significant(1234.56), 1235.0);
    }

    #[test]
    fn the_one_queue_form_says_what_the_model_says() {
        let r = Row {
            queue: "jobs".into(),
            waiting: 340,
            arrival_rate_per_second: Some(18.1),
            rate_per_second: Some(20.3),
            utilisation: Some(0.892),
            expected_wait_seconds: Some(16.7),
            trend: Trend::Draining,
            time_to_empty_seconds: Some(154.5),
            next_id: 700,
            ..Row::default()
        };
        let text = render_one(&r);
        for line in [
            "arrivals: 18.1/s (λ, published)\n",
            "consumed: 20.3/s (R, consumed)\n",
            "load:     0.892 (ρ = λ / R)\n",
            "wait:     16s (expected for a message pushed now: waiting / R)\n",
            "trend:    draining (empty in 2m34s)\n",
        ] {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
        let stalled = Row {
            queue: "jobs".into(),
            waiting: 3,
            rate_per_second: Some(0.0),
            trend: Trend::Stalled,
            last_consumed_seconds_ago: Some(185.0),
            consumption_stopped: true,
            ..Row::default()
        };
        let text = render_one(&stalled);
        for line in [
            "consumed: 0.000/s (R; none for 3m5s)\n",
            "wait:     - (no consumer for 3m5s)\n",
            "trend:    stalled (no consumer for 3m5s)\n",
        ] {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
        let working = Row {
            claimed: 2,
            ..stalled
        };
        assert!(
            render_one(&working)
                .contains("trend:    stalled (nothing consumed for 3m5s, 2 in progress)\n")
        );
        let growing = Row {
            trend: Trend::Growing,
            growth_per_second: Some(4.2),
            ..Row::default()
        };
        assert!(render_one(&growing).contains("trend:    growing (by 4.20/s)\n"));
    }

    #[test]
    fn charts_scale_to_their_largest_sample_and_keep_the_newest() {
        assert_eq!(sparkline(&[0, 0, 0], 10), "▁▁▁");
        assert_eq!(sparkline(&[0, 1, 2, 4, 8], 10), "▁▂▃▅█");
        // Two samples a column: the largest of each pair, the newest pair whole.
        assert_eq!(sparkline(&[8, 0, 0, 4, 0, 8], 3), "█▅█");
        assert_eq!(sparkline(&[8, 1, 2, 3, 4], 2), "█▅");
        assert_eq!(sparkline(&[], 5), "");
    }

    #[test]
    fn openmetrics_has_every_family_once_and_leaves_unknown_figures_out() {
        let a = Row {
            queue: "a".into(),
            waiting: 2,
            bytes: 20,
            oldest_age_seconds: Some(1.5),
            rate_per_second: Some(3.0),
            expected_wait_seconds: Some(0.7),
            ..Row::default()
        };
        let b = Row {
            queue: "b".into(),
            ..Row::default()
        };
        let text = openmetrics(&[a, b]);
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.matches("# TYPE spool_messages gauge").count(), 1);
        assert!(text.contains("spool_messages{queue=\"b\",state=\"failed\"} 0\n"));
        assert!(text.contains("spool_service_rate{queue=\"a\"} 3\n"));
        assert!(!text.contains("spool_service_rate{queue=\"b\"}"));
        assert!(!text.contains("spool_arrival_rate{queue="));
    }
}
