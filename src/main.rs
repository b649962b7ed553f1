//! The `idhub` binary: parse the command line and hand over to the library.

use clap::Parser;
use std::process::ExitCode;

/// mimalloc instead of glibc's allocator: 10-25% less CPU per request across the SCIM
/// benchmark's phases, and with transparent huge pages off (`no_thp`) a smaller resident set
/// than glibc's after a 100,000-user run (BENCHMARKS.md, eighth session).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    idhub::cli::run(idhub::cli::Cli::parse()).await
}
