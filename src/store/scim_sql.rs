//! Typed SCIM filters (`scim::filter::Expr`) compiled to SQL, evaluated in the database on
//! both backends (RFC 7644 §3.4.2.2).
//!
//! Only bound parameters carry values; column names come from `match`es, JSON paths only from
//! schema-resolved canonical names checked by `dialect::safe_segment`. Comparisons follow the
//! attribute's characteristics: `caseExact=false` strings compare through `lower()` (or the
//! normalised `*_norm` columns), `co`/`sw`/`ew` are `LIKE` with `%`, `_` and `\` escaped,
//! booleans compare as JSON booleans, numbers as numbers, dateTimes as canonical text or as
//! microsecond columns. A negation treats an unknown value as "does not match", so
//! `not (title eq "x")` and `title ne "x"` include users without a title.

use super::dialect::{Backend, JsonBase, contains_pattern, escape_like, safe_segment};
use scim::filter::{AttrRef, Expr, Op, Value};
use scim::schema::AttrType;

/// Which table a query runs on. Its rows are aliased `r`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Users,
    Groups,
}

/// A value bound to a placeholder.
#[derive(Clone, Debug, PartialEq)]
pub enum Bind {
    Text(String),
    Int(i64),
    Float(f64),
}

/// Why a resolved filter cannot be compiled (reported as `invalidFilter`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Unsupported(pub String);

/// SQL for a boolean condition on `r`, with its binds numbered from `first_param`.
pub struct Compiled {
    pub sql: String,
    pub binds: Vec<Bind>,
}

pub struct Compiler {
    backend: Backend,
    table: Table,
    first_param: usize,
    binds: Vec<Bind>,
    aliases: u32,
}

/// The element context inside `attr[...]` or an EXISTS over a multi-valued attribute.
#[derive(Clone, Copy)]
enum Ctx<'a> {
    Row,
    JsonElement(&'a str),
    Membership(&'a str),
}

impl Compiler {
    pub fn new(backend: Backend, table: Table, first_param: usize) -> Self {
        Self {
            backend,
            table,
            first_param,
            binds: Vec::new(),
            aliases: 0,
        }
    }

    pub fn compile(mut self, e: &Expr) -> Result<Compiled, Unsupported> {
        let sql = self.expr(e, Ctx::Row)?;
        Ok(Compiled {
            sql,
            binds: self.binds,
        })
    }

    /// Binds a value and returns its placeholder.
    pub fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.first_param + self.binds.len() - 1)
    }

    pub fn into_binds(self) -> Vec<Bind> {
        self.binds
    }

    pub fn binds(&self) -> &[Bind] {
        &self.binds
    }

    fn alias(&mut self) -> String {
        self.aliases += 1;
        format!("e{}", self.aliases)
    }

    fn expr(&mut self, e: &Expr, ctx: Ctx<'_>) -> Result<String, Unsupported> {
        match e {
            Expr::And(items) => self.join(items, " AND ", ctx),
            Expr::Or(items) => self.join(items, " OR ", ctx),
            Expr::Not(inner) => Ok(format!("NOT coalesce(({}), FALSE)", self.expr(inner, ctx)?)),
            Expr::Any(parent, inner) => self.exists(parent, inner),
            Expr::Present(a) | Expr::Cmp(a, ..) if matches!(ctx, Ctx::Row) && a.multi_valued => {
                // `emails.value eq "x"` outside brackets: some element matches.
                self.exists(a, e)
            }
            Expr::Present(a) => self.present(a, ctx),
            Expr::Cmp(a, op, v) => self.compare(a, *op, v, ctx),
        }
    }

    fn join(&mut self, items: &[Expr], sep: &str, ctx: Ctx<'_>) -> Result<String, Unsupported> {
        let parts = items
            .iter()
            .map(|i| self.expr(i, ctx))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(format!("({})", parts.join(sep)))
    }

    /// EXISTS over the elements of a multi-valued attribute (JSON array, or the membership
    /// table for the computed `groups` / `members`).
    fn exists(&mut self, parent: &AttrRef, inner: &Expr) -> Result<String, Unsupported> {
        let alias = self.alias();
        if parent.computed && parent.extension.is_none() {
            return match (self.table, parent.name.as_str()) {
                (Table::Users, "groups") => self.group_closure(&alias, inner),
                _ => Err(Unsupported(format!(
                    "`{}` cannot be filtered on",
                    parent.name
                ))),
            };
        }
        if self.table == Table::Groups && parent.name == "members" && parent.extension.is_none() {
            let cond = self.expr(inner, Ctx::Membership(&alias))?;
            return Ok(format!(
                "EXISTS (SELECT 1 FROM group_members {alias} LEFT JOIN users {alias}u ON {alias}u.id = {alias}.member_id LEFT JOIN groups {alias}g ON {alias}g.id = {alias}.member_id WHERE {alias}.tenant_id = r.tenant_id AND {alias}.group_id = r.id AND {cond})"
            ));
        }
        let path = json_path(parent, false)?;
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        let from = self.backend.json_elements("r.attributes", &refs, &alias);
        let cond = self.expr(inner, Ctx::JsonElement(&alias))?;
        Ok(format!("EXISTS (SELECT 1 FROM {from} WHERE {cond})"))
    }

    /// `groups` of a user (RFC 7643 §4.1.2: direct and indirect memberships): users whose
    /// membership closure has a group satisfying `inner`. The closure is walked down from the
    /// groups (from the one group when the filter is `groups.value eq "<id>"`, the way members
    /// are paged), never per user row. `$1` is the tenant in every store query.
    fn group_closure(&mut self, alias: &str, inner: &Expr) -> Result<String, Unsupported> {
        let seed = match inner {
            Expr::Cmp(a, Op::Eq, Value::Str(id))
                if a.sub.as_deref().unwrap_or("value") == "value" =>
            {
                let p = self.bind(Bind::Text(id.clone()));
                format!(" AND group_id = {p}")
            }
            _ => String::new(),
        };
        let cond = self.expr(inner, Ctx::Membership(alias))?;
        Ok(format!(
            "r.id IN (WITH RECURSIVE {alias}d(gid, member, ty, depth) AS (SELECT group_id, member_id, member_type, 0 FROM group_members WHERE tenant_id = $1{seed} UNION SELECT {alias}d.gid, m.member_id, m.member_type, {alias}d.depth + 1 FROM group_members m JOIN {alias}d ON m.group_id = {alias}d.member WHERE m.tenant_id = $1 AND {alias}d.ty = 'Group' AND {alias}d.depth < 32) SELECT {alias}.member FROM {alias}d {alias} JOIN groups {alias}g ON {alias}g.id = {alias}.gid WHERE {alias}g.deleted_at IS NULL AND {alias}.ty = 'User' AND {cond})"
        ))
    }

    /// A scalar SQL expression for the attribute and how it compares.
    fn operand(&mut self, a: &AttrRef, ctx: Ctx<'_>) -> Result<Operand, Unsupported> {
        let b = self.backend;
        match ctx {
            Ctx::Membership(alias) => {
                let sub = a.sub.as_deref().unwrap_or("value");
                return match (self.table, sub) {
                    (Table::Users, "value") => Ok(Operand::text(format!("{alias}.gid"), true)),
                    (Table::Users, "display") => {
                        Ok(Operand::text(format!("{alias}g.display_name"), false))
                    }
                    (Table::Users, "type") => Ok(Operand::text(
                        format!("CASE WHEN {alias}.depth = 0 THEN 'direct' ELSE 'indirect' END"),
                        false,
                    )),
                    (Table::Groups, "value") => {
                        Ok(Operand::text(format!("{alias}.member_id"), true))
                    }
                    (Table::Groups, "type") => {
                        Ok(Operand::text(format!("{alias}.member_type"), false))
                    }
                    (Table::Groups, "display") => Ok(Operand::text(
                        format!(
                            "coalesce({alias}u.display_name, {alias}u.user_name, {alias}g.display_name)"
                        ),
                        false,
                    )),
                    _ => Err(Unsupported(format!(
                        "`{}.{sub}` cannot be filtered on",
                        a.name
                    ))),
                };
            }
            Ctx::JsonElement(alias) => {
                let path: Vec<&str> = a.sub.iter().map(String::as_str).collect();
                if path.iter().any(|s| !safe_segment(s)) {
                    return Err(Unsupported("attribute name not supported".into()));
                }
                return Ok(Operand::json(
                    b,
                    JsonBase::Element(alias),
                    path.iter().map(|s| (*s).to_owned()).collect(),
                    a,
                ));
            }
            Ctx::Row => {}
        }
        if a.common {
            return match (a.name.as_str(), a.sub.as_deref()) {
                ("id", None) => Ok(Operand::text("r.id".into(), true)),
                ("externalId", None) => Ok(Operand::text("r.external_id".into(), true)),
                ("meta", Some("created")) => Ok(Operand::Micros("r.created_at".into())),
                ("meta", Some("lastModified")) => Ok(Operand::Micros("r.updated_at".into())),
                ("meta", Some("resourceType")) => Ok(Operand::text(
                    match self.table {
                        Table::Users => "'User'".into(),
                        Table::Groups => "'Group'".into(),
                    },
                    true,
                )),
                ("meta", Some("version")) => Ok(Operand::Version),
                _ => Err(Unsupported(format!("`{}` cannot be filtered on", a.name))),
            };
        }
        if a.extension.is_none() {
            match (self.table, a.name.as_str(), a.sub.as_deref()) {
                (Table::Users, "userName", None) => {
                    return Ok(Operand::Norm("r.user_name_norm".into()));
                }
                (Table::Users, "active", None) => return Ok(Operand::Flag("r.active".into())),
                (Table::Groups, "displayName", None) => {
                    return Ok(Operand::Norm("r.display_name_norm".into()));
                }
                _ => {}
            }
        }
        let path = json_path(a, true)?;
        Ok(Operand::json(b, JsonBase::Column("r.attributes"), path, a))
    }

    fn present(&mut self, a: &AttrRef, ctx: Ctx<'_>) -> Result<String, Unsupported> {
        Ok(match self.operand(a, ctx)? {
            Operand::Json { base, path, .. } => {
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                self.backend.json_present(base.as_base(), &refs)
            }
            Operand::Text { expr, .. } | Operand::Norm(expr) => {
                format!("coalesce({expr}, '') <> ''")
            }
            Operand::Micros(c) | Operand::Flag(c) => format!("{c} IS NOT NULL"),
            Operand::Version => "TRUE".into(),
        })
    }

    fn compare(
        &mut self,
        a: &AttrRef,
        op: Op,
        v: &Value,
        ctx: Ctx<'_>,
    ) -> Result<String, Unsupported> {
        if op == Op::Ne {
            let eq = self.compare(a, Op::Eq, v, ctx)?;
            return Ok(format!("NOT coalesce(({eq}), FALSE)"));
        }
        let operand = self.operand(a, ctx)?;
        match (operand, v) {
            (Operand::Flag(col), Value::Bool(b)) => Ok(format!("{col} = {}", i64::from(*b))),
            (Operand::Micros(col), Value::DateTime { micros, .. }) => {
                let p = self.bind(Bind::Int(*micros));
                Ok(format!("{col} {} {p}", sql_op(op)?))
            }
            (Operand::Version, Value::Str(s)) => {
                let n: i64 = s
                    .trim()
                    .trim_start_matches("W/")
                    .trim_matches('"')
                    .parse()
                    .map_err(|_| {
                        Unsupported("meta.version compares with a version such as W/\"3\"".into())
                    })?;
                let p = self.bind(Bind::Int(n));
                Ok(format!("r.version {} {p}", sql_op(op)?))
            }
            (Operand::Norm(col), Value::Str(s)) => {
                self.text_cmp(&col, true, op, &s.to_lowercase(), false)
            }
            (Operand::Text { expr, case_exact }, Value::Str(s)) => {
                self.text_cmp(&expr, false, op, s, !case_exact)
            }
            (
                Operand::Json {
                    base,
                    path,
                    ty,
                    case_exact,
                },
                v,
            ) => {
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                let b = self.backend;
                match (ty, v) {
                    (AttrType::Boolean, Value::Bool(x)) if op == Op::Eq => {
                        Ok(b.json_bool_is(base.as_base(), &refs, *x))
                    }
                    (AttrType::Integer | AttrType::Decimal, Value::Int(i)) => {
                        let p = self.bind(Bind::Int(*i));
                        Ok(format!(
                            "{} {} {p}",
                            b.json_number(base.as_base(), &refs),
                            sql_op(op)?
                        ))
                    }
                    (AttrType::Integer | AttrType::Decimal, Value::Dec(d)) => {
                        let p = self.bind(Bind::Float(*d));
                        Ok(format!(
                            "{} {} {p}",
                            b.json_number(base.as_base(), &refs),
                            sql_op(op)?
                        ))
                    }
                    (AttrType::DateTime, Value::DateTime { text, .. }) => {
                        let expr = b.json_text(base.as_base(), &refs);
                        self.text_cmp(&expr, false, op, text, false)
                    }
                    (_, Value::Str(s)) => {
                        let expr = b.json_text(base.as_base(), &refs);
                        self.text_cmp(&expr, false, op, s, !case_exact)
                    }
                    _ => Err(Unsupported(
                        "this comparison does not apply to the attribute's type".into(),
                    )),
                }
            }
            _ => Err(Unsupported(
                "this comparison does not apply to the attribute's type".into(),
            )),
        }
    }

    /// A string comparison. `fold` lower-cases both sides in SQL (caseExact=false);
    /// `prenormalised` columns already hold lower-case text and get a lower-cased value.
    fn text_cmp(
        &mut self,
        expr: &str,
        _prenormalised: bool,
        op: Op,
        value: &str,
        fold: bool,
    ) -> Result<String, Unsupported> {
        let (lhs, wrap): (String, fn(&str) -> String) = if fold {
            (format!("lower({expr})"), |p| format!("lower({p})"))
        } else {
            (expr.to_owned(), |p| p.to_owned())
        };
        Ok(match op {
            Op::Co | Op::Sw | Op::Ew => {
                let pattern = match op {
                    Op::Co => contains_pattern(value),
                    Op::Sw => format!("{}%", escape_like(value)),
                    _ => format!("%{}", escape_like(value)),
                };
                let p = self.bind(Bind::Text(pattern));
                format!("{lhs} LIKE {} ESCAPE '\\'", wrap(&p))
            }
            other => {
                let p = self.bind(Bind::Text(value.to_owned()));
                format!("{lhs} {} {}", sql_op(other)?, wrap(&p))
            }
        })
    }
}

/// How an attribute's value is read.
enum Operand {
    /// A text column (or literal); `case_exact=false` compares through `lower()`.
    Text { expr: String, case_exact: bool },
    /// A column holding lower-cased text (`user_name_norm`): compared with a lower-cased value.
    Norm(String),
    /// A 0/1 column.
    Flag(String),
    /// A microseconds column (meta.created / meta.lastModified).
    Micros(String),
    /// `meta.version`: the row's version number.
    Version,
    /// A JSON value.
    Json {
        base: OwnedBase,
        path: Vec<String>,
        ty: AttrType,
        case_exact: bool,
    },
}

impl Operand {
    fn text(expr: String, case_exact: bool) -> Self {
        Self::Text { expr, case_exact }
    }

    fn json(_b: Backend, base: JsonBase<'_>, path: Vec<String>, a: &AttrRef) -> Self {
        Self::Json {
            base: match base {
                JsonBase::Column(c) => OwnedBase::Column(c.to_owned()),
                JsonBase::Element(e) => OwnedBase::Element(e.to_owned()),
            },
            path,
            ty: a.ty,
            case_exact: a.case_exact,
        }
    }
}

enum OwnedBase {
    Column(String),
    Element(String),
}

impl OwnedBase {
    fn as_base(&self) -> JsonBase<'_> {
        match self {
            Self::Column(c) => JsonBase::Column(c),
            Self::Element(e) => JsonBase::Element(e),
        }
    }
}

fn sql_op(op: Op) -> Result<&'static str, Unsupported> {
    Ok(match op {
        Op::Eq => "=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Ne => "<>",
        Op::Co | Op::Sw | Op::Ew => {
            return Err(Unsupported(
                "substring operators apply to strings only".into(),
            ));
        }
    })
}

/// The JSON path of an attribute in the stored document: extension URN first, then the
/// attribute, then (when `with_sub`) the sub-attribute.
fn json_path(a: &AttrRef, with_sub: bool) -> Result<Vec<String>, Unsupported> {
    let mut path = Vec::new();
    if let Some(urn) = &a.extension {
        path.push(urn.clone());
    }
    path.push(a.name.clone());
    if with_sub && let Some(s) = &a.sub {
        path.push(s.clone());
    }
    if path.iter().all(|s| safe_segment(s)) {
        Ok(path)
    } else {
        Err(Unsupported(
            "attribute name not supported in filters".into(),
        ))
    }
}

/// An ORDER BY expression for a resolved `sortBy` attribute (RFC 7644 §3.4.2.3). Multi-valued
/// attributes sort by their first element's value (`emails` by the primary email column).
pub fn sort_expr(backend: Backend, table: Table, a: &AttrRef) -> Result<String, Unsupported> {
    if a.common {
        return match (a.name.as_str(), a.sub.as_deref()) {
            ("id", None) => Ok("r.id".into()),
            ("externalId", None) => Ok("r.external_id".into()),
            ("meta", Some("created")) => Ok("r.created_at".into()),
            ("meta", Some("lastModified")) => Ok("r.updated_at".into()),
            _ => Err(Unsupported(format!("cannot sort by `{}`", a.name))),
        };
    }
    if a.computed {
        return Err(Unsupported(format!("cannot sort by `{}`", a.name)));
    }
    if a.extension.is_none() {
        match (table, a.name.as_str()) {
            (Table::Users, "userName") => return Ok("r.user_name_norm".into()),
            (Table::Users, "emails") => return Ok("r.email".into()),
            (Table::Groups, "displayName") => return Ok("r.display_name_norm".into()),
            _ => {}
        }
    }
    if a.multi_valued {
        let array = a.name.as_str();
        let sub: Vec<&str> = a.sub.iter().map(String::as_str).collect();
        if a.extension.is_some() || !safe_segment(array) || sub.iter().any(|s| !safe_segment(s)) {
            return Err(Unsupported(format!("cannot sort by `{}`", a.name)));
        }
        return Ok(backend.json_first_text("r.attributes", array, &sub));
    }
    let path = json_path(a, true)?;
    let refs: Vec<&str> = path.iter().map(String::as_str).collect();
    let text = backend.json_text(JsonBase::Column("r.attributes"), &refs);
    Ok(match (a.ty, a.case_exact) {
        (AttrType::Integer | AttrType::Decimal, _) => {
            backend.json_number(JsonBase::Column("r.attributes"), &refs)
        }
        (AttrType::String, false) => format!("lower({text})"),
        _ => text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use scim::schema::ResourceSchema;

    fn sql(backend: Backend, f: &str) -> Compiled {
        let e = scim::filter::parse(&ResourceSchema::user(), f).unwrap();
        Compiler::new(backend, Table::Users, 2).compile(&e).unwrap()
    }

    #[test]
    fn user_name_uses_the_normalised_indexed_column() {
        let c = sql(Backend::Sqlite, r#"userName eq "BJensen""#);
        assert_eq!(c.sql, "r.user_name_norm = $2");
        assert_eq!(c.binds, vec![Bind::Text("bjensen".into())]);
    }

    #[test]
    fn substring_patterns_escape_wildcards() {
        let c = sql(Backend::Postgres, r#"title co "50%_off""#);
        assert!(c.sql.contains("LIKE lower($2) ESCAPE '\\'"), "{}", c.sql);
        assert_eq!(c.binds, vec![Bind::Text(r"%50\%\_off%".into())]);
    }

    #[test]
    fn value_filters_become_exists_over_elements() {
        for b in [Backend::Sqlite, Backend::Postgres] {
            let c = sql(b, r#"emails[type eq "work" and value co "@example.com"]"#);
            assert!(c.sql.starts_with("EXISTS (SELECT 1 FROM "), "{}", c.sql);
            assert_eq!(c.binds.len(), 2);
        }
        let c = sql(Backend::Sqlite, r#"emails[type eq "work"]"#);
        assert!(
            c.sql
                .contains(r#"json_each(r.attributes, '$."emails"') AS e1"#),
            "{}",
            c.sql
        );
        let c = sql(Backend::Postgres, r#"emails[type eq "work"]"#);
        assert!(c.sql.contains(r#"jsonb_array_elements("#), "{}", c.sql);
    }

    #[test]
    fn params_are_numbered_from_the_given_start() {
        let c = sql(
            Backend::Postgres,
            r#"userName eq "a" or (externalId eq "b" and meta.lastModified gt "2020-01-01T00:00:00Z")"#,
        );
        assert!(
            c.sql.contains("$2") && c.sql.contains("$3") && c.sql.contains("$4"),
            "{}",
            c.sql
        );
        assert_eq!(c.binds[2], Bind::Int(1_577_836_800_000_000));
    }

    #[test]
    fn negation_counts_unknown_as_no_match() {
        let c = sql(Backend::Sqlite, r#"title ne "x""#);
        assert!(c.sql.starts_with("NOT coalesce(("), "{}", c.sql);
    }

    #[test]
    fn groups_filter_reads_memberships() {
        let c = sql(Backend::Sqlite, r#"groups.value eq "g1""#);
        assert!(
            c.sql.starts_with("r.id IN (WITH RECURSIVE e1d"),
            "{}",
            c.sql
        );
        assert!(c.sql.contains("AND group_id = $2"), "{}", c.sql);
    }
}
