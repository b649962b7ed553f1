//! `scim-conformance --base https://host/scim/v2 --token TOKEN`: runs the suite and prints
//! one line per check, then `N passed, M failed`. Exit status 1 when any check failed.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let mut base = std::env::var("SCIM_BASE_URL").ok();
    let mut token = std::env::var("SCIM_TOKEN").ok();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--base" => base = args.next(),
            "--token" => token = args.next(),
            "-h" | "--help" => {
                println!(
                    "usage: scim-conformance --base URL --token TOKEN   (or SCIM_BASE_URL / SCIM_TOKEN)"
                );
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}; see --help");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(base), Some(token)) = (base, token) else {
        eprintln!("--base and --token are required (or SCIM_BASE_URL and SCIM_TOKEN)");
        return ExitCode::from(2);
    };
    let report = conformance::run(&base, &token).await;
    print!("{}", report.render());
    if report.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
