//! `spool fsck`: finds what is wrong in a queue and, with `repair`, mends it.
//!
//! It holds both locks for the whole check, so it sees a still queue. It never deletes a
//! message: what it cannot use (foreign names, symlinks, FIFOs, files with several links,
//! unreadable files) is moved into `corrupt/` under a name that says where it was, and
//! only spool's own leftovers (orphaned temporary files) are removed. Key files are
//! checked last, against the live messages seen: one that names no live message with its
//! key is removed (a pending one too: its push was cut short before its message
//! appeared), a pending one that names a live message is made held, and a live keyed
//! message whose key is free takes it again.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{FileType, OFlags};
use rustix::io::Errno;

use super::Queue;
use super::access::Identity;
use super::entry::Entry;
use super::layout::{self, *};
use super::lengths::{Consumer, Producer};
use super::sweep::Probe;
use super::sys;
use crate::clock::now_ms;
use crate::store::Finding;
use crate::store::error::{Error, Result};

struct Check<'q> {
    queue: &'q Queue,
    repair: bool,
    findings: Vec<Finding>,
    /// The highest key or id seen anywhere: the counter must be above it.
    highest: u64,
    /// The lowest key in lane 0: the head must not be above it.
    lowest_ready: Option<u64>,
    /// Lanes that hold messages.
    lanes: u64,
    /// The earliest due time in delayed/ (unix ms).
    earliest_due: Option<u64>,
    /// The live (ready, delayed, claimed) messages with a deduplication key: their ids
    /// by key, in the order seen.
    live_keys: BTreeMap<String, Vec<u64>>,
}

impl Queue {
    /// Checks the queue; with `repair`, mends what it finds. Returns the findings.
    pub fn fsck(&self, repair: bool) -> Result<Vec<Finding>> {
        let mut check = Check {
            queue: self,
            repair,
            findings: Vec::new(),
            highest: 0,
            lowest_ready: None,
            lanes: 0,
            earliest_due: None,
            live_keys: BTreeMap::new(),
        };
        // The lock files first: without them there is nothing to lock.
        check.queue_dir()?;
        let [counter, head] = [COUNTER, HEAD].map(|rel| self.at(rel).display().to_string());
        let broken = |f: &Finding| f.place == counter || f.place == head;
        if !repair && check.findings.iter().any(broken) {
            return Ok(check.findings);
        }
        let mut c = self.lock_consumer()?;
        let producer = self.lock_producer()?;
        check.modes()?;
        check.tmp()?;
        for lane in 0..=9u8 {
            check.lane(lane)?;
        }
        check.flat(DELAYED)?;
        check.flat(FAILED)?;
        check.claims(&mut c)?;
        check.keys()?;
        check.counters(&producer, &mut c)?;
        drop(producer);
        self.save_head(&mut c)?;
        Ok(check.findings)
    }
}

impl Check<'_> {
    fn found(&mut self, rel: &str, problem: impl Into<String>, repair: Option<String>) {
        self.findings.push(Finding {
            place: if rel == "." {
                self.queue.path().display().to_string()
            } else {
                self.queue.at(rel).display().to_string()
            },
            problem: problem.into(),
            repair: if self.repair { repair } else { None },
        });
    }

    /// Moves `name` of `dir` (at `rel`) into corrupt/, when repairing.
    fn quarantine(
        &mut self,
        dir: BorrowedFd<'_>,
        rel: &str,
        name: &str,
        problem: String,
    ) -> Result<()> {
        let path = if rel == "." {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let target = format!("{}.{}", path.replace('/', "%"), layout::token());
        let action = format!("moved to corrupt/{target}");
        if self.repair {
            // A message set aside holds its key no more: released first (both locks held).
            if rel != "."
                && rel != TMP
                && rel != KEYS
                && let Some(entry) = Entry::parse(name).filter(|e| e.dedup.is_some())
            {
                self.queue.release_keys(std::iter::once(&entry))?;
            }
            let corrupt = self.queue.state_dir(CORRUPT)?;
            match sys::rename_noreplace(dir, name, corrupt.as_fd(), &target) {
                Ok(()) => sys::fsync(&corrupt)
                    .map_err(|e| Error::io("fsync", self.queue.at(CORRUPT), e))?,
                Err(Errno::NOENT) => return Ok(()),
                Err(e) => return Err(Error::io("rename", self.queue.at(&path), e)),
            }
        }
        self.found(&path, problem, Some(action));
        Ok(())
    }

    /// What is wrong with the entry `name` of `dir`, if anything: only regular files with
    /// one link that can be opened count.
    fn unusable(&self, dir: BorrowedFd<'_>, name: &str) -> Result<Option<String>> {
        let st = match sys::stat_at(dir, name) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => {
                return Ok(Some(format!(
                    "cannot be examined: {}",
                    crate::store::describe(&e.into())
                )));
            }
        };
        if !sys::is_plain_file(&st) {
            return Ok(Some(format!("is {}", sys::describe_entry(&st))));
        }
        match sys::open_beneath(dir, name, OFlags::RDONLY | OFlags::NONBLOCK, 0) {
            Ok(_) => Ok(None),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Ok(Some(format!(
                "cannot be read: {}",
                crate::store::describe(&e.into())
            ))),
        }
    }

    /// Entries of the queue directory that are not spool's.
    fn queue_dir(&mut self) -> Result<()> {
        let q = self.queue;
        let names =
            sys::read_names(q.open_dir(".")?).map_err(|e| Error::io("read", q.path(), e))?;
        for name in names {
            if is_queue_entry(&name) {
                continue;
            }
            self.quarantine(q.dir(), ".", &name, "is not a file spool writes".into())?;
        }
        // The identity, once made, is the queue's for good: a damaged one is reported,
        // never replaced (a new one would make the queue another source to its relays).
        if let Identity::Invalid(why) = q.read_identity()? {
            self.found(
                IDENTITY,
                format!("{why}: a queue's identity is never replaced"),
                None,
            );
        }
        // The length files must be regular files: anything else is moved away and remade.
        for rel in LENGTH_FILES {
            match sys::stat_at(q.dir(), rel) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {}
                Ok(st) => {
                    let problem = format!("is {}, not a regular file", sys::describe_entry(&st));
                    self.quarantine(q.dir(), ".", rel, problem)?;
                    if self.repair {
                        q.open_length_file(rel, true)?;
                    }
                }
                Err(Errno::NOENT) => {
                    if matches!(rel, COUNTER | HEAD) {
                        self.found(rel, "is missing", Some("created".into()));
                    }
                    if self.repair {
                        q.open_length_file(rel, true)?;
                    }
                }
                Err(e) => return Err(Error::io("stat", q.at(rel), e)),
            }
        }
        Ok(())
    }

    /// The queue's directories are its owner's alone (0700): anyone else who can write
    /// them can plant, move or remove messages.
    fn modes(&mut self) -> Result<()> {
        let q = self.queue;
        let mut dirs = vec!["."];
        dirs.extend(STATE_DIRS);
        dirs.extend((1..LANE_COUNT).map(lane_dir));
        dirs.push(KEYS);
        for rel in dirs {
            let Ok(fd) = sys::open_dir_beneath(q.dir(), rel) else {
                continue;
            };
            let st = sys::stat_fd(&fd).map_err(|e| Error::io("stat", q.at(rel), e))?;
            let mode = st.st_mode & 0o7777;
            if mode & 0o077 != 0 {
                let problem = format!("has mode {mode:04o}: others may change the queue");
                self.found(rel, problem, Some("mode set to 0700".into()));
                if self.repair {
                    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_bits_truncate(sys::DIR_MODE))
                        .map_err(|e| Error::io("chmod", q.at(rel), e))?;
                }
            }
        }
        Ok(())
    }

    /// Orphaned temporary files are removed (the sweep); foreign ones quarantined.
    fn tmp(&mut self) -> Result<()> {
        let q = self.queue;
        let tmp = q.state_dir(TMP)?;
        let names =
            sys::read_names(q.open_dir(TMP)?).map_err(|e| Error::io("read", q.at(TMP), e))?;
        for name in names {
            if !is_tmp_name(&name) {
                self.quarantine(tmp.as_fd(), TMP, &name, "is not a name spool writes".into())?;
                continue;
            }
            let Ok(st) = sys::stat_at(tmp.as_fd(), &name) else {
                continue;
            };
            let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            if !(sys::is_plain_file(&st) || is_dir && name.ends_with(BATCH_SUFFIX)) {
                let problem = format!("is {}", sys::describe_entry(&st));
                self.quarantine(tmp.as_fd(), TMP, &name, problem)?;
                continue;
            }
            if is_dir {
                // A batch's files must be plain files named by their number.
                let rel = format!("{TMP}/{name}");
                let inner = sys::open_dir_beneath(tmp.as_fd(), &name)
                    .map_err(|e| Error::io("open", q.at(&rel), e))?;
                for entry in sys::read_names(q.open_dir(&rel)?)
                    .map_err(|e| Error::io("read", q.at(&rel), e))?
                {
                    let plain =
                        sys::stat_at(inner.as_fd(), &entry).is_ok_and(|st| sys::is_plain_file(&st));
                    if !plain || !is_batch_entry(&entry) {
                        self.quarantine(
                            inner.as_fd(),
                            &rel,
                            &entry,
                            "is not a file spool writes".into(),
                        )?;
                    }
                }
            }
            let rel = format!("{TMP}/{name}");
            if let Probe::Abandoned(..) = q.probe(tmp.as_fd(), &name, &rel)? {
                self.found(
                    &rel,
                    "is left over by a writer that died",
                    Some("removed".into()),
                );
            }
        }
        if self.repair {
            q.sweep_tmp()?;
        }
        Ok(())
    }

    /// A priority lane: buckets of messages keyed by position.
    fn lane(&mut self, lane: u8) -> Result<()> {
        let q = self.queue;
        let rel = lane_dir(lane);
        let lane_fd = match sys::open_dir_beneath(q.dir(), rel) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => {
                let problem = format!(
                    "cannot be opened as a directory: {}",
                    crate::store::describe(&e.into())
                );
                return self.quarantine(q.dir(), ".", rel, problem);
            }
        };
        for bname in
            sys::read_names(q.open_dir(rel)?).map_err(|e| Error::io("read", q.at(rel), e))?
        {
            let brel = format!("{rel}/{bname}");
            let Some(b) = layout::parse_bucket(&bname) else {
                self.quarantine(lane_fd.as_fd(), rel, &bname, "is not a bucket name".into())?;
                continue;
            };
            let bucket = match sys::open_dir_beneath(lane_fd.as_fd(), &bname) {
                Ok(fd) => fd,
                Err(e) => {
                    let problem = format!(
                        "is not a directory spool wrote: {}",
                        crate::store::describe(&e.into())
                    );
                    self.quarantine(lane_fd.as_fd(), rel, &bname, problem)?;
                    continue;
                }
            };
            let mut kept = 0;
            for name in sys::read_names(q.open_dir(&brel)?)
                .map_err(|e| Error::io("read", q.at(&brel), e))?
            {
                let entry = Entry::parse(&name).filter(|e| {
                    bucket_of(e.key) == b
                        && e.id <= e.key
                        && e.token.is_none()
                        && e.lease.is_none()
                        && e.reason.is_none()
                        && e.priority == 0
                });
                let Some(entry) = entry else {
                    self.quarantine(
                        bucket.as_fd(),
                        &brel,
                        &name,
                        "is not a message name for this place".into(),
                    )?;
                    continue;
                };
                if let Some(problem) = self.unusable(bucket.as_fd(), &name)? {
                    self.quarantine(bucket.as_fd(), &brel, &name, problem)?;
                    continue;
                }
                kept += 1;
                self.live(&entry);
                self.highest = self.highest.max(entry.key);
                self.lanes |= 1 << lane;
                if lane == 0 {
                    self.lowest_ready =
                        Some(self.lowest_ready.map_or(entry.key, |l| l.min(entry.key)));
                }
            }
            if kept == 0 && self.repair && b < bucket_of(self.highest) {
                let _ = sys::remove_dir(lane_fd.as_fd(), &bname);
            }
        }
        Ok(())
    }

    /// delayed/ and failed/.
    fn flat(&mut self, rel: &'static str) -> Result<()> {
        let q = self.queue;
        let dir = q.state_dir(rel)?;
        for name in
            sys::read_names(q.open_dir(rel)?).map_err(|e| Error::io("read", q.at(rel), e))?
        {
            let ok = |e: &Entry| match rel {
                DELAYED => e.token.is_none() && e.lease.is_none() && e.reason.is_none(),
                _ => e.key == e.id && e.token.is_none() && e.lease.is_none(),
            };
            let Some(entry) = Entry::parse(&name).filter(ok) else {
                self.quarantine(
                    dir.as_fd(),
                    rel,
                    &name,
                    "is not a message name for this place".into(),
                )?;
                continue;
            };
            if let Some(problem) = self.unusable(dir.as_fd(), &name)? {
                self.quarantine(dir.as_fd(), rel, &name, problem)?;
                continue;
            }
            self.highest = self.highest.max(entry.id);
            if rel == DELAYED {
                self.live(&entry);
                self.earliest_due = Some(self.earliest_due.map_or(entry.key, |d| d.min(entry.key)));
            }
        }
        Ok(())
    }

    /// claimed/: claims of dead processes and ended leases go back.
    fn claims(&mut self, c: &mut Consumer) -> Result<()> {
        let q = self.queue;
        let claimed = q.claimed_dir()?;
        let now = now_ms();
        for name in sys::read_names(
            claimed
                .try_clone_to_owned()
                .map_err(|e| Error::io("dup", q.at(CLAIMED), e))?,
        )
        .map_err(|e| Error::io("read", q.at(CLAIMED), e))?
        {
            let rel = format!("{CLAIMED}/{name}");
            let Some(entry) = Entry::parse(&name)
                .filter(|e| e.token.is_some() && e.key == e.id && e.reason.is_none())
            else {
                self.quarantine(claimed, CLAIMED, &name, "is not a claim name".into())?;
                continue;
            };
            if let Some(problem) = self.unusable(claimed, &name)? {
                self.quarantine(claimed, CLAIMED, &name, problem)?;
                continue;
            }
            self.highest = self.highest.max(entry.id).max(entry.position());
            self.live(&entry); // claimed, or returned: in the queue either way
            let ended = entry.lease.is_none_or(|l| l <= now);
            if !ended || matches!(q.probe(claimed, &name, &rel)?, Probe::Held) {
                continue;
            }
            let problem = match entry.lease {
                Some(_) => "is a claim whose lease ended",
                None => "is a claim of a process that died",
            };
            if self.repair {
                // The producer lock is held: mark the lane here, not in return_claim.
                if entry.priority > 0 {
                    self.lanes |= 1 << entry.priority;
                }
                if entry.priority == 0 {
                    let pos = entry.position();
                    self.lowest_ready = Some(self.lowest_ready.map_or(pos, |l| l.min(pos)));
                }
                q.return_claim(claimed, &name, &entry, c, false)?;
            }
            self.found(&rel, problem, Some("returned to the queue".into()));
        }
        Ok(())
    }

    /// Notes a live message's deduplication key.
    fn live(&mut self, entry: &Entry) {
        if let Some(key) = &entry.dedup {
            self.live_keys
                .entry(key.clone())
                .or_default()
                .push(entry.id);
        }
    }

    /// keys/: a key file must name a live message with its key (a stale one is removed),
    /// and a live keyed message whose key is free takes it (the file is created).
    fn keys(&mut self) -> Result<()> {
        let q = self.queue;
        let mut keys = q.open_keys()?;
        let mut changed = false;
        let mut held: std::collections::HashSet<String> = std::collections::HashSet::new();
        if let Some(dir) = &keys {
            let dir = dir.as_fd();
            let names = sys::read_names(dir).map_err(|e| Error::io("read", q.at(KEYS), e))?;
            for name in names {
                let rel = format!("{KEYS}/{name}");
                if !crate::store::is_valid_key(&name) {
                    self.quarantine(dir, KEYS, &name, "is not a key file name".into())?;
                    continue;
                }
                let st = match sys::stat_at(dir, &name) {
                    Ok(st) => st,
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(Error::io("stat", q.at(&rel), e)),
                };
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    let problem = format!("is {}, not a key file", sys::describe_entry(&st));
                    self.quarantine(dir, KEYS, &name, problem)?;
                    continue;
                }
                let id = st.st_size as u64;
                let pending = super::keys::is_pending(&st);
                if self
                    .live_keys
                    .get(&name)
                    .is_some_and(|ids| ids.contains(&id))
                {
                    // Pending, its message in place: a push cut short after the message
                    // appeared. Nothing is wrong (the next push of the key settles it);
                    // a repair makes it held.
                    if pending && self.repair {
                        q.settle_key(dir, &name, id)?;
                    }
                    held.insert(name);
                    continue;
                }
                let problem = if pending {
                    format!(
                        "is pending for message {id}, which is not in the queue with it: \
                         its push was cut short"
                    )
                } else {
                    format!("holds the key for message {id}, which is not in the queue with it")
                };
                self.found(&rel, problem, Some("removed".into()));
                if self.repair {
                    match sys::remove_file(dir, &name) {
                        Ok(()) | Err(Errno::NOENT) => changed = true,
                        Err(e) => return Err(Error::io("remove", q.at(&rel), e)),
                    }
                } else {
                    held.insert(name); // not free until repaired
                }
            }
        }
        let free: Vec<(String, u64)> = self
            .live_keys
            .iter()
            .filter(|(key, _)| !held.contains(*key))
            .map(|(key, ids)| (key.clone(), ids.iter().copied().min().unwrap_or_default()))
            .collect();
        for (key, id) in free {
            self.found(
                &format!("{KEYS}/{key}"),
                format!("is missing: message {id} has the key, and no message holds it"),
                Some(format!("created for message {id}")),
            );
            if self.repair {
                if keys.is_none() {
                    keys = Some(q.keys_dir()?);
                }
                let dir = keys.as_ref().expect("set above");
                changed |= q.hold_key(dir.as_fd(), &key, id)?;
            }
        }
        if changed && let Some(dir) = &keys {
            q.sync_keys(dir)?;
        }
        Ok(())
    }

    /// The counter above every key; the head at or below the first message; the lanes
    /// and the due hint covering what is there.
    fn counters(&mut self, producer: &Producer, c: &mut Consumer) -> Result<()> {
        let q = self.queue;
        let next = q.next_key(producer)?;
        if next <= self.highest {
            self.found(
                COUNTER,
                format!(
                    "is {next}, not above the highest id or key in the queue ({})",
                    self.highest
                ),
                Some(format!("set to {}", self.highest + 1)),
            );
            if self.repair {
                // Ids consumed since cannot be seen; leave room above what can.
                q.set_next_key(producer, self.highest + 1)?;
            }
        }
        if let Some(lowest) = self.lowest_ready
            && c.head > lowest
        {
            self.found(
                HEAD,
                format!("is {}, above the first waiting message ({lowest})", c.head),
                Some(format!("set to {lowest}")),
            );
            if self.repair {
                c.head = lowest;
            }
        }
        let lanes = q.read_length(LANES)?;
        let missing = self.lanes & !lanes & !1;
        if missing != 0 {
            self.found(
                LANES,
                "does not list every priority lane that holds messages",
                Some("updated".into()),
            );
            if self.repair {
                q.write_length(LANES, lanes | missing)?;
            }
        }
        if let Some(due) = self.earliest_due {
            let hint = q.read_length(DUE)?;
            if hint == 0 || hint * 1000 > due {
                self.found(
                    DUE,
                    "is later than the first delayed message",
                    Some("updated".into()),
                );
                if self.repair {
                    q.write_length(DUE, (due / 1000).max(1))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::local::Spool;
    use crate::store::{Hold, PushOptions, TakeOptions};
    use std::io::Write;

    fn setup() -> (tempfile::TempDir, Spool) {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"), |_| {});
        let q = spool.create("q").unwrap();
        let mut staging = q.stage(true).unwrap();
        for m in [b"a", b"b", b"c"] {
            staging
                .add(|f, p| {
                    f.write_all(m)
                        .map_err(|e| crate::store::Error::io("write", p, e))
                })
                .unwrap();
        }
        staging.publish(PushOptions::default()).unwrap();
        (dir, spool)
    }

    #[test]
    fn a_clean_queue_has_no_findings() {
        let (_d, spool) = setup();
        assert!(spool.fsck("q", false).unwrap().is_empty());
    }

    #[test]
    fn junk_is_quarantined_never_deleted_and_the_counter_moves_up() {
        let (d, spool) = setup();
        let q = d.path().join("spool/q");
        std::fs::write(q.join("ready/00000000000000000/junk"), b"keep me").unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(q.join("counter"))
            .unwrap()
            .set_len(2)
            .unwrap();
        let found = spool.fsck("q", false).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|f| f.repair.is_none()));
        assert!(
            q.join("ready/00000000000000000/junk").exists(),
            "reporting changes nothing"
        );

        let repaired = spool.fsck("q", true).unwrap();
        assert_eq!(repaired.len(), 2);
        assert!(repaired.iter().all(|f| f.repair.is_some()));
        let corrupt: Vec<_> = std::fs::read_dir(q.join("corrupt"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(corrupt.len(), 1);
        assert_eq!(std::fs::read(&corrupt[0]).unwrap(), b"keep me");
        assert_eq!(std::fs::metadata(q.join("counter")).unwrap().len(), 4);
        assert!(spool.fsck("q", false).unwrap().is_empty());
    }

    #[test]
    fn a_dead_claim_goes_back() {
        let (d, spool) = setup();
        let queue = spool.open("q").unwrap().unwrap();
        let taken = queue
            .take(
                1,
                TakeOptions {
                    hold: Hold::Process,
                    max_attempts: None,
                },
            )
            .unwrap();
        drop(taken); // its holder "dies"
        let found = spool.fsck("q", true).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].problem.contains("died"));
        assert_eq!(
            std::fs::read_dir(d.path().join("spool/q/claimed"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(queue.waiting().unwrap(), 3);
    }
}
