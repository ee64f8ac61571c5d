//! The `flowclass` binary: parse flags, run, turn the outcome into an exit
//! code. All logic lives in the library and in `cli`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::args::Args::parse();
    let code = if args.list_interfaces {
        cli::live::list()
    } else if args.iface.is_some() {
        cli::live::run_live(args)
    } else {
        cli::run::run(args)
    };
    ExitCode::from(code)
}
