//! `stats` as queueing theory reads a queue: λ, R, ρ, the expected wait, the trend, the
//! stalled consumer; `--format openmetrics` read by a real parser; `--watch`.
//!
//! The rates are measured from the clock, so the tests that check their figures write
//! the `rates` records themselves (the format is docs/FORMAT.md's), with intervals long
//! enough that the time a command takes to start changes nothing.

use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::harness::{Engine, Fixture, engine_tests, json_lines, skip, tool_works};

engine_tests! {
    operations_are_counted_as_published_and_consumed,
    openmetrics_parses_as_openmetrics_and_as_the_prometheus_text_format,
    openmetrics_covers_every_queue_unless_one_is_named,
    watch_in_a_pipe_prints_one_line_per_queue_and_refresh,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One record of `rates` for a steady rate: the last event, then the decayed sums of
/// messages, of seconds and of events, the longest interval (here the usual one), and
/// the total.
fn record(last_ms: u64, messages: f64, seconds: f64, events: f64, total: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(48);
    b.extend(last_ms.to_le_bytes());
    b.extend(messages.to_le_bytes());
    b.extend(seconds.to_le_bytes());
    b.extend(events.to_le_bytes());
    b.extend((seconds / events).to_le_bytes());
    b.extend(total.to_le_bytes());
    b
}

fn write_rates(queue_dir: &Path, published: &[u8], consumed: &[u8]) {
    fs::write(queue_dir.join("rates"), [published, consumed].concat()).unwrap();
}

fn stats_json(s: &Fixture) -> Value {
    let out = s.run(&["stats", "--json"]);
    out.success();
    json_lines(&out.stdout).remove(0)
}

#[track_caller]
fn near(v: &Value, want: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"));
    assert!(
        (got - want).abs() <= want * 0.01 + 0.05,
        "{got} is not {want}"
    );
}

/// The totals of the two records of a queue's `rates` file.
fn totals(queue_dir: &Path) -> (u64, u64) {
    let b = fs::read(queue_dir.join("rates")).unwrap();
    // A record never written is not there (or zeros): none counted.
    let total = |at: usize| {
        b.get(at + 40..at + 48)
            .map_or(0, |t| u64::from_le_bytes(t.try_into().unwrap()))
    };
    (total(0), total(48))
}

#[test]
fn a_draining_queue_reads_as_the_model_says() {
    let s = Fixture::new();
    s.run_stdin(&["push", "--lines"], "x\n".repeat(30))
        .success();
    let q = s.queue_dir("default");
    let now = now_ms();
    // λ = 0.25/s (one every 4 s), R = 0.5/s (one every 2 s), L = 30.
    write_rates(
        &q,
        &record(now, 2.5, 10.0, 2.5, 40),
        &record(now, 5.0, 10.0, 5.0, 60),
    );
    let o = stats_json(&s);
    assert_eq!(o["waiting"], 30);
    near(&o["arrival_rate_per_second"], 0.25);
    near(&o["rate_per_second"], 0.5);
    near(&o["utilisation"], 0.5);
    near(&o["expected_wait_seconds"], 60.0);
    assert_eq!(o["trend"], "draining", "{o}");
    near(&o["time_to_empty_seconds"], 120.0);
    assert!(o["growth_per_second"].is_null(), "{o}");

    let text = s.run(&["stats"]).text();
    for line in [
        "arrivals: 0.250/s (λ, published)",
        "consumed: 0.500/s (R, consumed)",
        "load:     0.500 (ρ = λ / R)",
        "wait:     1m0s (expected for a message pushed now: waiting / R)",
        "trend:    draining (empty in 2m0s)",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
    }
}

#[test]
fn a_growing_queue_says_by_how_much() {
    let s = Fixture::new();
    s.run_stdin(&["push", "--lines"], "x\n".repeat(10))
        .success();
    let now = now_ms();
    // λ = 1/s (batches of 4 every 4 s), R = 0.5/s (one every 2 s).
    write_rates(
        &s.queue_dir("default"),
        &record(now, 10.0, 10.0, 2.5, 40),
        &record(now, 5.0, 10.0, 5.0, 60),
    );
    let o = stats_json(&s);
    assert_eq!(o["trend"], "growing", "{o}");
    near(&o["utilisation"], 2.0);
    near(&o["growth_per_second"], 0.5);
    near(&o["expected_wait_seconds"], 20.0);
    assert!(o["time_to_empty_seconds"].is_null(), "{o}");
    let text = s.run(&["stats"]).text();
    assert!(
        text.contains("\ntrend:    growing (by 0.500/s)\n"),
        "{text}"
    );
}

// The expected wait was printed as hours (or 0) when consumption had stopped.
#[test]
fn a_stopped_consumer_is_said_to_be_missing_not_a_long_wait() {
    let s = Fixture::new();
    s.push(&["a", "b", "c"]);
    let ten_minutes_ago = now_ms() - 600_000;
    write_rates(
        &s.queue_dir("default"),
        &record(ten_minutes_ago, 10.0, 10.0, 10.0, 3),
        &record(ten_minutes_ago, 20.0, 10.0, 20.0, 100),
    );
    let o = stats_json(&s);
    assert_eq!(o["trend"], "stalled", "{o}");
    assert_eq!(o["rate_per_second"], 0.0, "{o}");
    assert!(o["expected_wait_seconds"].is_null(), "{o}");
    near(&o["last_consumed_seconds_ago"], 600.0);
    let text = s.run(&["stats"]).text();
    for line in [
        "consumed: 0.000/s (R; none for 10m0s)",
        "wait:     - (no consumer for 10m0s)",
        "trend:    stalled (no consumer for 10m0s)",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
    }
}

#[test]
fn a_queue_never_consumed_from_is_stalled() {
    let s = Fixture::new();
    s.push(&["a"]);
    s.push(&["b"]);
    let o = stats_json(&s);
    assert_eq!(o["trend"], "stalled", "{o}");
    assert!(o["rate_per_second"].is_null(), "{o}");
    assert!(o["last_consumed_seconds_ago"].is_null(), "{o}");
    let text = s.run(&["stats"]).text();
    assert!(
        text.contains("\nwait:     - (nothing consumed yet)\n"),
        "{text}"
    );
}

#[test]
fn damaged_rates_read_as_unknown_and_are_written_anew() {
    let s = Fixture::new();
    s.push(&["a", "b"]);
    let q = s.queue_dir("default");
    fs::write(q.join("rates"), b"not a record").unwrap();
    let o = stats_json(&s);
    assert!(o["arrival_rate_per_second"].is_null(), "{o}");
    assert!(o["rate_per_second"].is_null(), "{o}");
    s.run(&["pop"]).success();
    s.run(&["pop"]).success();
    assert_eq!(totals(&q).1, 2);
}

// Local: the counts are read from the spool's own file.
#[test]
fn every_way_of_consuming_counts_and_pushes_count_their_messages() {
    let s = Fixture::new();
    s.push(&["one"]);
    s.push(&["two", "three"]);
    s.run_stdin(&["push", "--lines"], "4\n5\n6\n7\n8\n")
        .success();
    s.run(&["push", "--delay", "1h", "later"]).success();
    let q = s.queue_dir("default");
    assert_eq!(totals(&q), (9, 0));
    s.run(&["pop", "-n", "2", "--lines"]).success(); // 2
    let token = s.claim(&[]);
    s.run(&["ack", token.trim()]).success(); // 3
    let token = s.claim(&[]);
    s.run(&["nack", token.trim()]).success(); // a retry is not consumed
    s.run(&["run", "--max", "1", "--", "true"]).success(); // 4
    let out = s.run(&["run", "--max", "1", "--", "sh", "-c", "exit 100"]);
    assert_eq!(out.code, 3, "{out:?}"); // failed for good: 5
    s.run(&["peek"]).success(); // looking consumes nothing
    assert_eq!(totals(&q), (9, 5));
    // Expired when a consumer comes to it: it left the line for good.
    s.run(&["clear"]).success();
    s.run(&["push", "--ttl", "1ms", "short-lived"]).success();
    std::thread::sleep(std::time::Duration::from_millis(20));
    s.run(&["pop"]).nothing();
    let failed = |id: u64| (id, "failed".to_string());
    assert_eq!(s.states("default"), [failed(6), failed(11)]);
    assert_eq!(totals(&q), (10, 6));
}

fn operations_are_counted_as_published_and_consumed(engine: Engine) {
    let s = engine.fixture();
    for m in ["a", "b", "c", "d"] {
        s.push(&[m]);
    }
    for _ in 0..3 {
        s.run(&["pop"]).success();
    }
    // Four pushes and three pops: both rates are measured (or, on a machine slow
    // enough for a stall between two of them, read as stopped), none unknown.
    let o = stats_json(&s);
    assert!(o["arrival_rate_per_second"].is_number(), "{o}");
    assert!(o["rate_per_second"].is_number(), "{o}");
    assert!(o["last_consumed_seconds_ago"].is_number(), "{o}");
    assert_eq!(o["waiting"], 1);
    let wait = o["expected_wait_seconds"].as_f64();
    let rate = o["rate_per_second"].as_f64().unwrap();
    match o["trend"].as_str().unwrap() {
        "stalled" => assert!(wait.is_none(), "{o}"),
        _ => near(&o["expected_wait_seconds"], 1.0 / rate),
    }
}

/// Parses `text` with prometheus_client's parsers, OpenMetrics' and the Prometheus text
/// format's (node_exporter's textfile collector reads the latter), and prints each
/// sample as `name{labels} value`, sorted; `None` when the parser is missing.
fn parse_metrics(s: &Fixture, text: &str) -> Option<Vec<String>> {
    // Debian's python, which Debian's python3-prometheus-client is installed for.
    let python = "/usr/bin/python3";
    let check = tool_works(
        python,
        &["-c", "import prometheus_client.openmetrics.parser"],
    );
    if let Err(why) = check {
        skip(&format!(
            "python3 with prometheus_client (python3-prometheus-client): {why}"
        ));
        return None;
    }
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
from prometheus_client.parser import text_string_to_metric_families as prom
text = sys.stdin.read()
seen = {}
for name, parse in (("openmetrics", om), ("prometheus", prom)):
    samples = []
    for family in parse(text):
        assert family.type == "gauge", (name, family.name, family.type)
        assert family.documentation, (name, family.name)
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            samples.append(f"{s.name}{{{labels}}} {s.value:g}")
    seen[name] = sorted(samples)
assert seen["openmetrics"] == seen["prometheus"], seen
print("\n".join(seen["openmetrics"]))
"#;
    let out = s
        .sh(&format!("{python} -c '{}'", script.replace('\'', "'\\''")))
        .stdin(text)
        .run();
    assert_eq!(out.code, 0, "the parsers refused:\n{text}\n{out:?}");
    Some(out.text().lines().map(String::from).collect())
}

fn openmetrics_parses_as_openmetrics_and_as_the_prometheus_text_format(engine: Engine) {
    let s = engine.fixture();
    s.run(&["-q", "jobs", "push", "a", "bb"]).success();
    s.run(&["-q", "jobs", "push", "ccc"]).success();
    s.run(&["-q", "jobs", "pop"]).success();
    s.run(&["-q", "jobs", "pop"]).success();
    s.run(&["-q", "mail", "push", "--delay", "1h", "later"])
        .success();
    let out = s.run(&["stats", "--format", "openmetrics"]);
    out.success();
    let text = out.text();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let Some(samples) = parse_metrics(&s, &text) else {
        return;
    };
    for want in [
        r#"spool_messages{queue="jobs",state="waiting"} 1"#,
        r#"spool_messages{queue="jobs",state="claimed"} 0"#,
        r#"spool_messages{queue="mail",state="delayed"} 1"#,
        r#"spool_messages{queue="mail",state="waiting"} 0"#,
        r#"spool_waiting_bytes{queue="jobs"} 3"#,
        r#"spool_waiting_bytes{queue="mail"} 0"#,
    ] {
        assert!(
            samples.iter().any(|l| l == want),
            "{want} not in {samples:#?}"
        );
    }
    // The figures are those of --json.
    let json = json_lines(&s.run(&["-q", "jobs", "stats", "--json"]).stdout).remove(0);
    let value = |name: &str| {
        samples
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{name}{{queue=\"jobs\"}} ")))
            .map(|v| v.parse::<f64>().unwrap())
    };
    assert_eq!(
        value("spool_service_rate").is_some(),
        json["rate_per_second"].is_number()
    );
    assert!(
        value("spool_oldest_waiting_age_seconds").is_some(),
        "{samples:#?}"
    );
    assert_eq!(
        value("spool_oldest_waiting_age_seconds").is_some(),
        json["oldest_age_seconds"].is_number()
    );
    // Nothing waits in mail: no age, and a figure not known is left out, not 0.
    assert!(
        !samples
            .iter()
            .any(|l| l.starts_with(r#"spool_oldest_waiting_age_seconds{queue="mail"}"#)),
        "{samples:#?}"
    );
    assert!(
        !samples
            .iter()
            .any(|l| l.starts_with(r#"spool_service_rate{queue="mail"}"#)),
        "{samples:#?}"
    );
}

fn openmetrics_covers_every_queue_unless_one_is_named(engine: Engine) {
    let s = engine.fixture();
    s.run(&["-q", "a", "push", "x"]).success();
    s.run(&["-q", "b", "push", "y"]).success();
    let queues = |out: &crate::harness::Output| {
        out.success();
        let mut names: Vec<String> = out
            .text()
            .lines()
            .filter(|l| l.starts_with("spool_messages{"))
            .filter_map(|l| l.split('"').nth(1).map(String::from))
            .collect();
        names.dedup();
        names
    };
    assert_eq!(
        queues(&s.run(&["stats", "--format", "openmetrics"])),
        ["a", "b"]
    );
    assert_eq!(
        queues(&s.run(&["-q", "b", "stats", "--format", "openmetrics"])),
        ["b"]
    );
    let named = s
        .cmd()
        .env("SPOOL_QUEUE", "a")
        .args(["stats", "--format", "openmetrics"])
        .run();
    assert_eq!(queues(&named), ["a"]);
    // A collector reads it once per scrape: no --watch.
    s.run(&["stats", "--format", "openmetrics", "--watch"])
        .error();
}

fn watch_in_a_pipe_prints_one_line_per_queue_and_refresh(engine: Engine) {
    let s = engine.fixture();
    s.run(&["-q", "a", "push", "x"]).success();
    s.run(&["-q", "b", "push", "y", "z"]).success();
    // head closes the pipe after five lines: watch then ends quietly.
    let out = s
        .sh("spool stats --all --watch --interval 10ms | head -n 5")
        .run();
    out.success();
    let text = out.text();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert_eq!(lines[0][..3], ["TIME", "QUEUE", "WAITING"], "{text}");
    for (line, (queue, waiting)) in lines[1..]
        .iter()
        .zip([("a", "1"), ("b", "2")].iter().cycle())
    {
        assert!(crate::harness::parse_rfc3339(line[0]).is_some(), "{text}");
        assert_eq!((line[1], line[2]), (*queue, *waiting), "{text}");
        assert_eq!(line.len(), lines[0].len(), "{text}");
    }
    // One JSON object per queue and refresh with --json.
    let out = s
        .sh("spool -q b stats --json --watch --interval 10ms | head -n 3")
        .run();
    out.success();
    let objects = json_lines(&out.stdout);
    assert_eq!(objects.len(), 3, "{out:?}");
    assert!(
        objects
            .iter()
            .all(|o| o["queue"] == "b" && o["waiting"] == 2)
    );
}

#[test]
fn watch_on_a_terminal_redraws_with_a_chart_of_the_depth() {
    let s = Fixture::new();
    if let Err(why) = tool_works("script", &["--version"]) {
        return skip(&why);
    }
    s.push(&["a", "b", "c"]);
    let out = s
        .sh("script -qec 'timeout -s INT 1 spool stats --watch --interval 100ms' /dev/null")
        .run();
    let text = out.text_lossy().replace("\r\n", "\n");
    assert!(text.starts_with("\x1b[H\x1b[2J"), "{text:?}");
    let charts: Vec<&str> = text.lines().filter(|l| l.starts_with("depth:")).collect();
    assert!(!charts.is_empty(), "{text}");
    // Three waiting all along: every column at the top of the scale.
    for chart in charts {
        let bars: String = chart["depth:".len()..]
            .trim_start()
            .chars()
            .take_while(|c| !c.is_ascii_whitespace())
            .collect();
        assert!(
            !bars.is_empty() && bars.chars().all(|c| c == '█'),
            "{chart}"
        );
        assert!(chart.ends_with(", up to 3)"), "{chart}");
    }
}
