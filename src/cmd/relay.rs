//! `spool relay`: messages carried from a source queue to a destination queue, each at
//! its own place (a spool directory or a database), through outages of either.
//!
//! A batch goes in three steps: take up to N ready messages from the source, held for this
//! process (a relay that dies holds nothing: its claims return at the next take); publish
//! them at the destination in one batch (one transaction, or one sync), each with the key
//! `relay:IDENTITY:ID` of its source queue and id, its priority and its expiry; then remove
//! them from the source and sync. A message thus leaves the source only once the
//! destination committed it. A relay killed between the last two steps leaves the batch
//! at the source; the next relay sends it again, and the destination, which holds those
//! keys, adds nothing. (A message that a consumer of the destination took and finished in
//! that instant no longer holds its key, and would come a second time.)
//!
//! One relay per source queue: it takes the source's relay lock, held while it runs, so
//! that batches leave in the source's order. A failure of either side closes that side;
//! without `--wait` the relay then exits (75 when it was the other place's), with `--wait`
//! it says so once, tries again after a pause that doubles up to [`BACKOFF_MAX`], and says
//! when it is back.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::failure::{Failure, Outcome};
use crate::cli::RelayArgs;
use crate::exit::ExitStatus;
use crate::store::local::Spool;
use crate::store::postgres::{self, Postgres};
use crate::store::{
    self, Batch, Claim, Engine, Error, Hold, Meta, PushOptions, Queue, TakeOptions, Verdict, Waiter,
};
use crate::timefmt;

/// The first pause after a failure.
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
/// The longest pause between attempts.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// With `--wait`, a line of progress at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);
/// A batch stops growing once its payloads pass this many bytes (a database's batch is
/// held in memory).
const BATCH_BYTES: u64 = 16 << 20;
/// The reason of a message the destination refused.
const REFUSED: &str = "refused";
/// The reason of a message that could not be read at the source.
const UNREADABLE: &str = "unreadable";

/// How the relay takes from its source: held for this process, no limit of attempts.
const TAKE: TakeOptions = TakeOptions {
    hold: Hold::Process,
    max_attempts: None,
};

/// A claim of the queues of engine `E`.
type ClaimOf<E> = <<E as Engine>::Queue as Queue>::Claim;

/// Where a queue lives, as the command line named it.
#[derive(Clone)]
pub(super) enum Place {
    /// A spool directory.
    Dir {
        root: PathBuf,
        allow_network_fs: bool,
    },
    /// A PostgreSQL database (the URL was checked).
    Url(String),
}

impl Place {
    /// `--to` / `--from`: a URL when it has a PostgreSQL scheme, else a directory.
    fn parse(value: OsString, allow_network_fs: bool) -> Result<Place, Failure> {
        let text = value.to_string_lossy();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let url = value
                .into_string()
                .map_err(|_| Failure::Usage("relay: the URL is not valid UTF-8".into()))?;
            postgres::check_url(&url).map_err(|e| Failure::Usage(format!("relay: {e}")))?;
            Ok(Place::Url(url))
        } else if text.contains("://") {
            // Masked: a mistyped scheme may come with a password.
            Err(Failure::Usage(format!(
                "relay: {}: not a PostgreSQL URL (postgres://…) nor a directory",
                crate::excerpt::cut(&postgres::redact(&text))
            )))
        } else if text.is_empty() {
            Err(Failure::Usage("relay: an empty place".into()))
        } else {
            Ok(Place::Dir {
                root: PathBuf::from(value),
                allow_network_fs,
            })
        }
    }

    /// The place as logs show it (a password masked).
    fn shown(&self) -> String {
        match self {
            Place::Dir { root, .. } => root.display().to_string(),
            Place::Url(url) => postgres::redact(url),
        }
    }
}

/// Opens an engine of a place, anew after a failure.
trait Open: Engine + Sized {
    fn open_place(place: &Place) -> store::Result<Self>;
}

impl Open for Spool {
    fn open_place(place: &Place) -> store::Result<Spool> {
        match place {
            Place::Dir {
                root,
                allow_network_fs,
            } => Ok(Spool::new(root.clone(), super::warn_once).allow_network_fs(*allow_network_fs)),
            Place::Url(_) => unreachable!("chosen by the place"),
        }
    }
}

impl Open for Postgres {
    fn open_place(place: &Place) -> store::Result<Postgres> {
        match place {
            Place::Url(url) => Postgres::new(url),
            Place::Dir { .. } => unreachable!("chosen by the place"),
        }
    }
}

/// Runs `spool relay` between the queue `queue` at `here` and the place of `--to` or
/// `--from`.
pub(super) fn relay(here: Place, queue: &str, args: RelayArgs) -> Outcome {
    let allow_network_fs = matches!(
        here,
        Place::Dir {
            allow_network_fs: true,
            ..
        }
    );
    let (other, other_queue, outbound) = match (args.to.clone(), args.from.clone()) {
        (Some(to), None) => (to, args.to_queue.clone(), true),
        (None, Some(from)) => (from, args.from_queue.clone(), false),
        _ => unreachable!("clap requires one of --to and --from"),
    };
    let other = Place::parse(other, allow_network_fs)?;
    let other_queue = other_queue.unwrap_or_else(|| queue.to_string());
    store::check_queue_name(queue)?;
    store::check_queue_name(&other_queue)?;
    let here = End {
        place: here,
        queue: queue.to_string(),
        remote: false,
    };
    let other = End {
        place: other,
        queue: other_queue,
        remote: true,
    };
    let (source, destination) = if outbound {
        (here, other)
    } else {
        (other, here)
    };
    match (&source.place, &destination.place) {
        (Place::Dir { .. }, Place::Dir { .. }) => {
            forward::<Spool, Spool>(source, destination, &args)
        }
        (Place::Dir { .. }, Place::Url(_)) => {
            forward::<Spool, Postgres>(source, destination, &args)
        }
        (Place::Url(_), Place::Dir { .. }) => {
            forward::<Postgres, Spool>(source, destination, &args)
        }
        (Place::Url(_), Place::Url(_)) => forward::<Postgres, Postgres>(source, destination, &args),
    }
}

/// One end of the relay: a queue at a place.
struct End {
    place: Place,
    queue: String,
    /// The place of `--to` or `--from` (its failures exit 75), not the queue's own.
    remote: bool,
}

impl End {
    fn shown(&self) -> String {
        format!("{} at {}", self.queue, self.place.shown())
    }
}

/// An end, opened: its engine and queue, dropped after a failure and opened again.
struct Side<E: Open> {
    end: End,
    engine: Option<E>,
    queue: Option<E::Queue>,
    waiter: Option<<E::Queue as Queue>::Waiter>,
    /// This opening holds the relay lock (a source's): it goes with the handle.
    locked: bool,
    /// The identity of the queue last checked against the destination (a source's).
    identity: Option<String>,
}

impl<E: Open> Side<E> {
    fn new(end: End) -> Self {
        Side {
            end,
            engine: None,
            queue: None,
            waiter: None,
            locked: false,
            identity: None,
        }
    }

    /// The queue, opened (or, with `create`, made) if needed; `None`: it does not exist.
    fn queue(&mut self, create: bool, watch: bool) -> store::Result<Option<&E::Queue>> {
        if self.queue.is_none() {
            if self.engine.is_none() {
                self.engine = Some(E::open_place(&self.end.place)?);
            }
            let engine = self.engine.as_ref().expect("opened above");
            let queue = if create {
                Some(engine.create(&self.end.queue)?)
            } else {
                engine.open(&self.end.queue)?
            };
            if let Some(q) = &queue
                && watch
            {
                // Watching before looking, so that no push between the two is missed.
                self.waiter = Some(q.waiter());
            }
            self.queue = queue;
        }
        Ok(self.queue.as_ref())
    }

    /// Closes the side after a failure (a database's connection too).
    fn close(&mut self) {
        self.waiter = None;
        self.queue = None;
        self.engine = None;
        self.locked = false;
        self.identity = None;
    }
}

/// A failure of one side.
enum Fault {
    Source(Error),
    Destination(Error),
    /// The relay cannot run at all: a usage error.
    Refuse(Failure),
    /// Another relay of the source runs: a one-shot relay leaves it the work, and says
    /// so (exit 75: try again later).
    Busy(String),
}

/// What one batch did.
#[derive(Default)]
struct Moved {
    /// The destination answered (the batch was published, or the queues compared).
    reached_destination: bool,
    forwarded: u64,
    /// Sent, and found already there (a batch sent again).
    already: u64,
    refused: u64,
}

/// The signals that stop the relay, as bytes on sockets.
struct Stops {
    int: UnixStream,
    term: UnixStream,
    ids: Vec<signal_hook::SigId>,
}

impl Stops {
    fn new() -> Result<Stops, Failure> {
        let err = |e| Failure::Store(Error::io("socketpair", "signals", e));
        let pair =
            || UnixStream::pair().and_then(|(r, w)| r.set_nonblocking(true).map(|()| (r, w)));
        let (int, int_w) = pair().map_err(err)?;
        let (term, term_w) = pair().map_err(err)?;
        let mut ids = Vec::new();
        for (sig, w) in [
            (signal_hook::consts::SIGINT, int_w),
            (signal_hook::consts::SIGTERM, term_w),
        ] {
            ids.push(
                signal_hook::low_level::pipe::register(sig, w)
                    .map_err(|e| Failure::Store(Error::io("sigaction", "signals", e)))?,
            );
        }
        Ok(Stops { int, term, ids })
    }

    /// The signal that came, if one did.
    fn stopped(&self) -> Option<ExitStatus> {
        let came = |s: &UnixStream| {
            let mut buf = [0u8; 16];
            matches!(std::io::Read::read(&mut &*s, &mut buf), Ok(n) if n > 0)
        };
        if came(&self.int) {
            Some(ExitStatus::Interrupted)
        } else if came(&self.term) {
            Some(ExitStatus::Terminated)
        } else {
            None
        }
    }
}

impl Drop for Stops {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// The relay's state between batches.
struct Relay<'a> {
    args: &'a RelayArgs,
    /// `SOURCE -> DESTINATION`, for its lines.
    route: String,
    forwarded: u64,
    refused: u64,
    /// Forwarded since the last line of progress, and when that was.
    since_line: u64,
    line_at: Instant,
    /// Since when a side has been failing, and the failure.
    /// (when, when by the clock, whether it was the destination).
    down: Option<(Instant, SystemTime, bool)>,
    backoff: Duration,
    /// The relay lock was held once: not holding it later is a pause, not a refusal.
    ever_locked: bool,
    /// Ids of the source sent in a batch whose commit went unanswered: sent again, they
    /// may be found at the destination already, which is no clash.
    unsure: std::collections::HashSet<u64>,
}

impl Relay<'_> {
    fn say(&self, what: &str) {
        eprintln!("spool: relay {}: {what}", self.route);
    }
}

fn forward<S: Open, D: Open>(source: End, destination: End, args: &RelayArgs) -> Outcome {
    let route = format!("{} -> {}", source.shown(), destination.shown());
    let mut src = Side::<S>::new(source);
    let mut dst = Side::<D>::new(destination);
    let stops = Stops::new()?;
    let mut relay = Relay {
        args,
        route,
        forwarded: 0,
        refused: 0,
        since_line: 0,
        line_at: Instant::now(),
        down: None,
        backoff: BACKOFF_FIRST,
        ever_locked: false,
        unsure: std::collections::HashSet::new(),
    };
    loop {
        if let Some(stop) = stops.stopped() {
            relay.stopping(stop);
            return Ok(stop);
        }
        // A side that fails may take its time to say so (a cut network: until the
        // connection's timeout): it was down from the start of the batch.
        let started = Instant::now();
        let step = batch(&mut src, &mut dst, args.batch, &mut relay);
        match step {
            Ok(moved) => {
                // Back when the side that failed answered: a batch that found the source
                // empty says nothing of a destination that was down.
                let back = match relay.down {
                    Some((_, _, destination)) => !destination || moved.reached_destination,
                    None => false,
                };
                if back && let Some((at, _, _)) = relay.down.take() {
                    relay.say(&format!(
                        "up again after {}; forwarded {} so far",
                        timefmt::age(at.elapsed().as_secs_f64()),
                        relay.forwarded + moved.forwarded
                    ));
                }
                relay.backoff = BACKOFF_FIRST;
                relay.forwarded += moved.forwarded;
                relay.refused += moved.refused;
                relay.since_line += moved.forwarded;
                if moved.forwarded + moved.already + moved.refused > 0 {
                    if args.wait && relay.line_at.elapsed() >= PROGRESS_EVERY {
                        relay.progress(&mut src);
                    }
                    continue;
                }
                if !args.wait {
                    return Ok(if relay.refused > 0 {
                        ExitStatus::SomeFailed
                    } else {
                        ExitStatus::Success
                    });
                }
                if relay.since_line > 0 && relay.line_at.elapsed() >= PROGRESS_EVERY {
                    relay.progress(&mut src);
                }
                idle(&mut src, &stops);
            }
            Err(Fault::Refuse(failure)) => return Err(failure),
            Err(Fault::Busy(why)) => {
                relay.say(&why);
                return Ok(ExitStatus::Unreachable);
            }
            Err(fault) => {
                let (side_remote, error, at_destination) = match fault {
                    Fault::Source(e) => {
                        let remote = src.end.remote;
                        src.close();
                        (remote, e, false)
                    }
                    Fault::Destination(e) => {
                        let remote = dst.end.remote;
                        dst.close();
                        (remote, e, true)
                    }
                    Fault::Refuse(_) | Fault::Busy(_) => unreachable!("matched above"),
                };
                if !args.wait {
                    relay.say(&format!(
                        "{error} (forwarded {}; the rest waits at the source)",
                        relay.forwarded
                    ));
                    return Ok(if side_remote {
                        ExitStatus::Unreachable
                    } else {
                        ExitStatus::Error
                    });
                }
                if relay.down.is_none() {
                    let now = SystemTime::now();
                    let since = now.checked_sub(started.elapsed()).unwrap_or(now);
                    relay.down = Some((started, since, at_destination));
                    relay.say(&format!(
                        "down since {}: {error}; trying again",
                        timefmt::rfc3339(since)
                    ));
                }
                if let Some(stop) = pause::<S::Queue>(relay.backoff, &stops) {
                    relay.stopping(stop);
                    return Ok(stop);
                }
                relay.backoff = (relay.backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

impl Relay<'_> {
    /// A line of progress: forwarded since the last, in all, and what waits.
    fn progress<S: Open>(&mut self, src: &mut Side<S>) {
        let waiting = src
            .queue
            .as_ref()
            .and_then(|q| q.waiting().ok())
            .map_or(String::new(), |n| format!(", {n} waiting"));
        self.say(&format!(
            "forwarded {} ({} in all){waiting}",
            self.since_line, self.forwarded
        ));
        self.since_line = 0;
        self.line_at = Instant::now();
    }

    /// The last line of a relay that a signal stopped.
    fn stopping(&self, _stop: ExitStatus) {
        if self.args.wait {
            self.say(&format!("stopped; forwarded {}", self.forwarded));
        }
    }
}

/// Sleeps until the source may have changed, or a signal came.
fn idle<S: Open>(src: &mut Side<S>, stops: &Stops) {
    let mut sleep = store::POLL_INTERVAL;
    if let Some(Ok(Some(due))) = src.queue.as_ref().map(|q| q.next_due()) {
        sleep = sleep.min(Duration::from_millis(due.saturating_sub(store::now_ms())));
    }
    let sleep = sleep.max(Duration::from_millis(1));
    let extra = [stops.int.as_fd(), stops.term.as_fd()];
    match src.waiter.as_mut() {
        Some(waiter) => {
            waiter.wait_also(sleep, &extra, true);
        }
        None => {
            <S::Queue as Queue>::Waiter::default().wait_also(sleep, &extra, false);
        }
    }
}

/// Sleeps `pause`, or until a signal comes: which one.
fn pause<Q: Queue>(pause: Duration, stops: &Stops) -> Option<ExitStatus> {
    let extra = [stops.int.as_fd(), stops.term.as_fd()];
    let deadline = Instant::now() + pause;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        // A waiter that watches nothing: a sleep that a signal ends.
        let ready = Q::Waiter::default().wait_also(left, &extra, false);
        if ready != 0 {
            return stops.stopped();
        }
    }
}

/// Forwards one batch: `Ok` with what moved (nothing: the source is empty or missing).
fn batch<S: Open, D: Open>(
    src: &mut Side<S>,
    dst: &mut Side<D>,
    n: usize,
    relay: &mut Relay<'_>,
) -> Result<Moved, Fault> {
    let wait = relay.args.wait;
    if src.queue(false, wait).map_err(Fault::Source)?.is_none() {
        return Ok(Moved::default());
    }
    let source = src.queue.as_ref().expect("opened above");
    if !src.locked {
        if !source.lock_relay().map_err(Fault::Source)? {
            let held = format!("another relay is running from {}", src.end.queue);
            // Refused at the start; later, the holder may be this relay's own session,
            // cut off and not yet ended by the server: wait for it to go.
            if !wait {
                return Err(Fault::Busy(held));
            }
            if !relay.ever_locked {
                return Err(Fault::Refuse(Failure::Usage(format!(
                    "relay {}: {held}",
                    relay.route
                ))));
            }
            return Err(Fault::Source(Error::invalid(
                format!("lock {}", src.end.queue),
                None,
                held,
            )));
        }
        src.locked = true;
        relay.ever_locked = true;
    }
    let claims = take_batch(source, n).map_err(Fault::Source)?;
    if claims.is_empty() {
        return Ok(Moved::default());
    }
    // A batch given back after a failure. If that fails too, the source is closed
    // (the caller does so on a source's fault), which ends this process's hold: what it
    // held returns to the queue.
    let give_back = |source: &S::Queue, claims: Vec<ClaimOf<S>>, fault: Fault| -> Fault {
        match source.give_back(claims) {
            Ok(()) => fault,
            Err(e) => Fault::Source(e),
        }
    };
    // The source's identity, asked at each batch: a queue removed and made again under
    // the same name is another queue, whose ids start again, and a database's queue
    // handle does not notice. The destination is compared with it when it changes.
    let ident = match source.identity() {
        Ok(ident) => ident,
        Err(e) => {
            return Err(give_back(source, claims, Fault::Source(e)));
        }
    };
    if src.identity.as_ref() != Some(&ident) {
        let same = dst
            .queue(true, false)
            .and_then(|t| t.expect("created").identity())
            .map(|theirs| theirs == ident);
        match same {
            Ok(false) => {}
            Ok(true) => {
                return Err(give_back(
                    source,
                    claims,
                    Fault::Refuse(Failure::Usage(format!(
                        "relay {}: the source and the destination are the same queue",
                        relay.route
                    ))),
                ));
            }
            Err(e) => {
                return Err(give_back(source, claims, Fault::Destination(e)));
            }
        }
        src.identity = Some(ident.clone());
    }
    let target = match dst.queue(true, false) {
        Ok(Some(t)) => t,
        Ok(None) => unreachable!("created"),
        Err(e) => {
            return Err(give_back(source, claims, Fault::Destination(e)));
        }
    };
    let mut staged = match target.stage(claims.len() > 1) {
        Ok(b) => b,
        Err(e) => {
            return Err(give_back(source, claims, Fault::Destination(e)));
        }
    };
    let mut sent: Vec<ClaimOf<S>> = Vec::with_capacity(claims.len());
    // Messages that cannot go: refused by the destination, or unreadable here.
    let mut set_aside: Vec<(ClaimOf<S>, &'static str, Error)> = Vec::new();
    let mut claims = claims.into_iter();
    while let Some(mut claim) = claims.next() {
        let meta = Meta {
            opts: PushOptions {
                priority: claim.priority(),
                due: None,
                expires: claim.expires(),
            },
            // The message's own key, which also serves to send it once; else one made
            // of where it comes from.
            key: Some(
                claim
                    .key()
                    .map_or_else(|| format!("relay:{ident}:{}", claim.id()), str::to_string),
            ),
        };
        let mut unreadable = None;
        let added = staged.add_with(meta, |sink| copy(claim.payload(), sink, &mut unreadable));
        match (added, unreadable) {
            (Ok(()), _) => sent.push(claim),
            (Err(_), Some(e)) => {
                // Part of it may be staged: the batch goes, the others go back, and this
                // one moves aside; the next batch goes on without it.
                drop(staged);
                let mut back: Vec<ClaimOf<S>> = sent;
                back.extend(set_aside.into_iter().map(|(c, _, _)| c));
                back.extend(claims);
                source.give_back(back).map_err(Fault::Source)?;
                let id = claim.id();
                source
                    .settle(claim, Verdict::Fail { reason: UNREADABLE })
                    .map_err(Fault::Source)?;
                relay.say(&format!(
                    "message {id} not forwarded: {e} (moved to failed, reason {UNREADABLE})"
                ));
                return Ok(Moved {
                    refused: 1,
                    ..Moved::default()
                });
            }
            (Err(e), None) if e.is_refusal() => set_aside.push((claim, REFUSED, e)),
            (Err(e), None) => {
                drop(staged);
                let mut back: Vec<ClaimOf<S>> = sent;
                back.push(claim);
                back.extend(set_aside.into_iter().map(|(c, _, _)| c));
                back.extend(claims);
                return Err(give_back(source, back, Fault::Destination(e)));
            }
        }
    }
    let published = match staged.publish(PushOptions::default()) {
        Ok(published) => published,
        Err(e) => {
            // Perhaps committed all the same (the answer lost with the connection): when
            // these come again, the destination may hold them already.
            relay.unsure.extend(sent.iter().map(|c| c.id()));
            let mut back = sent;
            back.extend(set_aside.into_iter().map(|(c, _, _)| c));
            return Err(give_back(source, back, Fault::Destination(e)));
        }
    };
    // Committed at the destination: now, and only now, removed from the source.
    // Those the destination already held (sent before, by a relay cut short) count as
    // sent then, not now.
    let forwarded = published.len();
    // A message with a key of its own, taken for the first time (a relay that died left
    // it claimed: the next take counts it again) and not in a batch whose commit went
    // unanswered here, that the destination holds already was not sent before: another
    // message there holds its key. It is not added, and that is said. (Under the key the
    // relay makes, a duplicate is this message sent again: a relay that gave its batch
    // back after an unanswered commit cannot tell.)
    for dup in &published.duplicates {
        if let Some(c) = sent.get(dup.index)
            && let Some(key) = c.key()
            && c.attempts() <= 1
            && !relay.unsure.contains(&c.id())
        {
            relay.say(&format!(
                "message {} not added: message {} there holds its key {key}",
                c.id(),
                dup.id
            ));
        }
    }
    for c in &sent {
        relay.unsure.remove(&c.id());
    }
    let mut removed = 0;
    source
        .remove_delivered(sent, &mut removed)
        .and_then(|()| source.sync_removals(removed))
        .map_err(Fault::Source)?;
    let mut moved = Moved {
        reached_destination: true,
        forwarded,
        already: published.duplicates.len() as u64,
        refused: 0,
    };
    for (claim, reason, why) in set_aside {
        let id = claim.id();
        source
            .settle(claim, Verdict::Fail { reason })
            .map_err(Fault::Source)?;
        relay.say(&format!(
            "message {id} not forwarded: {why} (moved to failed, reason {reason})"
        ));
        moved.refused += 1;
    }
    Ok(moved)
}

/// Takes up to `n` messages and not much over [`BATCH_BYTES`] of payload (a database
/// holds what it takes in memory): one first, then at most twice as many as taken so far,
/// and no more than the payloads so far say fits; a take that passes the bound gives its
/// rest back at once. (A take first looks for abandoned claims: a few takes a batch, not
/// one a message.)
fn take_batch<Q: Queue>(source: &Q, n: usize) -> store::Result<Vec<Q::Claim>> {
    let mut claims: Vec<Q::Claim> = Vec::new();
    let mut bytes = 0u64;
    while claims.len() < n && bytes < BATCH_BYTES {
        let want = if claims.is_empty() {
            1
        } else {
            let average = (bytes / claims.len() as u64).max(1);
            let fits = ((BATCH_BYTES - bytes) / average).max(1) as usize;
            fits.min(claims.len() * 2).min(n - claims.len())
        };
        let more = source.take(want, TAKE)?;
        if more.is_empty() {
            break;
        }
        let mut more = more.into_iter();
        for mut c in more.by_ref() {
            // The size only paces the batch: one that cannot be told counts nothing.
            bytes += c.payload().size().unwrap_or(0);
            claims.push(c);
            if bytes >= BATCH_BYTES {
                break;
            }
        }
        let rest: Vec<Q::Claim> = more.collect();
        if !rest.is_empty() {
            source.give_back(rest)?;
        }
    }
    Ok(claims)
}

/// Copies a payload into a sink; a failure to read it is kept in `unreadable`.
fn copy(
    payload: &mut store::Payload,
    sink: &mut store::Sink<'_>,
    unreadable: &mut Option<Error>,
) -> store::Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match std::io::Read::read(payload, &mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                *unreadable = Some(Error::io("read", "the message", e));
                return Err(Error::invalid(
                    "read",
                    None,
                    "the message could not be read",
                ));
            }
        };
        sink.write_all(&buf[..n])?;
    }
}
