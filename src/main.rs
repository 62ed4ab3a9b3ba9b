//! The `porki` command line; see `porki --help`.

mod cli;

fn main() -> std::process::ExitCode {
    // Fail points exist only in builds with the `failpoints` feature (the test
    // suite's), and even there stay inert unless FAILPOINTS names some.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    cli::main()
}
