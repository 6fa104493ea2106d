//! `fuseprint` with no subcommand opens the desktop window; a subcommand runs headless.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    fuseprint::cli::init_logging();
    let cli = fuseprint::cli::Cli::parse();
    match cli.command {
        None => fuseprint::app::run(cli.open),
        Some(command) => fuseprint::cli::run(command),
    }
}
