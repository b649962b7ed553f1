//! The `idhub` binary: parse the command line and hand over to the library.

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    idhub::cli::run(idhub::cli::Cli::parse()).await
}
