//! Crash, fault and hostile-input tests: power cuts on loop-mounted xfs and ext4, a
//! failure or a crash injected at every system call of every operation, a full disk, a
//! file size limit, random kills under load, a hostile spool directory, another user, and
//! `spool fsck`. Most need root and strace, xfsprogs, util-linux and e2fsprogs (installed
//! by `.ci/run`); without them they print "SKIPPED: ..." and pass, except under CI=true,
//! where they fail. docs/RELIABILITY.md lists what each test proves and the figures of a run.

mod chaos;
mod diskfull;
mod fsck;
mod fsize;
mod hostile;
mod inject;
mod ops;
mod other_user;
mod powercut;
