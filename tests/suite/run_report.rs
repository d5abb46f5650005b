//! What `spool run` tells: an exit status that says when a signal stopped it. The helpers
//! are in [`super::run`].

use rustix::process::Signal;

use crate::harness::{Engine, engine_tests, send_signal, wait_until};

use super::run::*;

engine_tests! {
    a_signal_that_stops_nothing_is_no_interruption,
}

/// Without --wait, a signal that came while the last message ran, or once --max was
/// reached, stopped nothing: run exits as it would have.
fn a_signal_that_stops_nothing_is_no_interruption(engine: Engine) {
    let script = r#"echo "start $SPOOL_ID" >> "$LOG"; sleep 1; exit 3"#;
    for (options, messages) in [(&[][..], &["last"][..]), (&["--max", "1"], &["1", "2"])] {
        let s = engine.fixture();
        s.push(messages);
        let run = spawn_sh(&s, options, script, &[]);
        wait_until("the command started", SOON, || logged(&s) == "start 1\n");
        send_signal(run.pid(), Signal::INT);
        let out = run.finish();
        out.exits(3);
    }
}
