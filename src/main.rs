fn main() -> std::process::ExitCode {
    spool::app::main()
}
