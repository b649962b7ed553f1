//! Listing and searching (RFC 7644 §3.4.2, §3.4.3) with index pagination and cursor
//! pagination (RFC 9865).

use super::errors::from_store;
use super::{Projection, ScimCtx};
use crate::store::Search;
use base64::Engine;
use scim::filter::{self, AttrRef, Expr};
use scim::schema::ResourceSchema;
use scim::{ScimError, ScimType};
use serde_json::{Value, json};

/// `filter.maxResults` in ServiceProviderConfig: the largest page served.
pub const MAX_RESULTS: i64 = 1000;
/// The page size when the client gives no `count`.
pub const DEFAULT_COUNT: i64 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Users,
    Groups,
}

/// Query parameters, from a query string or a SearchRequest body.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    pub start_index: Option<String>,
    pub count: Option<String>,
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
    /// RFC 9865: present (possibly empty) selects cursor pagination.
    pub cursor: Option<String>,
}

fn invalid_value(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidValue, detail)
}

impl ListParams {
    /// From a query string's pairs (names are case-insensitive; RFC 7644 §3.4.2 spells them
    /// in camelCase).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut p = Self::default();
        for (k, v) in pairs {
            match k.to_ascii_lowercase().as_str() {
                "filter" => p.filter = Some(v),
                "sortby" => p.sort_by = Some(v),
                "sortorder" => p.sort_order = Some(v),
                "startindex" => p.start_index = Some(v),
                "count" => p.count = Some(v),
                "attributes" => p.attributes = Some(v),
                "excludedattributes" => p.excluded_attributes = Some(v),
                "cursor" => p.cursor = Some(v),
                _ => {}
            }
        }
        p
    }

    /// From a SearchRequest body (RFC 7644 §3.4.3).
    pub fn from_search_body(body: &Value, strict: bool) -> Result<Self, ScimError> {
        let obj = body.as_object().ok_or_else(|| {
            ScimError::bad_request(
                ScimType::InvalidSyntax,
                "a SearchRequest must be a JSON object",
            )
        })?;
        let schemas_ok = obj
            .get("schemas")
            .and_then(Value::as_array)
            .is_some_and(|s| {
                s.iter().any(|u| {
                    u.as_str()
                        .is_some_and(|u| u.eq_ignore_ascii_case(scim::urn::SEARCH_REQUEST))
                })
            });
        if strict && !schemas_ok {
            return Err(ScimError::bad_request(
                ScimType::InvalidSyntax,
                "schemas must contain urn:ietf:params:scim:api:messages:2.0:SearchRequest",
            ));
        }
        let text = |key: &str| -> Result<Option<String>, ScimError> {
            match obj
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
            {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) if key == "startIndex" || key == "count" => {
                    Ok(Some(n.to_string()))
                }
                Some(Value::Array(items)) if key == "attributes" || key == "excludedAttributes" => {
                    Ok(Some(
                        items
                            .iter()
                            .map(|i| {
                                i.as_str().map(str::to_owned).ok_or_else(|| {
                                    invalid_value(format!("{key} must list strings"))
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()?
                            .join(","),
                    ))
                }
                Some(_) => Err(invalid_value(format!("{key} has the wrong type"))),
            }
        };
        Ok(Self {
            filter: text("filter")?,
            sort_by: text("sortBy")?,
            sort_order: text("sortOrder")?,
            start_index: text("startIndex")?,
            count: text("count")?,
            attributes: text("attributes")?,
            excluded_attributes: text("excludedAttributes")?,
            cursor: text("cursor")?,
        })
    }
}

/// Paging after RFC 7644 §3.4.2.4: startIndex below 1 means 1, a negative count means 0,
/// count is capped at `MAX_RESULTS`.
fn paging(p: &ListParams) -> Result<(i64, i64), ScimError> {
    let start = match p.start_index.as_deref().map(str::trim) {
        None | Some("") => 1,
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| invalid_value("startIndex must be an integer"))?
            .max(1),
    };
    let count = match p.count.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_COUNT,
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| invalid_value("count must be an integer"))?
            .clamp(0, MAX_RESULTS),
    };
    Ok((start, count))
}

fn descending(p: &ListParams) -> Result<bool, ScimError> {
    match p.sort_order.as_deref().map(str::trim) {
        None | Some("") => Ok(false),
        Some(o) if o.eq_ignore_ascii_case("ascending") => Ok(false),
        Some(o) if o.eq_ignore_ascii_case("descending") => Ok(true),
        Some(o) => Err(invalid_value(format!(
            "sortOrder must be ascending or descending, not {o:?}"
        ))),
    }
}

const CURSOR_PREFIX: &str = "c1:";

fn encode_cursor(last_id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{last_id}"))
}

fn invalid_cursor() -> ScimError {
    ScimError::bad_request(ScimType::InvalidCursor, "the cursor is not valid")
}

fn decode_cursor(raw: &str) -> Result<Option<String>, ScimError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim())
        .map_err(|_| invalid_cursor())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid_cursor())?;
    let id = text
        .strip_prefix(CURSOR_PREFIX)
        .ok_or_else(invalid_cursor)?;
    if id.is_empty() || id.len() > 64 {
        return Err(invalid_cursor());
    }
    Ok(Some(id.to_owned()))
}

fn schema_of(ctx: &ScimCtx, kind: Kind) -> &ResourceSchema {
    match kind {
        Kind::Users => &ctx.users,
        Kind::Groups => &ctx.groups,
    }
}

struct Prepared {
    filter: Option<Expr>,
    sort: Option<(AttrRef, bool)>,
    proj: Projection,
}

fn prepare(ctx: &ScimCtx, kind: Kind, p: &ListParams) -> Result<Prepared, ScimError> {
    let schema = schema_of(ctx, kind);
    let filter = match p.filter.as_deref() {
        Some(f) if !f.trim().is_empty() => Some(filter::parse(schema, f)?),
        _ => None,
    };
    let sort = match p.sort_by.as_deref() {
        Some(s) if !s.trim().is_empty() => Some((filter::sort_by(schema, s)?, descending(p)?)),
        _ => None,
    };
    let proj = Projection::parse(
        schema,
        p.attributes.as_deref(),
        p.excluded_attributes.as_deref(),
        ctx.profile,
    )?;
    Ok(Prepared { filter, sort, proj })
}

/// GET /Users, GET /Groups, POST /{Users,Groups}/.search.
pub async fn list(ctx: &ScimCtx, kind: Kind, p: &ListParams) -> Result<Value, ScimError> {
    let (start, count) = paging(p)?;
    let prep = prepare(ctx, kind, p)?;
    let cursor_mode = p.cursor.is_some();
    if cursor_mode && p.start_index.is_some() {
        return Err(invalid_value(
            "use either cursor or startIndex, not both (RFC 9865)",
        ));
    }
    if cursor_mode && prep.sort.is_some() {
        return Err(invalid_value(
            "sortBy cannot be combined with cursor pagination; results are in creation order",
        ));
    }
    let after_id = match &p.cursor {
        Some(c) => decode_cursor(c)?,
        None => None,
    };
    let search = Search {
        filter: prep.filter.as_ref(),
        sort: prep.sort.as_ref().map(|(a, d)| (a, *d)),
        offset: start - 1,
        // One extra row tells whether a next page exists.
        count: if cursor_mode && count > 0 {
            count + 1
        } else {
            count
        },
        after_id,
        with_groups: kind == Kind::Users && prep.proj.includes(&ctx.users, "groups"),
    };
    let (mut resources, total, ids) = match kind {
        Kind::Users => {
            let found = ctx
                .store
                .search_users(&search)
                .await
                .map_err(|e| from_store(e, "User"))?;
            let mut out = Vec::with_capacity(found.items.len());
            let ids: Vec<String> = found.items.iter().map(|u| u.id.clone()).collect();
            for (k, u) in found.items.iter().enumerate() {
                let groups = found.groups.as_ref().and_then(|g| g.get(k));
                out.push(
                    super::users::render_found(ctx, u, groups.map(|g| g.as_slice()), &prep.proj)
                        .await?,
                );
            }
            (out, found.total, ids)
        }
        Kind::Groups => {
            let found = ctx
                .store
                .search_groups(&search)
                .await
                .map_err(|e| from_store(e, "Group"))?;
            let mut out = Vec::with_capacity(found.items.len());
            let ids: Vec<String> = found.items.iter().map(|g| g.id.clone()).collect();
            for g in &found.items {
                out.push(super::groups::render(ctx, g, &prep.proj).await?);
            }
            (out, found.total, ids)
        }
    };
    let mut next = None;
    if cursor_mode && count > 0 && resources.len() as i64 > count {
        resources.truncate(usize::try_from(count).unwrap_or(0));
        next = ids
            .get(resources.len().saturating_sub(1))
            .map(|id| encode_cursor(id));
    }
    let mut body = json!({
        "schemas": [scim::urn::LIST_RESPONSE],
        "totalResults": total,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    });
    if !cursor_mode {
        body["startIndex"] = json!(start);
    }
    if let Some(n) = next {
        body["nextCursor"] = Value::String(n);
    }
    Ok(body)
}

/// POST /.search at the root (RFC 7644 §3.4.3): Users, then Groups. A filter that names
/// attributes of only one resource type searches only that type; one that fits neither is
/// `invalidFilter`.
pub async fn search_all(ctx: &ScimCtx, p: &ListParams) -> Result<Value, ScimError> {
    if p.cursor.is_some() || p.sort_by.is_some() {
        return Err(invalid_value(
            "root searches support neither cursor nor sortBy",
        ));
    }
    let (start, count) = paging(p)?;
    let mut kinds = Vec::new();
    let mut last_err = None;
    for kind in [Kind::Users, Kind::Groups] {
        match prepare(ctx, kind, p) {
            Ok(prep) => kinds.push((kind, prep)),
            Err(e) => last_err = Some(e),
        }
    }
    if kinds.is_empty() {
        return Err(last_err.unwrap_or_else(|| invalid_value("nothing to search")));
    }
    let mut totals = Vec::new();
    for (kind, prep) in &kinds {
        let s = Search {
            filter: prep.filter.as_ref(),
            count: 0,
            ..Search::default()
        };
        let total = match kind {
            Kind::Users => {
                ctx.store
                    .search_users(&s)
                    .await
                    .map_err(|e| from_store(e, "User"))?
                    .total
            }
            Kind::Groups => {
                ctx.store
                    .search_groups(&s)
                    .await
                    .map_err(|e| from_store(e, "Group"))?
                    .total
            }
        };
        totals.push(total);
    }
    let mut skip = start - 1;
    let mut remaining = count;
    let mut resources = Vec::new();
    for ((kind, prep), total) in kinds.iter().zip(&totals) {
        if skip >= *total {
            skip -= total;
            continue;
        }
        if remaining == 0 {
            break;
        }
        let s = Search {
            filter: prep.filter.as_ref(),
            offset: skip,
            count: remaining,
            with_groups: *kind == Kind::Users && prep.proj.includes(&ctx.users, "groups"),
            ..Search::default()
        };
        skip = 0;
        match kind {
            Kind::Users => {
                let found = ctx
                    .store
                    .search_users(&s)
                    .await
                    .map_err(|e| from_store(e, "User"))?;
                for (k, u) in found.items.iter().enumerate() {
                    let groups = found.groups.as_ref().and_then(|g| g.get(k));
                    resources.push(
                        super::users::render_found(
                            ctx,
                            u,
                            groups.map(|g| g.as_slice()),
                            &prep.proj,
                        )
                        .await?,
                    );
                }
            }
            Kind::Groups => {
                for g in ctx
                    .store
                    .search_groups(&s)
                    .await
                    .map_err(|e| from_store(e, "Group"))?
                    .items
                {
                    resources.push(super::groups::render(ctx, &g, &prep.proj).await?);
                }
            }
        }
        remaining = count - resources.len() as i64;
    }
    Ok(json!({
        "schemas": [scim::urn::LIST_RESPONSE],
        "totalResults": totals.iter().sum::<i64>(),
        "itemsPerPage": resources.len(),
        "startIndex": start,
        "Resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_follows_rfc7644() {
        let p = |s: Option<&str>, c: Option<&str>| ListParams {
            start_index: s.map(str::to_owned),
            count: c.map(str::to_owned),
            ..ListParams::default()
        };
        assert_eq!(paging(&p(None, None)).unwrap(), (1, DEFAULT_COUNT));
        assert_eq!(paging(&p(Some("0"), Some("-5"))).unwrap(), (1, 0));
        assert_eq!(
            paging(&p(Some("3"), Some("100000"))).unwrap(),
            (3, MAX_RESULTS)
        );
        assert!(paging(&p(Some("x"), None)).is_err());
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor("0190-abc");
        assert_eq!(decode_cursor(&c).unwrap().as_deref(), Some("0190-abc"));
        assert_eq!(decode_cursor("").unwrap(), None);
        assert_eq!(
            decode_cursor("!!!").unwrap_err().scim_type,
            Some(ScimType::InvalidCursor)
        );
        let other = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("x:1");
        assert!(decode_cursor(&other).is_err());
    }

    #[test]
    fn search_body_parsing() {
        let body = json!({
            "schemas": [scim::urn::SEARCH_REQUEST],
            "attributes": ["displayName", "userName"],
            "filter": "displayName sw \"smith\"",
            "startIndex": 1,
            "count": 10
        });
        let p = ListParams::from_search_body(&body, true).unwrap();
        assert_eq!(p.attributes.as_deref(), Some("displayName,userName"));
        assert_eq!(p.count.as_deref(), Some("10"));
        assert!(ListParams::from_search_body(&json!({"filter": 5}), false).is_err());
        assert!(ListParams::from_search_body(&json!({}), true).is_err());
    }
}
