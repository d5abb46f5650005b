# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_spool_global_optspecs
    string join \n dir= q/queue= h/help V/version
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

complete -c spool -n "__fish_spool_needs_command" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -F
complete -c spool -n "__fish_spool_needs_command" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r
complete -c spool -n "__fish_spool_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_needs_command" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_needs_command" -f -a "push" -d 'Add messages to the queue'
complete -c spool -n "__fish_spool_needs_command" -f -a "pop" -d 'Remove the oldest message and write it to standard output'
complete -c spool -n "__fish_spool_needs_command" -f -a "peek" -d 'Write the oldest message to standard output without removing it'
complete -c spool -n "__fish_spool_needs_command" -f -a "list" -d 'List waiting messages in order: id, size, enqueue time, preview'
complete -c spool -n "__fish_spool_needs_command" -f -a "len" -d 'Print the number of waiting messages'
complete -c spool -n "__fish_spool_needs_command" -f -a "stats" -d 'Print counts, bytes and the age of the oldest message'
complete -c spool -n "__fish_spool_needs_command" -f -a "clear" -d 'Remove every waiting message and print how many were removed'
complete -c spool -n "__fish_spool_needs_command" -f -a "queues" -d 'List the queues of the spool'
complete -c spool -n "__fish_spool_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c spool -n "__fish_spool_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c spool -n "__fish_spool_using_subcommand push" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -F
complete -c spool -n "__fish_spool_using_subcommand push" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r
complete -c spool -n "__fish_spool_using_subcommand push" -s l -l lines -d 'Read standard input as one message per line (the newline is removed)'
complete -c spool -n "__fish_spool_using_subcommand push" -s 0 -l null -d 'Read standard input as one message per NUL-terminated record'
complete -c spool -n "__fish_spool_using_subcommand push" -l print-id -d 'Print the id of each new message, one per line'
complete -c spool -n "__fish_spool_using_subcommand push" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand push" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand pop" -s n -l count -d 'Up to N messages (N > 1 needs --lines or --null to frame them)' -r
complete -c spool -n "__fish_spool_using_subcommand pop" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -F
complete -c spool -n "__fish_spool_using_subcommand pop" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r
complete -c spool -n "__fish_spool_using_subcommand pop" -s l -l lines -d 'Follow each message with a newline'
complete -c spool -n "__fish_spool_using_subcommand pop" -s 0 -l null -d 'Follow each message with a NUL byte'
complete -c spool -n "__fish_spool_using_subcommand pop" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand pop" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand peek" -s n -l count -d 'Up to N messages (N > 1 needs --lines or --null to frame them)' -r
complete -c spool -n "__fish_spool_using_subcommand peek" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -F
complete -c spool -n "__fish_spool_using_subcommand peek" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r
complete -c spool -n "__fish_spool_using_subcommand peek" -s l -l lines -d 'Follow each message with a newline'
complete -c spool -n "__fish_spool_using_subcommand peek" -s 0 -l null -d 'Follow each message with a NUL byte'
complete -c spool -n "__fish_spool_using_subcommand peek" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand peek" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand list" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -F
complete -c spool -n "__fish_spool_using_subcommand list" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r
complete -c spool -n "__fish_spool_using_subcommand list" -l json -d 'One JSON object per line: id, size, enqueued (RFC 3339), preview'
complete -c spool -n "__fish_spool_using_subcommand list" -s h -l help -d 'Print help'
complete -c spool -n "__fish_spool_using_subcommand list" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand len" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -F
complete -c spool -n "__fish_spool_using_subcommand len" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r
complete -c spool -n "__fish_spool_using_subcommand len" -s h -l help -d 'Print help'
complete -c spool -n "__fish_spool_using_subcommand len" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand stats" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -F
complete -c spool -n "__fish_spool_using_subcommand stats" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r
complete -c spool -n "__fish_spool_using_subcommand stats" -l json -d 'One JSON object (per queue with --all)'
complete -c spool -n "__fish_spool_using_subcommand stats" -l all -d 'Every queue of the spool'
complete -c spool -n "__fish_spool_using_subcommand stats" -s h -l help -d 'Print help'
complete -c spool -n "__fish_spool_using_subcommand stats" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand clear" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -F
complete -c spool -n "__fish_spool_using_subcommand clear" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r
complete -c spool -n "__fish_spool_using_subcommand clear" -s h -l help -d 'Print help'
complete -c spool -n "__fish_spool_using_subcommand clear" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand queues" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -F
complete -c spool -n "__fish_spool_using_subcommand queues" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r
complete -c spool -n "__fish_spool_using_subcommand queues" -s h -l help -d 'Print help'
complete -c spool -n "__fish_spool_using_subcommand queues" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand completions" -l dir -d 'Spool directory [default: $SPOOL_DIR, else $XDG_STATE_HOME/spool, else ~/.local/state/spool]' -r -F
complete -c spool -n "__fish_spool_using_subcommand completions" -s q -l queue -d 'Queue name: 1-64 of A-Z a-z 0-9 . _ -, not starting with \'.\' [default: $SPOOL_QUEUE, else default]' -r
complete -c spool -n "__fish_spool_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c spool -n "__fish_spool_using_subcommand completions" -s V -l version -d 'Print version'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek list len stats clear queues completions help" -f -a "push" -d 'Add messages to the queue'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek list len stats clear queues completions help" -f -a "pop" -d 'Remove the oldest message and write it to standard output'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek list len stats clear queues completions help" -f -a "peek" -d 'Write the oldest message to standard output without removing it'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek list len stats clear queues completions help" -f -a "list" -d 'List waiting messages in order: id, size, enqueue time, preview'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek list len stats clear queues completions help" -f -a "len" -d 'Print the number of waiting messages'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek list len stats clear queues completions help" -f -a "stats" -d 'Print counts, bytes and the age of the oldest message'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek list len stats clear queues completions help" -f -a "clear" -d 'Remove every waiting message and print how many were removed'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek list len stats clear queues completions help" -f -a "queues" -d 'List the queues of the spool'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek list len stats clear queues completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c spool -n "__fish_spool_using_subcommand help; and not __fish_seen_subcommand_from push pop peek list len stats clear queues completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
