// The integration tests of spool, compiled as one test binary.
//
// Every test makes its own temporary spool root (see `harness::Fixture`) and runs the real
// `spool` executable, checking exact standard output bytes, standard error and exit codes
// (0 success, 1 nothing to return, 2 error with one "spool: " line on stderr).
//
// Module index:
//
// - harness      one harness for every test (tests/harness/): the `Fixture` (a fresh
//                store per test, on an `Engine`), one command runner with a clean
//                environment and a time limit, one `Output` with its assertions, strace
//                fault injection, the clock and one seeded `Rng`, visible skipping (which
//                fails instead when CI=true), mounts and witnesses, a throwaway
//                PostgreSQL cluster shared by the run with a database per test (made
//                ahead and dropped behind by a pool for the contract tests);
//                `engine_tests!` runs the contract tests once per engine: `local`
//                (a spool directory) and `postgres` (a database of the test's own)
// - cli          --help on every subcommand, --version, completions, usage errors,
//                global flags before and after the subcommand
// - compat       the on-disk format across versions: the binary of an earlier commit
//                (built from git) and this one push, pop, claim, ack and nack each
//                other's messages
// - roots        where the root and the queue come from: --dir, $SPOOL_DIR,
//                $XDG_STATE_HOME, $HOME; -q/--queue, $SPOOL_QUEUE, "default"
// - names        queue name validation: invalid names fail and create nothing
// - netfs        network filesystems: creating a spool or a queue on one (a FUSE mount)
//                is refused unless SPOOL_ALLOW_NETWORK_FS=1; stats and fsck mention it;
//                the check (statfs) is made on the creating path only
// - layout       the on-disk layout (format, counter, ready buckets), modes 0700/0600
//                under any umask, read-only commands create nothing and work on a
//                read-only spool (a read-only bind mount)
// - push         arguments, standard input, --lines, --null, --print-id
// - pop          order, deletion, -n with --lines/--null, exit 1 when empty, failed
//                delivery (/dev/full, closed pipe) keeps the message
// - peek         same output as pop, removes nothing
// - list         the text and JSON listings, timestamps and previews
// - len_stats    len and stats (text, --json, --all)
// - clear        removal counts, ids never reused after clear
// - claims       claim, show, ack, nack, extend; leases that end and stale tokens;
//                slow workers never ack twice
// - attempts     attempts, --max-attempts, the failed state, requeue, clear --state,
//                list --state (text and JSON); a claim whose token cannot be written
// - wait         pop/peek/claim --wait and --timeout: woken by pushes, nacks, ended
//                leases and due messages; durations (500ms ... 1d), bad and enormous
//                ones
// - schedule     push --delay/--at, --priority and --ttl: invisible until due, order
//                by due time (ahead of later pushes) and priority, expiry to failed,
//                priorities kept through every state, far-future times
// - run          spool run: payload and environment, exit 0/100/other, backoff,
//                --max-attempts, --max, -j, its options and its command, exit status
// - run_lifecycle  --lease (SIGTERM then SIGKILL), --wait, SIGINT/SIGTERM (exit 130 and
//                143); kill -9 of run or pop hands the message on at once; -j 4 over
//                1,000 flaky messages: nothing lost, none run twice at once, each acked
//                once or failed, each failed attempt reported once
// - run_report   the line of each failed attempt, --quiet, signals that stop nothing,
//                --joblog (columns, signals, appending, errors at start and later),
//                compared with GNU parallel's joblog
// - run_output   the commands' output through spool: whole lines with -j, --group, a
//                closed standard output keeps the messages whose output was lost
// - queues       the queue names of a root
// - binary       byte-exact round trips: all 256 byte values, NULs, empty, 100 MB
// - concurrency  8 producer and 8 consumer processes: nothing lost, nothing
//                duplicated, each producer's order kept
// - crash        pushes and pops killed at every step (strace fault injection): ids
//                never reused, nothing partial ever delivered, nothing lost
// - hostile      bad roots (a regular file, no permission) and junk planted in a queue
//                (files, symlinks, FIFOs, hard links): never read, followed or deleted
// - damage       claims that are not plain files refused by ack, nack, extend, show; a
//                damaged format file reported, and restored by fsck when it can be
// - shell        whole pipelines through sh, as in the documentation
// - docs         the README's console examples, run in order exactly as printed
// - man_examples the examples of the man page and of every --help, each run as printed
//                in a spool of its own, with stand-ins for the programs they name
// - generated    man/spool.1 and completions/ are current with the CLI definition
// - completions  the completion scripts in bash, zsh and fish: queue names for -q,
//                commands for run's COMMAND
// - postgres_connect  the connection settings against a server with TLS: every
//                sslmode, the PG* variables, the password file and its permissions, a
//                wrong password; the password never printed
// - postgres_engine  the PostgreSQL engine (--url, SPOOL_URL) against a real server:
//                the same output as the local spool, order, fenced tokens, run's
//                claims back when it dies, fsck, passwords never printed
// - postgres_wait  waiting and rates on the PostgreSQL engine: a push notifies the
//                channel `spool`; pop and peek --wait listen, and return what is pushed
//                later; --timeout exits 1; a waiter refused its listening connection
//                polls; stats shows the rates (text and JSON), a damaged record none
// - postgres_errors  bad input for the PostgreSQL engine: malformed and foreign URLs, a
//                database or a server that is not there, a role without rights (and
//                one with exactly the documented privileges, which can do everything),
//                a newer schema refused, a version-1 schema upgraded with its
//                messages, tables changed by hand; one `spool: ` line, exit 2, no
//                password, nothing changed
// - postgres_faults  the PostgreSQL engine under faults: 8 producer and 8 consumer
//                processes; the server crashed under load (what exited 0 stays done);
//                connections dropped in the middle of push, pop, claim, ack and run;
//                kill -9 of run and its commands at random; a network partition between
//                two hosts (network namespaces) with claims coming back after their leases
// - relay        relay in both directions between every pair of engines: order,
//                priority, time to live, the refusals, --wait and SIGTERM
// - relay_faults relay under faults: SIGKILLed at random and at each system call,
//                its connection terminated at each statement, the database stopped
//                and the network cut under pushes, a session cut off in its
//                transaction, one-shot runs (75), two relays, the systemd unit
// - postgres_harness  the harness's PostgreSQL server: a database per test, dropped
//                after it; a private cluster crashed and restarted keeps its data;
//                without PostgreSQL the tests skip, or fail under CI=true
// - faults       crash, fault and hostile-input tests (most need root and strace,
//                xfsprogs, util-linux, e2fsprogs): power cuts on loop-mounted xfs and
//                ext4, EIO/ENOSPC/EDQUOT and SIGKILL at every system call of every
//                operation, a full disk, a file size limit, random kills under load, a
//                hostile spool, another user, fsck; docs/RELIABILITY.md has the figures

mod harness;
mod suite;
