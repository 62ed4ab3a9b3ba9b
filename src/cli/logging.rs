//! Log output through `tracing`.

use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

/// Log flags, valid with every command.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// error, warn, info, debug or trace (or a tracing filter such as `porki=debug`);
    /// default info, or warn for `porki demo`, whose progress line says the rest.
    #[arg(long, global = true, env = "PORKI_LOG_LEVEL")]
    log_level: Option<String>,
    /// concise: one short line per event; event: with targets and span fields; json: one object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogStyle::Concise)]
    log_style: LogStyle,
    /// Colour the output.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    color: Color,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogStyle {
    Concise,
    Event,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

/// Installs the global subscriber; logs go to stderr so command output stays clean.
pub fn init(args: &LogArgs, default_level: &str) {
    let level = args.log_level.as_deref().unwrap_or(default_level);
    let filter =
        EnvFilter::try_new(level.to_ascii_lowercase()).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = match args.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match args.log_style {
        LogStyle::Concise => builder.compact().with_target(false).try_init(),
        LogStyle::Event => builder.try_init(),
        LogStyle::Json => builder.json().try_init(),
    };
}
