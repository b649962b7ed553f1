//! Bulk (RFC 7644 §3.7): many operations in one request, with `bulkId` references between
//! them (a user created and a group containing it, in one request).
//!
//! Operations run in order, each as its own atomic write. An operation that refers to the
//! `bulkId` of a later POST waits until that POST has run (RFC 7644 §3.7.2 lets clients order
//! operations freely); references that can never be resolved (circular, or to a failed
//! operation) fail that operation with 409.

use super::query::Kind;
use super::{Precondition, Projection, ScimCtx, groups, users};
use scim::{ScimError, ScimType};
use serde_json::{Value, json};
use std::collections::HashMap;

/// `bulk.maxOperations` in ServiceProviderConfig.
pub const MAX_OPERATIONS: usize = 1000;
/// `bulk.maxPayloadSize` in ServiceProviderConfig (bytes).
pub const MAX_PAYLOAD: usize = 4 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

struct Op {
    /// Why this operation cannot run (it fails alone, RFC 7644 §3.7.3).
    invalid: Option<ScimError>,
    method: Method,
    method_raw: String,
    bulk_id: Option<String>,
    path: String,
    version: Option<String>,
    data: Option<Value>,
}

fn syntax(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidSyntax, detail)
}

fn parse(body: &Value, strict: bool) -> Result<(Vec<Op>, Option<usize>), ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| syntax("a BulkRequest must be a JSON object"))?;
    let get = |k: &str| {
        obj.iter()
            .find(|(key, _)| {
                if strict {
                    key.as_str() == k
                } else {
                    key.eq_ignore_ascii_case(k)
                }
            })
            .map(|(_, v)| v)
    };
    let schemas_ok = get("schemas").and_then(Value::as_array).is_some_and(|s| {
        s.iter().any(|u| {
            u.as_str()
                .is_some_and(|u| u.eq_ignore_ascii_case(scim::urn::BULK_REQUEST))
        })
    });
    if strict && !schemas_ok {
        return Err(syntax(
            "schemas must contain urn:ietf:params:scim:api:messages:2.0:BulkRequest",
        ));
    }
    let fail_on_errors = match get("failOnErrors") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    ScimError::bad_request(
                        ScimType::InvalidValue,
                        "failOnErrors must be a positive integer",
                    )
                })?,
        ),
    };
    let list = get("Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| syntax("Operations must be an array"))?;
    if list.len() > MAX_OPERATIONS {
        return Err(ScimError {
            status: 413,
            scim_type: Some(ScimType::TooMany),
            detail: format!(
                "a bulk request may hold at most {MAX_OPERATIONS} operations, this one has {}",
                list.len()
            ),
        });
    }
    let mut ops = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        let o = raw
            .as_object()
            .ok_or_else(|| syntax(format!("Operations[{i}] must be an object")))?;
        let field = |k: &str| {
            o.iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v)
        };
        let method_raw = field("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let bulk_id = field("bulkId").and_then(Value::as_str).map(str::to_owned);
        let data = field("data").cloned();
        let path = field("path")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let method = match method_raw.to_ascii_uppercase().as_str() {
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "PATCH" => Some(Method::Patch),
            "DELETE" => Some(Method::Delete),
            _ => None,
        };
        let invalid = match method {
            None if method_raw.is_empty() => {
                Some(syntax(format!("Operations[{i}].method is required")))
            }
            None => Some(syntax(format!(
                "Operations[{i}].method {method_raw:?} is not POST, PUT, PATCH or DELETE"
            ))),
            Some(_) if path.is_empty() => Some(syntax(format!("Operations[{i}].path is required"))),
            Some(Method::Post) if bulk_id.is_none() => Some(syntax(format!(
                "Operations[{i}]: POST requires a bulkId (RFC 7644 §3.7)"
            ))),
            Some(m) if m != Method::Delete && data.is_none() => Some(syntax(format!(
                "Operations[{i}]: {method_raw} requires data"
            ))),
            _ => None,
        };
        ops.push(Op {
            invalid,
            method: method.unwrap_or(Method::Delete),
            method_raw,
            bulk_id,
            path,
            version: field("version").and_then(Value::as_str).map(str::to_owned),
            data,
        });
    }
    Ok((ops, fail_on_errors))
}

/// Every `bulkId:` reference in a value.
fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:") {
                out.push(id.to_owned());
            }
        }
        Value::Array(items) => items.iter().for_each(|i| references(i, out)),
        Value::Object(map) => map.values().for_each(|i| references(i, out)),
        _ => {}
    }
}

fn substitute(v: &mut Value, ids: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:").and_then(|b| ids.get(b)) {
                *s = id.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| substitute(i, ids)),
        Value::Object(map) => map.values_mut().for_each(|i| substitute(i, ids)),
        _ => {}
    }
}

fn target(path: &str) -> Result<(Kind, Option<String>), ScimError> {
    let trimmed = path.trim_start_matches('/');
    let (kind, rest) = match trimmed.split_once('/') {
        Some((k, r)) => (k, Some(r)),
        None => (trimmed, None),
    };
    let kind = match kind {
        "Users" => Kind::Users,
        "Groups" => Kind::Groups,
        _ => {
            return Err(ScimError::bad_request(
                ScimType::InvalidPath,
                format!("unknown bulk path {path:?}"),
            ));
        }
    };
    if rest.is_some_and(|r| r.is_empty() || r.contains('/')) {
        return Err(ScimError::bad_request(
            ScimType::InvalidPath,
            format!("unknown bulk path {path:?}"),
        ));
    }
    Ok((kind, rest.map(str::to_owned)))
}

async fn execute(
    ctx: &ScimCtx,
    op: &Op,
    path: &str,
    data: Option<&Value>,
) -> Result<super::Reply, ScimError> {
    let (kind, id) = target(path)?;
    let proj = Projection::default();
    let version = op.version.as_deref().map(Precondition::parse);
    let empty = Value::Null;
    let data = data.unwrap_or(&empty);
    match (op.method, kind, id) {
        (Method::Post, Kind::Users, None) => users::create(ctx, data, &proj).await,
        (Method::Post, Kind::Groups, None) => groups::create(ctx, data, &proj).await,
        (Method::Put, Kind::Users, Some(id)) => {
            users::replace(ctx, &id, data, &proj, version.as_ref()).await
        }
        (Method::Put, Kind::Groups, Some(id)) => {
            groups::replace(ctx, &id, data, &proj, version.as_ref()).await
        }
        (Method::Patch, Kind::Users, Some(id)) => {
            users::patch(ctx, &id, data, &proj, version.as_ref()).await
        }
        (Method::Patch, Kind::Groups, Some(id)) => {
            groups::patch(ctx, &id, data, &proj, version.as_ref()).await
        }
        (Method::Delete, Kind::Users, Some(id)) => users::delete(ctx, &id, version.as_ref()).await,
        (Method::Delete, Kind::Groups, Some(id)) => {
            groups::delete(ctx, &id, version.as_ref()).await
        }
        _ => Err(ScimError::bad_request(
            ScimType::InvalidPath,
            format!("{} is not allowed on {path:?}", op.method_raw),
        )),
    }
}

/// Whether an operation is a plain user creation that can join a batch: POST /Users whose data
/// refers to no other operation.
fn batchable(op: &Op) -> bool {
    if op.invalid.is_some()
        || op.method != Method::Post
        || op.path.trim_end_matches('/') != "/Users"
    {
        return false;
    }
    let mut refs = Vec::new();
    if let Some(d) = &op.data {
        references(d, &mut refs);
    }
    refs.is_empty()
}

/// Bookkeeping of one Bulk request's execution.
struct Run<'a> {
    ops: &'a [Op],
    pending_posts: HashMap<&'a str, usize>,
    resolved: HashMap<String, String>,
    failed_bulk_ids: Vec<String>,
    results: Vec<Option<Value>>,
    errors: usize,
}

impl Run<'_> {
    fn record(&mut self, i: usize, outcome: Result<super::Reply, ScimError>) {
        let Some(op) = self.ops.get(i) else { return };
        let mut entry = json!({ "method": op.method_raw });
        if let Some(b) = &op.bulk_id {
            entry["bulkId"] = Value::String(b.clone());
        }
        match outcome {
            Ok(reply) => {
                if let (Some(b), Some(loc), Method::Post) =
                    (&op.bulk_id, &reply.location, op.method)
                    && let Some(id) = loc.rsplit('/').next()
                {
                    self.resolved.insert(b.clone(), id.to_owned());
                }
                if let Some(loc) = reply.location {
                    entry["location"] = Value::String(loc);
                }
                if let Some(v) = reply.etag {
                    entry["version"] = Value::String(v);
                }
                entry["status"] = Value::String(reply.status.to_string());
            }
            Err(e) => {
                if let Some(b) = &op.bulk_id {
                    self.failed_bulk_ids.push(b.clone());
                }
                entry["status"] = Value::String(e.status.to_string());
                entry["response"] = e.to_json();
                self.errors += 1;
            }
        }
        if let Some(slot) = self.results.get_mut(i) {
            *slot = Some(entry);
        }
    }

    /// Runs operation `i` if its references are resolved; `false` when it must wait.
    async fn try_one(&mut self, ctx: &ScimCtx, i: usize) -> bool {
        let Some(op) = self.ops.get(i) else {
            return true;
        };
        let mut refs = Vec::new();
        if let Some(d) = &op.data {
            references(d, &mut refs);
        }
        references(
            &Value::String(op.path.rsplit('/').next().unwrap_or_default().to_owned()),
            &mut refs,
        );
        let unresolved: Vec<&String> = refs
            .iter()
            .filter(|r| !self.resolved.contains_key(*r))
            .collect();
        let outcome = if let Some(e) = &op.invalid {
            Err(e.clone())
        } else if let Some(bad) = unresolved.iter().find(|r| {
            self.failed_bulk_ids.contains(r) || !self.pending_posts.contains_key(r.as_str())
        }) {
            Err(ScimError::status(
                409,
                format!("bulkId {bad:?} does not refer to a successful POST in this request"),
            ))
        } else if !unresolved.is_empty() {
            return false;
        } else {
            let mut data = op.data.clone();
            if let Some(d) = data.as_mut() {
                substitute(d, &self.resolved);
            }
            let mut path = Value::String(op.path.clone());
            substitute_path(&mut path, &self.resolved);
            execute(ctx, op, path.as_str().unwrap_or_default(), data.as_ref()).await
        };
        self.record(i, outcome);
        true
    }
}

/// POST /Bulk. Operations run in order; consecutive plain user creations (the shape of an
/// import) run as one batch in one transaction, each still succeeding or failing on its own.
pub async fn run(ctx: &ScimCtx, body: &Value) -> Result<Value, ScimError> {
    let (ops, fail_on_errors) = parse(body, ctx.profile.is_strict())?;
    let mut run = Run {
        ops: &ops,
        pending_posts: ops
            .iter()
            .enumerate()
            .filter(|(_, o)| o.method == Method::Post && o.invalid.is_none())
            .filter_map(|(i, o)| o.bulk_id.as_deref().map(|b| (b, i)))
            .collect(),
        resolved: HashMap::new(),
        failed_bulk_ids: Vec::new(),
        results: vec![None; ops.len()],
        errors: 0,
    };
    let stop = |errors: usize| fail_on_errors.is_some_and(|n| errors >= n);
    // First pass, in order.
    let mut deferred = Vec::new();
    let mut i = 0;
    while i < ops.len() && !stop(run.errors) {
        let run_end = if fail_on_errors.is_none() {
            ops[i..].iter().take_while(|o| batchable(o)).count()
        } else {
            0
        };
        if run_end > 1 {
            let inputs: Vec<&Value> = ops[i..i + run_end]
                .iter()
                .filter_map(|o| o.data.as_ref())
                .collect();
            let outcomes = super::users::create_many(ctx, &inputs).await;
            for (k, outcome) in outcomes.into_iter().enumerate() {
                run.record(i + k, outcome);
            }
            i += run_end;
            continue;
        }
        if !run.try_one(ctx, i).await {
            deferred.push(i);
        }
        i += 1;
    }
    // Later passes: operations that waited for a later POST.
    while !deferred.is_empty() && !stop(run.errors) {
        let mut still = Vec::new();
        for &d in &deferred {
            if stop(run.errors) {
                break;
            }
            if !run.try_one(ctx, d).await {
                still.push(d);
            }
        }
        if still.len() == deferred.len() {
            for d in still {
                let Some(op) = ops.get(d) else { continue };
                if let Some(b) = &op.bulk_id {
                    run.failed_bulk_ids.push(b.clone());
                }
                run.record(
                    d,
                    Err(ScimError::status(
                        409,
                        "circular bulkId references cannot be resolved",
                    )),
                );
            }
            break;
        }
        deferred = still;
    }
    Ok(json!({
        "schemas": [scim::urn::BULK_RESPONSE],
        "Operations": run.results.into_iter().flatten().collect::<Vec<_>>(),
    }))
}

/// Resolves a `bulkId:` reference in the last segment of a path (`/Groups/bulkId:g1`).
fn substitute_path(path: &mut Value, ids: &HashMap<String, String>) {
    if let Value::String(p) = path
        && let Some((head, last)) = p.rsplit_once('/')
        && let Some(id) = last.strip_prefix("bulkId:").and_then(|b| ids.get(b))
    {
        *p = format!("{head}/{id}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_checks_shape_and_limits() {
        let ok = json!({"schemas": [scim::urn::BULK_REQUEST], "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"userName": "a"}},
            {"method": "DELETE", "path": "/Users/123"}
        ]});
        let (ops, f) = parse(&ok, true).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(f, None);
        assert!(parse(&json!({"Operations": []}), true).is_err());
        let no_bulk_id = json!({"Operations": [{"method": "POST", "path": "/Users", "data": {}}]});
        assert!(parse(&no_bulk_id, false).unwrap().0[0].invalid.is_some());
        let bad_method = json!({"Operations": [{"method": "GET", "path": "/Users/1"}]});
        assert!(parse(&bad_method, false).unwrap().0[0].invalid.is_some());
        let many: Vec<Value> = (0..1001)
            .map(|i| json!({"method": "DELETE", "path": format!("/Users/{i}")}))
            .collect();
        let e = parse(&json!({"Operations": many}), false).err().unwrap();
        assert_eq!((e.status, e.scim_type), (413, Some(ScimType::TooMany)));
    }

    #[test]
    fn references_are_found_and_substituted() {
        let mut v = json!({"members": [{"type": "User", "value": "bulkId:u1"}], "x": "bulkId:u2"});
        let mut refs = Vec::new();
        references(&v, &mut refs);
        assert_eq!(refs, ["u1", "u2"]);
        let ids = HashMap::from([("u1".to_owned(), "real-1".to_owned())]);
        substitute(&mut v, &ids);
        assert_eq!(v["members"][0]["value"], "real-1");
        assert_eq!(v["x"], "bulkId:u2");
        let mut p = Value::String("/Groups/bulkId:u1".into());
        substitute_path(&mut p, &ids);
        assert_eq!(p, "/Groups/real-1");
    }

    #[test]
    fn targets() {
        assert_eq!(target("/Users").unwrap(), (Kind::Users, None));
        assert_eq!(
            target("/Groups/abc").unwrap(),
            (Kind::Groups, Some("abc".into()))
        );
        assert!(target("/Other").is_err());
        assert!(target("/Users/a/b").is_err());
    }
}
