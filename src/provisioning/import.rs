//! Importing a directory export: many SCIM User resources created the way `POST /Users`
//! creates each one (same validation, the tenant's schemas and compatibility profile, change
//! log and audit trail), written in transactions of [`CHUNK`] users.
//!
//! The input is read lazily chunk by chunk, and the next chunk is validated while the
//! database writes the previous one: validation is CPU in this process, the write is the
//! database's, so the two overlap instead of taking turns (see BENCHMARKS.md).
//!
//! Each user succeeds or fails on its own, as in a Bulk request without `failOnErrors`
//! (RFC 7644 §3.7.3): an invalid resource or a taken userName is reported with its record
//! number and the rest go on. A chunk is one transaction, so an interrupted import leaves
//! whole chunks; running it again reports the users already there as taken (409 uniqueness)
//! and creates the rest.

use super::ScimCtx;
use crate::model::NewUser;
use crate::store::StoreError;
use scim::ScimError;
use serde_json::Value;

/// Users per transaction (and per validation step).
pub const CHUNK: usize = 1000;

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Records read.
    pub records: usize,
    /// Users created.
    pub created: usize,
    /// Records not created: record number (1-based, in input order) and why.
    pub failures: Vec<(usize, ScimError)>,
}

/// One input record: a resource, or why it could not be read (malformed JSON line).
pub type Record = Result<Value, String>;

/// Imports every record of `records` (a chunk at a time) into the tenant of `ctx`.
///
/// Stops early only when the database fails (not for a bad record): the error is returned,
/// and the chunks written before it stay (each committed whole).
pub async fn import_users(
    ctx: &ScimCtx,
    records: impl Iterator<Item = Record>,
) -> Result<ImportReport, StoreError> {
    let mut report = ImportReport::default();
    let mut records = records.peekable();
    let mut writing: Option<Pending> = None;
    while records.peek().is_some() {
        let start = report.records;
        let chunk: Vec<Record> = records.by_ref().take(CHUNK).collect();
        report.records += chunk.len();
        // Validate this chunk while the previous one is being written.
        let mut batch = Vec::with_capacity(chunk.len());
        let mut numbers = Vec::with_capacity(chunk.len());
        for (k, record) in chunk.into_iter().enumerate() {
            let number = start + k + 1;
            match prepare(ctx, record).await {
                Ok(u) => {
                    batch.push(u);
                    numbers.push(number);
                }
                Err(e) => report.failures.push((number, e)),
            }
        }
        if let Some(p) = writing.take() {
            p.finish(&mut report).await?;
        }
        let store = ctx.store.clone();
        let actor = ctx.actor.clone();
        writing = Some(Pending {
            numbers,
            task: tokio::spawn(async move { store.create_users(&actor, batch).await }),
        });
    }
    if let Some(p) = writing {
        p.finish(&mut report).await?;
    }
    report.failures.sort_by_key(|(n, _)| *n);
    Ok(report)
}

/// A chunk being written: its record numbers and the write.
struct Pending {
    numbers: Vec<usize>,
    task: tokio::task::JoinHandle<Result<Vec<Result<crate::model::User, StoreError>>, StoreError>>,
}

impl Pending {
    async fn finish(self, report: &mut ImportReport) -> Result<(), StoreError> {
        let results = self
            .task
            .await
            .map_err(|e| StoreError::Corrupt(format!("the import's write task failed: {e}")))??;
        for (number, r) in self.numbers.into_iter().zip(results) {
            match r {
                Ok(_) => report.created += 1,
                Err(e) => report
                    .failures
                    .push((number, super::errors::from_store(e, "User"))),
            }
        }
        Ok(())
    }
}

async fn prepare(ctx: &ScimCtx, record: Record) -> Result<NewUser, ScimError> {
    let input = record.map_err(|e| {
        ScimError::bad_request(
            scim::ScimType::InvalidSyntax,
            format!("malformed JSON: {e}"),
        )
    })?;
    super::users::prepare_new(ctx, &input).await
}

/// Reads the records of an export: a JSON array of User resources, a SCIM `ListResponse`
/// (its `Resources`), or newline-delimited JSON (one resource per line; blank lines skipped).
/// A malformed line is that record's failure, not the whole file's.
pub fn records(text: &str) -> Result<Box<dyn Iterator<Item = Record> + '_>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let all: Vec<Value> =
            serde_json::from_str(trimmed).map_err(|e| format!("malformed JSON array: {e}"))?;
        return Ok(Box::new(all.into_iter().map(Ok)));
    }
    // A whole-document object is a ListResponse; otherwise one object per line.
    if let Ok(Value::Object(mut doc)) = serde_json::from_str::<Value>(trimmed) {
        return match doc.remove("Resources") {
            Some(Value::Array(all)) => Ok(Box::new(all.into_iter().map(Ok))),
            Some(_) => Err("the ListResponse's Resources is not an array".into()),
            // One resource (on one line or pretty-printed).
            None => Ok(Box::new(std::iter::once(Ok(Value::Object(doc))))),
        };
    }
    Ok(Box::new(text.lines().filter(|l| !l.trim().is_empty()).map(
        |l| serde_json::from_str::<Value>(l).map_err(|e| e.to_string()),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<Result<String, ()>> {
        records(text)
            .unwrap()
            .map(|r| {
                r.map(|v| v["userName"].as_str().unwrap_or("").to_owned())
                    .map_err(|_| ())
            })
            .collect()
    }

    #[test]
    fn reads_an_array_a_list_response_and_ndjson() {
        let ok = |s: &str| Ok(s.to_owned());
        assert_eq!(
            names(r#" [{"userName":"a"},{"userName":"b"}]"#),
            vec![ok("a"), ok("b")]
        );
        assert_eq!(
            names(
                r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":2,"Resources":[{"userName":"a"},{"userName":"b"}]}"#
            ),
            vec![ok("a"), ok("b")]
        );
        assert_eq!(
            names("{\"userName\":\"a\"}\n\n{\"userName\":\"b\"}\n"),
            vec![ok("a"), ok("b")]
        );
        assert_eq!(names("{\"userName\":\"a\"}"), vec![ok("a")]);
    }

    #[test]
    fn a_malformed_line_is_that_records_failure() {
        assert_eq!(
            names("{\"userName\":\"a\"}\n{\"userName\":\n{\"userName\":\"c\"}\n"),
            vec![Ok("a".to_owned()), Err(()), Ok("c".to_owned())]
        );
        assert!(records("[{\"userName\":").is_err());
    }
}
