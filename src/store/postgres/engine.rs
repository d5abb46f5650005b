//! The PostgreSQL engine as the store's traits: each operation one of the queue's own
//! methods; the waiter is listen.rs's.

use std::ffi::OsString;

use super::listen::Waiter;
use super::push::Staged;
use super::take::Taken;
use super::{Postgres, Queue};
use crate::store::{
    self, Batch, Finding, Info, Message, Payload, Published, PushOptions, Result, Sink, State,
    Stats, TakeOptions, Verdict,
};

impl store::Engine for Postgres {
    type Queue = Queue;

    fn open(&self, name: &str) -> Result<Option<Queue>> {
        Postgres::open(self, name)
    }

    fn create(&self, name: &str) -> Result<Queue> {
        Postgres::create(self, name)
    }

    fn queues(&self) -> Result<Vec<String>> {
        Postgres::queues(self)
    }

    fn fsck(&self, name: &str, repair: bool) -> Result<Vec<Finding>> {
        Postgres::fsck(self, name, repair)
    }

    fn environment(&self) -> Vec<(&'static str, OsString)> {
        Vec::new()
    }
}

impl store::Queue for Queue {
    type Claim = Taken;
    type Batch<'q> = Staged<'q>;
    type Waiter = Waiter;

    fn name(&self) -> &str {
        &self.name
    }

    fn stage(&self, _many: bool) -> Result<Staged<'_>> {
        Ok(Queue::stage(self))
    }

    fn take(&self, n: usize, opts: TakeOptions) -> Result<Vec<Taken>> {
        Queue::take(self, n, opts)
    }

    fn remove_delivered(&self, done: Vec<Taken>, removed: &mut u64) -> Result<()> {
        Queue::remove_delivered(self, done, removed)
    }

    fn sync_removals(&self, _removed: u64) -> Result<()> {
        Queue::sync_removals(self)
    }

    fn give_back(&self, undelivered: Vec<Taken>) -> Result<()> {
        Queue::give_back(self, undelivered)
    }

    fn settle(&self, claim: Taken, verdict: Verdict<'_>) -> Result<()> {
        Queue::settle(self, claim, verdict)
    }

    fn payload_for_child(&self, claim: &Taken) -> Result<Payload> {
        Queue::payload_for_child(self, claim)
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
        Queue::show(self, what)
    }

    fn walk(
        &self,
        states: &[State],
        each: impl FnMut(&Info, &dyn Fn() -> Result<Option<Payload>>) -> Result<bool>,
    ) -> Result<()> {
        Queue::walk(self, states, each)
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

    fn waiter(&self) -> Waiter {
        // Listens from its first sleep on (listen.rs), with a connection of its own.
        Waiter::new(self.conn.settings(), &self.name)
    }

    fn identity(&self) -> Result<String> {
        Queue::identity(self)
    }

    fn lock_relay(&self) -> Result<bool> {
        Queue::lock_relay(self)
    }

    fn is_gone(&self) -> bool {
        false
    }
}

impl Batch for Staged<'_> {
    fn add(&mut self, write: impl FnOnce(&mut Sink<'_>) -> Result<()>) -> Result<()> {
        Staged::add(self, write)
    }

    fn add_with(
        &mut self,
        meta: store::Meta,
        write: impl FnOnce(&mut Sink<'_>) -> Result<()>,
    ) -> Result<()> {
        Staged::add_with(self, meta, write)
    }

    fn publish(self, opts: PushOptions) -> Result<Published> {
        Staged::publish(self, opts)
    }
}

impl store::Claim for Taken {
    fn id(&self) -> u64 {
        self.id
    }

    fn attempts(&self) -> u32 {
        self.attempts
    }

    fn token(&self) -> String {
        self.token.clone()
    }

    fn payload(&mut self) -> &mut Payload {
        &mut self.payload
    }

    fn priority(&self) -> u8 {
        self.priority
    }

    fn expires(&self) -> Option<u64> {
        self.expires
    }

    fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}
