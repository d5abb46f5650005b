# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_spool_global_optspecs
    string join \n dir= url= q/queue= h/help V/version
end

function __fish_spool_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_spool_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_spool_using_subcommand
    set -l cmd (__fish_spool_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c spool -n "__fish_spool_needs_command" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_needs_command" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_needs_command" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_needs_command" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_needs_command" -f -a "push" -d 'Add messages to the queue'
complete -c spool -n "__fish_spool_needs_command" -f -a "pop" -d 'Remove the next message (the oldest of the highest priority) and write it out'
complete -c spool -n "__fish_spool_needs_command" -f -a "peek" -d 'Write the next message to standard output without removing it'
complete -c spool -n "__fish_spool_needs_command" -f -a "claim" -d 'Take the next message under a lease and print its claim token'
complete -c spool -n "__fish_spool_needs_command" -f -a "show" -d 'Print the payload of a message in any state, by claim token or id'
complete -c spool -n "__fish_spool_needs_command" -f -a "ack" -d 'Delete a claimed message: its work is done'
complete -c spool -n "__fish_spool_needs_command" -f -a "nack" -d 'Return a claimed message behind the waiting ones (after --delay, if given)'
complete -c spool -n "__fish_spool_needs_command" -f -a "extend" -d 'Renew the lease of a claimed message'
complete -c spool -n "__fish_spool_needs_command" -f -a "requeue" -d 'Move failed messages back to ready, with their attempts reset'
complete -c spool -n "__fish_spool_needs_command" -f -a "run" -d 'Run a command for each message, with the payload on its standard input'
complete -c spool -n "__fish_spool_needs_command" -f -a "list" -d 'List messages in order: id, size, enqueue time, preview (and state details)'
complete -c spool -n "__fish_spool_needs_command" -f -a "len" -d 'Print the number of waiting messages'
complete -c spool -n "__fish_spool_needs_command" -f -a "stats" -d 'Print counts, bytes, the age of the oldest message, and the queue\'s rates, expected wait and trend'
complete -c spool -n "__fish_spool_needs_command" -f -a "clear" -d 'Remove every waiting message (ready and delayed) and print how many were removed'
complete -c spool -n "__fish_spool_needs_command" -f -a "fsck" -d 'Check a queue for damage, and repair it with --repair'
complete -c spool -n "__fish_spool_needs_command" -f -a "queues" -d 'List the queues of the spool'
complete -c spool -n "__fish_spool_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c spool -n "__fish_spool_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c spool -n "__fish_spool_using_subcommand push" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_using_subcommand push" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_using_subcommand push" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_using_subcommand push" -l key -d 'Add nothing if a message with this key is ready, delayed or claimed (one message)' -r
complete -c spool -n "__fish_spool_using_subcommand push" -l delay -d 'Invisible for this long (500ms, 30s, 5m, 2h, 1d, 1h30m)' -r
complete -c spool -n "__fish_spool_using_subcommand push" -l at -d 'Invisible until this time (RFC 3339, or unix seconds)' -r
complete -c spool -n "__fish_spool_using_subcommand push" -l priority -d 'Priority, 0 to 9: higher first, first-in first-out within a priority' -r
complete -c spool -n "__fish_spool_using_subcommand push" -l ttl -d 'Moves to failed (reason "expired") if not consumed within this time' -r
complete -c spool -n "__fish_spool_using_subcommand push" -s l -l lines -d 'Read standard input as one message per line (the newline is removed)'
complete -c spool -n "__fish_spool_using_subcommand push" -s 0 -l null -d 'Read standard input as one message per NUL-terminated record'
complete -c spool -n "__fish_spool_using_subcommand push" -l print-id -d 'Print the id of each new message, one per line'
complete -c spool -n "__fish_spool_using_subcommand push" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand push" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand pop" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_using_subcommand pop" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_using_subcommand pop" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_using_subcommand pop" -s n -l count -d 'Up to N messages (N > 1 needs --lines or --null to frame them)' -r
complete -c spool -n "__fish_spool_using_subcommand pop" -l timeout -d 'With --wait: exit 1 after this long (500ms, 30s, 5m, 2h, 1d, 1h30m)' -r
complete -c spool -n "__fish_spool_using_subcommand pop" -s l -l lines -d 'Follow each message with a newline, in the same write up to 64 KiB'
complete -c spool -n "__fish_spool_using_subcommand pop" -s 0 -l null -d 'Follow each message with a NUL byte, in the same write up to 64 KiB'
complete -c spool -n "__fish_spool_using_subcommand pop" -s w -l wait -d 'Wait for a message instead of exiting 1 when there is none'
complete -c spool -n "__fish_spool_using_subcommand pop" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand pop" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand peek" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_using_subcommand peek" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_using_subcommand peek" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_using_subcommand peek" -s n -l count -d 'Up to N messages (N > 1 needs --lines or --null to frame them)' -r
complete -c spool -n "__fish_spool_using_subcommand peek" -l timeout -d 'With --wait: exit 1 after this long (500ms, 30s, 5m, 2h, 1d, 1h30m)' -r
complete -c spool -n "__fish_spool_using_subcommand peek" -s l -l lines -d 'Follow each message with a newline, in the same write up to 64 KiB'
complete -c spool -n "__fish_spool_using_subcommand peek" -s 0 -l null -d 'Follow each message with a NUL byte, in the same write up to 64 KiB'
complete -c spool -n "__fish_spool_using_subcommand peek" -s w -l wait -d 'Wait for a message instead of exiting 1 when there is none'
complete -c spool -n "__fish_spool_using_subcommand peek" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand peek" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand claim" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_using_subcommand claim" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_using_subcommand claim" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_using_subcommand claim" -l lease -d 'How long the claim holds before the message returns by itself' -r
complete -c spool -n "__fish_spool_using_subcommand claim" -l max-attempts -d 'A message already claimed this many times moves to failed instead' -r
complete -c spool -n "__fish_spool_using_subcommand claim" -l timeout -d 'With --wait: exit 1 after this long (500ms, 30s, 5m, 2h, 1d, 1h30m)' -r
complete -c spool -n "__fish_spool_using_subcommand claim" -s w -l wait -d 'Wait for a message instead of exiting 1 when there is none'
complete -c spool -n "__fish_spool_using_subcommand claim" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand claim" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand show" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_using_subcommand show" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_using_subcommand show" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_using_subcommand show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand show" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand ack" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_using_subcommand ack" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_using_subcommand ack" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_using_subcommand ack" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand ack" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand nack" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_using_subcommand nack" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_using_subcommand nack" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_using_subcommand nack" -l delay -d 'Invisible for this long before it is ready again' -r
complete -c spool -n "__fish_spool_using_subcommand nack" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand nack" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand extend" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_using_subcommand extend" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_using_subcommand extend" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_using_subcommand extend" -l lease -d 'The new lease, from now' -r
complete -c spool -n "__fish_spool_using_subcommand extend" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand extend" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand requeue" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_using_subcommand requeue" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_using_subcommand requeue" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_using_subcommand requeue" -l all -d 'Every failed message'
complete -c spool -n "__fish_spool_using_subcommand requeue" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand requeue" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand run" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_using_subcommand run" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_using_subcommand run" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_using_subcommand run" -s j -l jobs -d 'Run up to N commands at a time' -r
complete -c spool -n "__fish_spool_using_subcommand run" -l max -d 'Stop after N messages (a message retried counts again)' -r
complete -c spool -n "__fish_spool_using_subcommand run" -l lease -d 'Time limit of each command: then it gets SIGTERM, 5 seconds later SIGKILL, and the message is retried' -r
complete -c spool -n "__fish_spool_using_subcommand run" -l max-attempts -d 'A message that failed this many times moves to failed' -r
complete -c spool -n "__fish_spool_using_subcommand run" -l backoff -d 'First retry delay, doubling with each attempt (capped at 1h)' -r
complete -c spool -n "__fish_spool_using_subcommand run" -l joblog -d 'Append a line for each finished command to FILE, in GNU parallel\'s joblog format: Seq (the message id), Host, Starttime, JobRuntime, Send (payload bytes), Receive (bytes of standard output), Exitval, Signal, Command; the header only into an empty file' -r -F
complete -c spool -n "__fish_spool_using_subcommand run" -s w -l wait -d 'Keep consuming, waking at once on pushes, instead of exiting when the queue is empty'
complete -c spool -n "__fish_spool_using_subcommand run" -l group -d 'Keep each command\'s output together: held until the command ends, then written, standard output then standard error [default: with -j above 1, whole lines as they come]'
complete -c spool -n "__fish_spool_using_subcommand run" -l quiet -d 'Do not report failed attempts on standard error'
complete -c spool -n "__fish_spool_using_subcommand run" -l progress -d 'On a terminal, keep a status line at the bottom of standard error: commands done, failed attempts (retries included), commands running, then messages waiting, the consumption rate and the time to empty (the estimate of stats, read every second, less often on a deep queue)'
complete -c spool -n "__fish_spool_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand run" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand list" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_using_subcommand list" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_using_subcommand list" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_using_subcommand list" -l state -d 'Which messages' -r -f -a "ready\t'Waiting to be taken'
delayed\t'Waiting for their time'
claimed\t'Taken, not yet acked'
failed\t'Dead letters'
all\t'Every state'"
complete -c spool -n "__fish_spool_using_subcommand list" -l json -d 'One JSON object per line: id, state, size, enqueued (RFC 3339), attempts, priority, and when present until, expires, reason; then preview (escaped, and preview_escaped true, when not UTF-8)'
complete -c spool -n "__fish_spool_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand list" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand len" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_using_subcommand len" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_using_subcommand len" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_using_subcommand len" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand len" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand stats" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_using_subcommand stats" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_using_subcommand stats" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_using_subcommand stats" -l format -d 'What to print: text, json (an object per queue and line) or openmetrics (for Prometheus; every queue unless -q or SPOOL_QUEUE names one)' -r -f -a "text\t'For people: a line per fact, or a table with --all'
json\t'One JSON object per queue and line'
openmetrics\t'The OpenMetrics text format, which Prometheus and node_exporter\'s textfile collector read'"
complete -c spool -n "__fish_spool_using_subcommand stats" -l interval -d 'Time between refreshes of --watch' -r
complete -c spool -n "__fish_spool_using_subcommand stats" -l json -d 'Short for --format json'
complete -c spool -n "__fish_spool_using_subcommand stats" -l all -d 'Every queue of the spool'
complete -c spool -n "__fish_spool_using_subcommand stats" -l watch -d 'Refresh until interrupted: on a terminal redrawn, with a chart of the depth over the last minutes; in a pipe one line per queue and interval'
complete -c spool -n "__fish_spool_using_subcommand stats" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand stats" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand clear" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_using_subcommand clear" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_using_subcommand clear" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_using_subcommand clear" -l state -d 'Which messages [default: ready and delayed]' -r -f -a "ready\t'Waiting to be taken'
delayed\t'Waiting for their time'
claimed\t'Taken, not yet acked'
failed\t'Dead letters'
all\t'Every state'"
complete -c spool -n "__fish_spool_using_subcommand clear" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand clear" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand fsck" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_using_subcommand fsck" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_using_subcommand fsck" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_using_subcommand fsck" -l repair -d 'Repair what is found'
complete -c spool -n "__fish_spool_using_subcommand fsck" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand fsck" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand queues" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_using_subcommand queues" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_using_subcommand queues" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_using_subcommand queues" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand queues" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand completions" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -f -a "(__fish_complete_directories)"
complete -c spool -n "__fish_spool_using_subcommand completions" -l url -d 'PostgreSQL database holding the queues, postgres://USER@HOST/DB (or $SPOOL_URL); without it, the spool directory' -r -f
complete -c spool -n "__fish_spool_using_subcommand completions" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r -f
complete -c spool -n "__fish_spool_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand completions" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "push" -d 'Add messages to the queue'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "pop" -d 'Remove the next message (the oldest of the highest priority) and write it out'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "peek" -d 'Write the next message to standard output without removing it'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "claim" -d 'Take the next message under a lease and print its claim token'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "show" -d 'Print the payload of a message in any state, by claim token or id'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "ack" -d 'Delete a claimed message: its work is done'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "nack" -d 'Return a claimed message behind the waiting ones (after --delay, if given)'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "extend" -d 'Renew the lease of a claimed message'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "requeue" -d 'Move failed messages back to ready, with their attempts reset'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "run" -d 'Run a command for each message, with the payload on its standard input'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "list" -d 'List messages in order: id, size, enqueue time, preview (and state details)'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "len" -d 'Print the number of waiting messages'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "stats" -d 'Print counts, bytes, the age of the oldest message, and the queue\'s rates, expected wait and trend'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "clear" -d 'Remove every waiting message (ready and delayed) and print how many were removed'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "fsck" -d 'Check a queue for damage, and repair it with --repair'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "queues" -d 'List the queues of the spool'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek claim show ack nack extend requeue run list len stats clear fsck queues completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'

# Queue names for -q and --queue, from `spool queues` in the spool of a --dir on the line.
function __fish_spool_queues
    set -l words (commandline -opc)
    set -l dir
    for i in (seq 2 (count $words))
        switch $words[$i]
            case --dir
                set -q words[(math $i + 1)]
                and set dir --dir (string replace -r '^~' $HOME -- $words[(math $i + 1)])
            case '--dir=*'
                set dir --dir (string replace -r '^--dir=~?' '' -- $words[$i])
        end
    end
    spool $dir queues 2>/dev/null
end

complete -c spool -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -x -a '(__fish_spool_queues)'

# The words of run's COMMAND before the cursor, when the cursor is in it; else fails.
function __fish_spool_run_command
    set -l words (commandline -opc)
    set -l sub
    set -l i 2
    while test $i -le (count $words)
        set -l word $words[$i]
        if test -z "$sub"
            if contains -- $word --dir --url -q --queue
                set i (math $i + 2)
                continue
            end
            string match -q -- '-*' $word
            or set sub $word
        else if test "$sub" = run
            if test "$word" = --
                set i (math $i + 1)
                break
            end
            if contains -- $word --dir --url -q --queue -j --jobs --max --lease --max-attempts --backoff --joblog
                set i (math $i + 2)
                continue
            end
            string match -q -- '-*' $word
            or break
        else
            return 1
        end
        set i (math $i + 1)
    end
    test "$sub" = run
    and test $i -le (math (count $words) + 1)
    or return 1
    if test $i -gt (count $words)
        string match -q -- '-*' (commandline -ct)
        and return 1
    end
    if test $i -le (count $words)
        printf '%s\n' $words[$i..-1]
    end
end

function __fish_spool_complete_run_command
    set -l words (__fish_spool_run_command)
    complete -C (string join ' ' -- (string escape -- $words) (commandline -ct))
end

complete -c spool -n '__fish_spool_run_command >/dev/null' -x -a '(__fish_spool_complete_run_command)'
