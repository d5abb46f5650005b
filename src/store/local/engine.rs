//! The spool directory as an engine: the store's traits implemented by the local
//! [`Spool`] and [`Queue`]. Each operation is one of the queue's own methods, given the
//! store's types (payloads instead of files).

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::Duration;

use super::push::Staging;
use super::take::Claimed;
use super::wait::Waiter as Inotify;
use super::{Queue, Spool};
use crate::store::{
    self, Batch, Finding, Info, Message, Payload, Published, PushOptions, Result, Sink, State,
    Stats, TakeOptions, Verdict,
};

impl store::Engine for Spool {
    type Queue = Queue;

    fn open(&self, name: &str) -> Result<Option<Queue>> {
        Spool::open(self, name)
    }

    fn create(&self, name: &str) -> Result<Queue> {
        Spool::create(self, name)
    }

    fn queues(&self) -> Result<Vec<String>> {
        Spool::queues(self)
    }

    fn fsck(&self, name: &str, repair: bool) -> Result<Vec<Finding>> {
        Spool::fsck(self, name, repair)
    }

    fn environment(&self) -> Vec<(&'static str, OsString)> {
        // Absolute: a command that changes directory still finds the spool. Not resolved
        // through symbolic links: the root is the one the user named.
        let root = std::path::absolute(self.root()).unwrap_or_else(|_| self.root().to_owned());
        vec![("SPOOL_DIR", root.into_os_string())]
    }
}

impl store::Queue for Queue {
    type Claim = Claimed;
    type Batch<'q> = Staging<'q>;
    type Waiter = Inotify;

    fn name(&self) -> &str {
        Queue::name(self)
    }

    fn stage(&self, many: bool) -> Result<Staging<'_>> {
        Queue::stage(self, many)
    }

    fn take(&self, n: usize, opts: TakeOptions) -> Result<Vec<Claimed>> {
        Queue::take(self, n, opts)
    }

    fn remove_delivered(&self, done: Vec<Claimed>, removed: &mut u64) -> Result<()> {
        Queue::remove_delivered(self, done, removed)
    }

    fn sync_removals(&self, removed: u64) -> Result<()> {
        Queue::sync_removals(self, removed)
    }

    fn give_back(&self, undelivered: Vec<Claimed>) -> Result<()> {
        Queue::give_back(self, undelivered)
    }

    fn settle(&self, claim: Claimed, verdict: Verdict<'_>) -> Result<()> {
        Queue::settle(self, claim, verdict)
    }

    fn payload_for_child(&self, claim: &Claimed) -> Result<Payload> {
        claim.reopen(self).map(Payload::File)
    }

    fn ack(&self, token: &str) -> Result<u64> {
        Queue::ack(self, token)
    }

    fn nack(&self, token: &str, delay_ms: Option<u64>) -> Result<u64> {
        Queue::nack(self, token, delay_ms)
    }

    fn extend(&self, token: &str, lease_ms: u64) -> Result<u64> {
        Queue::extend(self, token, lease_ms)
    }

    fn requeue(&self, ids: &[u64]) -> Result<(Vec<u64>, Vec<u64>)> {
        Queue::requeue(self, ids)
    }

    fn peek(&self, n: usize, each: impl FnMut(Message) -> Result<bool>) -> Result<usize> {
        Queue::peek(self, n, each)
    }

    fn show(&self, what: &str) -> Result<Option<(Info, Payload)>> {
        Ok(Queue::show(self, what)?.map(|(info, file)| (info, Payload::File(file))))
    }

    fn walk(
        &self,
        states: &[State],
        mut each: impl FnMut(&Info, &dyn Fn() -> Result<Option<Payload>>) -> Result<bool>,
    ) -> Result<()> {
        Queue::walk(
            self,
            states,
            |info, open: &dyn Fn() -> Result<Option<File>>| {
                each(info, &|| Ok(open()?.map(Payload::File)))
            },
        )
    }

    fn stats(&self) -> Result<Stats> {
        Queue::stats(self)
    }

    fn waiting(&self) -> Result<u64> {
        Queue::waiting(self)
    }

    fn clear(&self, states: &[State]) -> Result<u64> {
        Queue::clear(self, states)
    }

    fn next_due(&self) -> Result<Option<u64>> {
        Queue::next_due(self)
    }

    fn waiter(&self) -> Inotify {
        Inotify::new(self.path())
    }

    fn identity(&self) -> Result<String> {
        Queue::identity(self)
    }

    fn lock_relay(&self) -> Result<bool> {
        Queue::lock_relay(self)
    }

    fn is_gone(&self) -> bool {
        Queue::is_gone(self)
    }
}

impl Batch for Staging<'_> {
    fn add(&mut self, write: impl FnOnce(&mut Sink<'_>) -> Result<()>) -> Result<()> {
        Staging::add(self, |file: &mut File, path: &Path| {
            write(&mut Sink::new(file, path))
        })
    }

    fn add_with(
        &mut self,
        meta: store::Meta,
        write: impl FnOnce(&mut Sink<'_>) -> Result<()>,
    ) -> Result<()> {
        if let Some(key) = &meta.key {
            store::check_key(key)?;
        }
        Staging::add_with(self, Some(meta), |file: &mut File, path: &Path| {
            write(&mut Sink::new(file, path))
        })
    }

    fn publish(self, opts: PushOptions) -> Result<Published> {
        Staging::publish(self, opts)
    }
}

impl Default for Inotify {
    fn default() -> Self {
        Inotify::polling()
    }
}

impl store::Waiter for Inotify {
    fn wait_also(&mut self, timeout: Duration, extra: &[BorrowedFd<'_>], watch: bool) -> u32 {
        Inotify::wait_also(self, timeout, extra, watch)
    }
}
