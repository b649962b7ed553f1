//! A SCIM 2.0 conformance suite that runs against any service provider: a base URL (ending
//! in `/scim/v2` or equivalent) and a bearer token of a tenant that may be written to.
//!
//! Two kinds of checks:
//! - RFC 7643/7644 behaviour, written as code (`rfc`): discovery, create/read/replace/patch/
//!   delete, uniqueness, filters, paging, ETags, errors, Bulk.
//! - Recorded request sequences as identity providers send them (`vectors`, from the JSON
//!   files in `conformance/scim/`, each with its provenance in `conformance/scim/README.md`).
//!
//! Every resource the suite creates has a unique name and is deleted at the end.

mod client;
mod rfc;
mod vectors;

pub use client::{Client, Reply};

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// The result of a run.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub fn passed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.passed).count()
    }
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| !o.passed).count()
    }
    /// One line per check, then `N passed, M failed`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for o in &self.outcomes {
            let mark = if o.passed { "ok  " } else { "FAIL" };
            s.push_str(&format!("{mark} {}", o.name));
            if !o.passed {
                s.push_str(&format!(" -- {}", o.detail));
            }
            s.push('\n');
        }
        s.push_str(&format!(
            "{} passed, {} failed\n",
            self.passed(),
            self.failed()
        ));
        s
    }
}

/// Runs every check against `base` with `token`.
pub async fn run(base: &str, token: &str) -> Report {
    let client = Client::new(base, token);
    let mut report = Report::default();
    rfc::run(&client, &mut report).await;
    vectors::run(&client, &mut report).await;
    report
}
