//! The command line: flags (`args`), and the run that wires a source, the
//! engine and a report (`run`). Declared by the binary only; the library
//! never sees clap.

pub mod args;
pub mod live;
pub mod run;
