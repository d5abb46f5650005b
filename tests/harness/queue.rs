//! Reading a queue through spool without a fixture (on a mount, in a hostile tree), as
//! the fault tests do: every step returns what went wrong instead of panicking, so that a
//! test reports all the problems it finds at once ([`Problems`]).

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Cmd, json_lines, names_in, now_ms};

/// One message of `list --state all --json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Id.
    pub id: u64,
    /// ready, delayed, claimed or failed.
    pub state: String,
    /// Payload bytes.
    pub size: u64,
    /// Claims made.
    pub attempts: u64,
}

/// `spool -q QUEUE list --state all --json`, which must exit 0 without warnings.
pub fn list_all(root: &Path, queue: &str) -> Result<Vec<Listed>, String> {
    let out = Cmd::at(root)
        .args(["-q", queue, "list", "--state", "all", "--json"])
        .run();
    out.check_success()?;
    Ok(json_lines(&out.stdout)
        .iter()
        .map(|v| Listed {
            id: v["id"].as_u64().expect("id"),
            state: v["state"].as_str().expect("state").to_string(),
            size: v["size"].as_u64().expect("size"),
            attempts: v["attempts"].as_u64().expect("attempts"),
        })
        .collect())
}

/// `(id, state)` pairs, for messages.
pub fn id_states(listed: &[Listed]) -> Vec<(u64, &str)> {
    listed.iter().map(|l| (l.id, l.state.as_str())).collect()
}

/// The lease deadlines (unix ms) of the claims in `claimed/`, read from their names;
/// `None` for a claim held by a process (no `l` field).
pub fn claim_leases(queue_dir: &Path) -> Vec<(String, Option<u64>)> {
    names_in(&queue_dir.join("claimed"))
        .into_iter()
        .map(|name| {
            let lease = name
                .split('.')
                .skip(1)
                .find_map(|f| f.strip_prefix('l').and_then(|v| v.parse().ok()));
            (name, lease)
        })
        .collect()
}

/// Pops every message of `queue` (waiting for leases to end, so that claims come back)
/// and returns the payloads in order. Each pop must exit 0 or 1 without warnings; once
/// the queue is empty, no claim may be left that nobody holds.
pub fn drain(root: &Path, queue: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut popped = Vec::new();
    let start = Instant::now();
    loop {
        let out = Cmd::at(root).args(["-q", queue, "pop"]).run();
        match out.code {
            0 if out.stderr.is_empty() => popped.push(out.stdout),
            1 if out.stderr.is_empty() && out.stdout.is_empty() => {
                let leases = claim_leases(&root.join(queue));
                if leases.is_empty() {
                    return Ok(popped);
                }
                if let Some((name, _)) = leases.iter().find(|(_, l)| l.is_none()) {
                    return Err(format!(
                        "pop found nothing, but the claim {name} of a dead process was not \
                         returned to the queue"
                    ));
                }
                let latest = leases.iter().filter_map(|(_, l)| *l).max().unwrap_or(0);
                if start.elapsed() > Duration::from_secs(30) {
                    return Err(format!("leases never end: {leases:?}"));
                }
                let wait = latest.saturating_sub(now_ms().max(0) as u64) + 20;
                std::thread::sleep(Duration::from_millis(wait.min(5000)));
            }
            _ => return Err(format!("pop while draining:\n{out:?}")),
        }
        if popped.len() > 100_000 {
            return Err("pop never ends".into());
        }
    }
}

/// Renders payloads for messages.
pub fn show(messages: &[Vec<u8>]) -> String {
    let shown: Vec<String> = messages
        .iter()
        .map(|m| {
            if m.len() > 40 {
                format!(
                    "<{} bytes {:?}…>",
                    m.len(),
                    String::from_utf8_lossy(&m[..20])
                )
            } else {
                format!("{:?}", String::from_utf8_lossy(m))
            }
        })
        .collect();
    format!("[{}]", shown.join(", "))
}

/// Byte strings from `&str`s.
pub fn bytes(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// Pushes `message` with `--print-id` and returns its id.
pub fn push_id(root: &Path, queue: &str, message: &str) -> Result<u64, String> {
    let out = Cmd::at(root)
        .args(["-q", queue, "push", "--print-id", message])
        .run();
    out.check_success()?;
    out.text_lossy()
        .trim_end()
        .parse()
        .map_err(|_| format!("push --print-id printed {:?}", out.text_lossy()))
}

/// The `next_id` of `stats --json`: the counter.
pub fn next_id(root: &Path, queue: &str) -> Result<u64, String> {
    let out = Cmd::at(root).args(["-q", queue, "stats", "--json"]).run();
    out.check_success()?;
    json_lines(&out.stdout)[0]["next_id"]
        .as_u64()
        .ok_or_else(|| format!("stats without next_id: {out:?}"))
}

/// Collects the problems one test finds, so that a run reports all of them at once.
#[derive(Default)]
pub struct Problems(pub Vec<String>);

impl Problems {
    /// Records `r`'s error, if any, under `context`.
    pub fn note(&mut self, context: &str, r: Result<(), String>) {
        if let Err(e) = r {
            self.0.push(format!("{context}: {e}"));
        }
    }

    /// Panics with every problem recorded.
    #[track_caller]
    pub fn assert_none(&self, what: &str) {
        if !self.0.is_empty() {
            let shown: Vec<&str> = self.0.iter().take(40).map(String::as_str).collect();
            panic!(
                "{what}: {} problem(s):\n\n{}{}",
                self.0.len(),
                shown.join("\n\n"),
                if self.0.len() > 40 { "\n\n..." } else { "" }
            );
        }
    }
}
