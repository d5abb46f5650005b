//! man/spool.1 and completions/ are generated from the clap definition (the completions
//! are what `spool completions SHELL` prints) and committed.
//! These tests regenerate them and fail when the committed copies are stale; run
//! `SPOOL_REGENERATE=1 cargo test generated` to rewrite them on purpose.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_mangen::Man;
use spool::cli::Cli;

/// Sections of the man page that are not in the clap definition.
const EXTRA_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
.B 0
Success.
.TP
.B 1
Nothing to return: \fBpop\fR, \fBpeek\fR or \fBclaim\fR found no message (or \fB\-\-timeout\fR
passed).
.TP
.B 2
An error: bad usage, an invalid queue name or token, or a failed system call. One line on
standard error says what failed, on which path, and why, for example
.br
\fBspool: write /home/u/.local/state/spool/default/tmp/1f9c03e2b7a45d10: No space left on device (nothing was pushed)\fR
.br
\fBspool\fR with no command prints its short help on standard error instead, and exits 2.
.TP
.B 3
\fBrun\fR: at least one message failed (it was retried or moved to failed);
\fBfsck\fR: problems were found and not repaired.
.TP
.B 130, 143
\fBrun\fR: SIGINT (130) or SIGTERM (143) stopped it before it drained its queue: it
took no more messages, and once its commands finished it exited as killed by the
signal, which the shell reports as 130 or 143 (as the first process of a PID namespace,
which the signal cannot kill, it exits with 130 or 143).
.PP
\fBrun\fR exits with the first of these that applies: killed by the signal when one stopped
it (with \fB\-\-wait\fR, any SIGINT or SIGTERM; without, when messages were left ready
for it, or a second signal was passed on to its commands); 2 on an error, including one
that did not stop it (a \fB\-\-joblog\fR line that could not be written, or a standard
output that closed: the messages whose output was lost stay in the queue); 3 when a
message failed; 0 when every message succeeded, or there were none.
.SH ENVIRONMENT
.TP
.B SPOOL_DIR
The spool directory, when \fB\-\-dir\fR is not given.
.TP
.B XDG_STATE_HOME
Without \fB\-\-dir\fR and \fBSPOOL_DIR\fR, the spool is \fI$XDG_STATE_HOME/spool\fR,
else \fI~/.local/state/spool\fR.
.TP
.B SPOOL_URL
The PostgreSQL database holding the queues (\fIpostgres://...\fR), when neither
\fB\-\-url\fR nor \fB\-\-dir\fR is given.
.TP
.B SPOOL_QUEUE
The queue, when \fB\-q\fR is not given; else \fBdefault\fR.
.PP
\fBrun\fR gives its command \fBSPOOL_ID\fR, \fBSPOOL_QUEUE\fR, \fBSPOOL_ATTEMPT\fR and
\fBSPOOL_DIR\fR.
.SH FILES
Each queue is a directory of the spool (mode 0700) holding, in format 1:
.TP
.I format
The text "spool-queue 1" and a newline; written last when the queue is created.
.TP
.I counter
Its length is the next id to allocate; an flock on it is the producer lock.
.TP
.I head
Its length is a lower bound of the keys in ready/; an flock on it is the consumer lock.
.TP
.I lanes, due, rates
The priority lanes in use (a bit set, as a length), the earliest due time of a delayed
message (unix seconds, as a length), and the rates of publishing and of consumption that
\fBstats\fR reads (two records of 32 bytes).
.TP
.I tmp/
Messages being written, each flocked by its writer; unlocked leftovers of a crash are
removed later.
.TP
.I ready/BUCKET/NAME, ready-P/BUCKET/NAME
Waiting messages (mode 0600) of priority 0 and P, one file each, whose content is exactly
the payload. A fresh message's NAME is its id in 20 digits and BUCKET is the id / 1000 in
17 digits, so \fBls\fR and shell globs list messages in queue order: \fBcat ready/*/*\fR
prints the waiting messages of priority 0. The modification time is the enqueue time.
.TP
.I delayed/, claimed/, failed/
Messages waiting for their time, handed out, and dead. NAME is a 20-digit key followed by
fields such as \fI.a2\fR (attempts), \fI.t9f3a...\fR (claim token), \fI.l<ms>\fR (lease
deadline) or \fI.rexpired\fR (why it failed).
.PP
Entries that are not regular files with one link, or whose names are not of these forms,
are skipped with a warning: never read, followed or deleted. The full format is in
docs/FORMAT.md.
.SH GUARANTEES
When \fBpush\fR exits 0, its messages are durable: each file's data was synced before a
rename that cannot replace an existing file published it, and the directory was synced
after. Ids increase strictly and are never reused, after \fBclear\fR and after a crash.
\fBpop\fR deletes a message only after writing all its bytes to standard output (and
syncing it, when it is a regular file); if the write fails, the message stays. With
\fB\-\-lines\fR or \fB\-\-null\fR, a message of up to 64 KiB leaves with its separator in one
write: consumers appending to one file never mix their records, nor, up to 4096 bytes
(PIPE_BUF), consumers sharing one pipe. Longer messages are streamed. A message
held by a running \fBpop\fR or \fBrun\fR is guarded by an flock: when that process dies,
the next consumer puts the message back at once. A \fBclaim\fR is guarded by its lease;
only its own token can ack, nack or extend it. Delivery is at least once: after a crash
or an ended lease, a message may be delivered again. Durability assumes a filesystem that
journals metadata in order, such as ext4 or xfs.
.SH EXAMPLES
.nf
echo hello | spool push && spool pop
producer | spool \-q jobs push \-\-lines
spool \-q jobs pop \-\-wait \-n 100 \-\-lines | consumer
while token=$(spool claim \-\-wait \-\-lease 10m); do
    if spool show "$token" | process; then spool ack "$token"
    else spool nack "$token" \-\-delay 1m; fi
done
spool \-q nightly run \-j 4 \-\- ./job.sh || echo "some jobs failed"
spool push \-\-delay 1h \-\-priority 9 "remind me"
spool list \-\-state failed; spool requeue \-\-all
# CENTRAL: a URL (postgres://spool@db.example/queues) or a spool directory
spool \-q outbox relay \-\-to "$CENTRAL" \-\-to\-queue jobs
spool \-q inbox relay \-\-from "$CENTRAL" \-\-from\-queue work
.fi
.SH "SEE ALSO"
.BR flock (2),
.BR rename (2),
.BR fsync (2),
.BR inotify (7)
"#;

fn render_man() -> String {
    let mut cmd = Cli::command();
    cmd.build();
    let man = Man::new(cmd.clone())
        .date("")
        .source(format!("spool {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    man.render_options_section(&mut out).unwrap();
    out.extend_from_slice(b".SH COMMANDS\n");
    for sub in cmd.get_subcommands() {
        let name = format!("spool {}", sub.get_name());
        let mut sub = sub.clone().bin_name(&name).display_name(&name);
        for global in ["dir", "queue", "help", "version"] {
            if sub.get_arguments().any(|a| a.get_id() == global) {
                sub = sub.mut_arg(global, |a| a.hide(true));
            }
        }
        let page = Man::new(sub.clone());
        let mut part = Vec::new();
        page.render_synopsis_section(&mut part).unwrap();
        page.render_description_section(&mut part).unwrap();
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            page.render_options_section(&mut part).unwrap();
        }
        let part = String::from_utf8(part).unwrap();
        let mut first = true;
        for line in part.lines() {
            if line.starts_with(".SH ") {
                if first {
                    out.extend_from_slice(format!(".SS \"{name}\"\n").as_bytes());
                    first = false;
                } else {
                    out.extend_from_slice(b".PP\n");
                }
                continue;
            }
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    out.extend_from_slice(EXTRA_SECTIONS.as_bytes());
    man.render_version_section(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// The script `spool completions SHELL` prints: clap_complete's, with spool's additions.
fn render_completions(shell: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spool"))
        .args(["completions", shell])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "spool completions {shell}");
    String::from_utf8(out.stdout).unwrap()
}

fn check(path: &str, fresh: &str) {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os("SPOOL_REGENERATE").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is stale: run `SPOOL_REGENERATE=1 cargo test generated` and commit the result",
        path.display()
    );
}

#[test]
fn generated_man_page_is_current() {
    let man = render_man();
    assert!(
        man.contains(".SS \"spool push\""),
        "every command has a section"
    );
    assert!(man.contains(".SH FILES"));
    check("man/spool.1", &man);
}

#[test]
fn generated_completions_are_current() {
    check("completions/spool.bash", &render_completions("bash"));
    check("completions/_spool", &render_completions("zsh"));
    check("completions/spool.fish", &render_completions("fish"));
}
