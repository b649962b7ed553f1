//! Recorded request sequences (conformance/scim/*.json), replayed step by step.
//!
//! A vector is `{"name", "steps": [...]}`; a step is `{"name", "method", "path", "body"?,
//! "headers"?, "status": [..], "expect"?: {json-pointer: value}, "absent"?: [json-pointer],
//! "capture"?: {var: json-pointer}}`. Strings may hold `{{sfx}}` (unique per run) and
//! `{{var}}` (captured earlier). A vector stops at its first failing step.

use crate::client::Client;
use crate::{Outcome, Report};
use serde_json::Value;
use std::collections::HashMap;

const VECTORS: &[(&str, &str)] = &[
    ("entra_user.json", include_str!("../scim/entra_user.json")),
    ("entra_group.json", include_str!("../scim/entra_group.json")),
    ("okta_user.json", include_str!("../scim/okta_user.json")),
    ("okta_group.json", include_str!("../scim/okta_group.json")),
];

fn fill(v: &Value, vars: &HashMap<String, String>) -> Value {
    match v {
        Value::String(s) => {
            let mut out = s.clone();
            for (k, val) in vars {
                out = out.replace(&format!("{{{{{k}}}}}"), val);
            }
            Value::String(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| fill(x, vars)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    (
                        fill(&Value::String(k.clone()), vars)
                            .as_str()
                            .unwrap_or(k)
                            .to_owned(),
                        fill(x, vars),
                    )
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

async fn step(c: &Client, s: &Value, vars: &mut HashMap<String, String>) -> Result<(), String> {
    let s = fill(s, vars);
    let method = s["method"].as_str().ok_or("step without method")?;
    let path = s["path"].as_str().ok_or("step without path")?;
    let headers: Vec<(String, String)> = s["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let hdrs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let body = s.get("body").filter(|b| !b.is_null());
    let r = c.request(method, path, body, &hdrs, true).await?;
    let ok_status = s["status"]
        .as_array()
        .map(|a| a.iter().any(|x| x.as_u64() == Some(u64::from(r.status))))
        .unwrap_or(true);
    if !ok_status {
        return Err(format!(
            "{method} {path}: expected status {}, got {}: {}",
            s["status"], r.status, r.body
        ));
    }
    if let Some(exp) = s["expect"].as_object() {
        for (ptr, want) in exp {
            let got = r.body.pointer(ptr).cloned().unwrap_or(Value::Null);
            if &got != want {
                return Err(format!("{method} {path}: {ptr} is {got}, expected {want}"));
            }
        }
    }
    if let Some(absent) = s["absent"].as_array() {
        for ptr in absent.iter().filter_map(Value::as_str) {
            if r.body.pointer(ptr).is_some() {
                return Err(format!("{method} {path}: {ptr} should be absent"));
            }
        }
    }
    if let Some(cap) = s["capture"].as_object() {
        for (var, ptr) in cap {
            let v = ptr
                .as_str()
                .and_then(|p| r.body.pointer(p))
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{method} {path}: nothing to capture at {ptr}"))?;
            vars.insert(var.clone(), v.to_owned());
        }
    }
    Ok(())
}

pub async fn run(c: &Client, report: &mut Report) {
    for (file, text) in VECTORS {
        let vector: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                report.outcomes.push(Outcome {
                    name: (*file).to_owned(),
                    passed: false,
                    detail: format!("unreadable vector: {e}"),
                });
                continue;
            }
        };
        let name = vector["name"].as_str().unwrap_or(file).to_owned();
        let mut vars = HashMap::new();
        let sfx = uuid::Uuid::new_v4().simple().to_string();
        vars.insert("sfx".to_owned(), sfx.get(..10).unwrap_or("x").to_owned());
        let steps = vector["steps"].as_array().cloned().unwrap_or_default();
        let mut failed = None;
        for (i, s) in steps.iter().enumerate() {
            if let Err(e) = step(c, s, &mut vars).await {
                failed = Some(format!(
                    "step {} ({}): {e}",
                    i + 1,
                    s["name"].as_str().unwrap_or("?")
                ));
                break;
            }
        }
        // Best-effort clean-up of what the vector created.
        for s in vector["cleanup"].as_array().into_iter().flatten() {
            let _ = step(c, s, &mut vars).await;
        }
        report.outcomes.push(Outcome {
            name: format!("{name} ({} steps)", steps.len()),
            passed: failed.is_none(),
            detail: failed.unwrap_or_default(),
        });
    }
}
