//! The `flowclass` binary: parse flags, run, turn the outcome into an exit
//! code. All logic lives in the library and in `cli`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::args::Args::parse();
    ExitCode::from(cli::run::run(args))
}
