//! The `porki` command line; see `porki --help`.

mod cli;

fn main() -> std::process::ExitCode {
    // Fail points stay inert unless FAILPOINTS names some (chaos tests do).
    let _failpoints = fail::FailScenario::setup();
    cli::main()
}
