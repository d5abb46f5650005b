//! A property test: random sequences of push, pop, peek, claim, ack, nack, clear and
//! lease expiry run against the queue and against an in-memory model of what it
//! promises; every answer must agree.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use proptest::prelude::*;

use crate::store::local::{Queue, Spool};
use crate::store::{Claim, Hold, PushOptions, State, TakeOptions};

#[derive(Debug, Clone)]
enum Op {
    Push {
        priority: u8,
        payloads: Vec<u8>,
    },
    Pop,
    Peek,
    /// A claim whose lease ends at once (`expired`) or never within the test.
    Claim {
        expired: bool,
    },
    Ack(usize),
    Nack(usize),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (prop_oneof![Just(0u8), Just(0), Just(5), Just(9)], prop::collection::vec(any::<u8>(), 1..4))
            .prop_map(|(priority, payloads)| Op::Push { priority, payloads }),
        2 => Just(Op::Pop),
        1 => Just(Op::Peek),
        2 => any::<bool>().prop_map(|expired| Op::Claim { expired }),
        1 => (0usize..4).prop_map(Op::Ack),
        1 => (0usize..4).prop_map(Op::Nack),
        1 => Just(Op::Clear),
    ]
}

#[derive(Debug, Clone)]
struct Msg {
    payload: Vec<u8>,
    lane: u8,
    key: u64,
}

/// What the queue promises, kept in memory.
#[derive(Default)]
struct Model {
    next: u64,
    /// (lane, key) -> message; pop takes the highest lane, then the lowest key.
    ready: BTreeMap<(std::cmp::Reverse<u8>, u64), Msg>,
    /// Outstanding claims in the order they were made: token -> (message, expired).
    claims: Vec<(String, Msg, bool)>,
    /// Tokens of claims whose lease ended and that went back: they must do nothing.
    stale: Vec<String>,
}

impl Model {
    fn recover(&mut self) {
        let (expired, live): (Vec<_>, Vec<_>) = self.claims.drain(..).partition(|c| c.2);
        self.claims = live;
        for (token, m, _) in expired {
            self.stale.push(token);
            self.ready.insert((std::cmp::Reverse(m.lane), m.key), m);
        }
    }

    fn first(&mut self) -> Option<Msg> {
        self.recover();
        let key = *self.ready.keys().next()?;
        self.ready.remove(&key)
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::new(dir.path().join("spool"), |_| {});
    let q: Queue = spool.create("q").unwrap();
    let mut model = Model {
        next: 1,
        ..Model::default()
    };
    let read = |file: &mut crate::store::Payload| {
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).unwrap();
        buf
    };
    for op in ops {
        match op {
            Op::Push { priority, payloads } => {
                let mut staging = q.stage(payloads.len() > 1).unwrap();
                for &b in &payloads {
                    staging
                        .add(|f, p| {
                            f.write_all(&[b])
                                .map_err(|e| crate::store::Error::io("write", p, e))
                        })
                        .unwrap();
                }
                let ids: Vec<u64> = staging
                    .publish(PushOptions {
                        priority,
                        ..Default::default()
                    })
                    .unwrap()
                    .ids()
                    .collect();
                let expected: Vec<u64> = (model.next..model.next + payloads.len() as u64).collect();
                prop_assert_eq!(&ids, &expected);
                for (&b, &id) in payloads.iter().zip(&ids) {
                    model.ready.insert(
                        (std::cmp::Reverse(priority), id),
                        Msg {
                            payload: vec![b],
                            lane: priority,
                            key: id,
                        },
                    );
                }
                model.next += payloads.len() as u64;
            }
            Op::Pop => {
                let mut taken = q
                    .take(
                        1,
                        TakeOptions {
                            hold: Hold::Process,
                            max_attempts: None,
                        },
                    )
                    .unwrap();
                let want = model.first();
                prop_assert_eq!(taken.len(), usize::from(want.is_some()));
                if let (Some(m), Some(t)) = (want, taken.first_mut()) {
                    prop_assert_eq!(read(t.payload()), m.payload);
                }
                q.finish(taken).unwrap();
            }
            Op::Peek => {
                let mut seen = None;
                q.peek(1, |mut m| {
                    seen = Some(read(&mut m.payload));
                    Ok(false)
                })
                .unwrap();
                model.recover();
                let want = model.ready.values().next().map(|m| m.payload.clone());
                prop_assert_eq!(seen, want);
            }
            Op::Claim { expired } => {
                let lease_ms = if expired { 0 } else { 3_600_000 };
                let mut taken = q
                    .take(
                        1,
                        TakeOptions {
                            hold: Hold::Lease { lease_ms },
                            max_attempts: None,
                        },
                    )
                    .unwrap();
                let want = model.first();
                prop_assert_eq!(taken.len(), usize::from(want.is_some()));
                if let (Some(m), Some(mut t)) = (want, taken.pop()) {
                    prop_assert_eq!(read(t.payload()), m.payload.clone());
                    model.claims.push((t.token(), m, expired));
                }
            }
            Op::Ack(i) | Op::Nack(i) => {
                let nack = matches!(op, Op::Nack(_));
                let act = |token: &str| {
                    if nack {
                        q.nack(token, None)
                    } else {
                        q.ack(token)
                    }
                };
                let Some((token, m, _)) = model.claims.get(i).cloned() else {
                    // A stale token: its lease ended and the message went back.
                    if let Some(token) = model.stale.get(i - model.claims.len().min(i)).cloned() {
                        let before = q.waiting().unwrap();
                        prop_assert!(act(&token).is_err(), "a stale token acted");
                        prop_assert_eq!(q.waiting().unwrap(), before);
                    }
                    continue;
                };
                // A claim whose lease ended but that nobody returned yet may still be
                // acted on: its token is still its own.
                let result = act(&token);
                prop_assert!(result.is_ok(), "{:?}", result);
                model.claims.remove(i);
                if nack {
                    let key = model.next;
                    model.next += 1;
                    model
                        .ready
                        .insert((std::cmp::Reverse(m.lane), key), Msg { key, ..m });
                }
                // Acting again with the same token must fail.
                prop_assert!(q.ack(&token).is_err());
            }
            Op::Clear => {
                let n = q.clear(&[State::Ready, State::Delayed]).unwrap();
                model.recover();
                prop_assert_eq!(n, model.ready.len() as u64);
                model.ready.clear();
            }
        }
        prop_assert_eq!(q.waiting().unwrap(), model.ready.len() as u64);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn tokens_parse_only_in_their_shape(text in "\\PC{0,40}") {
        if let Some((id, hex)) = super::layout::parse_token(&text) {
            prop_assert_eq!(format!("{id}.{hex}"), text);
        }
    }

    #[test]
    fn the_queue_behaves_like_its_model(ops in prop::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
