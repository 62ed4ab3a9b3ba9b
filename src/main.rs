//! The `porki` command line; see `porki --help`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
