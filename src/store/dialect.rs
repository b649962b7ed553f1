//! Every difference between SQLite and PostgreSQL lives here, and only here.
//!
//! The queries themselves are written once in the portable subset both engines accept
//! (`$n` placeholders, `ON CONFLICT`, `RETURNING`, `LIKE … ESCAPE`, `TRUE`/`FALSE`), and run
//! through sqlx's `Any` driver. What cannot be portable is isolated below:
//! connection set-up (pragmas), how a write transaction begins, how a unique violation names
//! its constraint, and which migration set applies.

use sqlx::error::ErrorKind;

/// The database engine behind a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL selects, or `None` for an unsupported scheme.
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    /// Statements run on every new connection.
    ///
    /// SQLite: WAL for concurrent readers, foreign keys enforced (off by default in SQLite),
    /// a busy timeout so writers queue instead of failing, and case-sensitive `LIKE` so `LIKE`
    /// means the same thing as on PostgreSQL (case-insensitive matching is always spelled
    /// out with normalised columns).
    pub fn connection_setup(self) -> &'static [&'static str] {
        match self {
            Self::Sqlite => &[
                "PRAGMA journal_mode = WAL",
                "PRAGMA synchronous = NORMAL",
                "PRAGMA foreign_keys = ON",
                "PRAGMA busy_timeout = 10000",
                "PRAGMA case_sensitive_like = ON",
            ],
            Self::Postgres => &[],
        }
    }

    /// The statement that opens a write transaction.
    ///
    /// SQLite takes the write lock up front (`BEGIN IMMEDIATE`): a deferred transaction that
    /// reads and then writes fails with `SQLITE_BUSY_SNAPSHOT` if another writer committed in
    /// between, and the busy timeout cannot help it. PostgreSQL uses row locks.
    pub fn begin_write(self) -> &'static str {
        match self {
            Self::Sqlite => "BEGIN IMMEDIATE",
            Self::Postgres => "BEGIN",
        }
    }

    /// The migration set for this backend (`migrations/sqlite`, `migrations/postgres`).
    pub fn migrator(self) -> &'static sqlx::migrate::Migrator {
        static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
        static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
        match self {
            Self::Sqlite => &SQLITE,
            Self::Postgres => &POSTGRES,
        }
    }
}

/// Where a JSON value is read from: a JSON text column of the row, or the current element of
/// a `json_elements` set.
#[derive(Clone, Copy, Debug)]
pub enum JsonBase<'a> {
    Column(&'a str),
    Element(&'a str),
}

/// A JSON path segment safe to splice into a path literal: attribute names and URNs only
/// (RFC 7643 §2.1 ATTRNAME, `$ref`, and the URN alphabet `schema::valid_urn` allows).
pub fn safe_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-' | '$'))
}

impl Backend {
    fn sqlite_path(path: &[&str]) -> String {
        let mut p = String::from("'$");
        for seg in path {
            p.push_str(".\"");
            p.push_str(seg);
            p.push('"');
        }
        p.push('\'');
        p
    }

    fn pg_path(path: &[&str]) -> String {
        let segs: Vec<String> = path.iter().map(|s| format!("\"{s}\"")).collect();
        format!("'{{{}}}'", segs.join(","))
    }

    fn pg_base(base: JsonBase<'_>) -> String {
        match base {
            JsonBase::Column(c) => format!("({c}::jsonb)"),
            JsonBase::Element(e) => format!("{e}.value"),
        }
    }

    fn sqlite_base(base: JsonBase<'_>) -> String {
        match base {
            JsonBase::Column(c) => c.to_owned(),
            JsonBase::Element(e) => format!("{e}.value"),
        }
    }

    /// The value at `path` as SQL text (NULL when absent). Callers pass only
    /// [`safe_segment`]s.
    pub fn json_text(self, base: JsonBase<'_>, path: &[&str]) -> String {
        match self {
            Self::Sqlite => match (base, path.is_empty()) {
                (JsonBase::Element(e), true) => format!("{e}.value"),
                _ => format!(
                    "json_extract({}, {})",
                    Self::sqlite_base(base),
                    Self::sqlite_path(path)
                ),
            },
            Self::Postgres => format!("({} #>> {})", Self::pg_base(base), Self::pg_path(path)),
        }
    }

    /// The value at `path` as an SQL number.
    pub fn json_number(self, base: JsonBase<'_>, path: &[&str]) -> String {
        match self {
            Self::Sqlite => self.json_text(base, path),
            Self::Postgres => format!("({})::numeric", self.json_text(base, path)),
        }
    }

    /// Whether the value at `path` is the JSON boolean `b`.
    pub fn json_bool_is(self, base: JsonBase<'_>, path: &[&str], b: bool) -> String {
        let lit = if b { "true" } else { "false" };
        match self {
            Self::Sqlite => format!(
                "coalesce(json_type({}, {}) = '{lit}', FALSE)",
                Self::sqlite_base(base),
                Self::sqlite_path(path)
            ),
            Self::Postgres => format!(
                "coalesce(({} #> {}) = '{lit}'::jsonb, FALSE)",
                Self::pg_base(base),
                Self::pg_path(path)
            ),
        }
    }

    /// Whether `path` holds a non-empty value (RFC 7644 §3.4.2.2 `pr`).
    pub fn json_present(self, base: JsonBase<'_>, path: &[&str]) -> String {
        match self {
            Self::Sqlite => format!(
                "coalesce(CAST({} AS TEXT), '') <> ''",
                self.json_text(base, path)
            ),
            Self::Postgres => format!("coalesce({}, '') <> ''", self.json_text(base, path)),
        }
    }

    /// A FROM item yielding one row per element of the array at `path` of a JSON text
    /// column, aliased `alias` (element readable through [`JsonBase::Element`]).
    pub fn json_elements(self, column: &str, path: &[&str], alias: &str) -> String {
        match self {
            Self::Sqlite => format!(
                "json_each({column}, {}) AS {alias}",
                Self::sqlite_path(path)
            ),
            Self::Postgres => {
                let target = format!("(({column}::jsonb) #> {})", Self::pg_path(path));
                format!(
                    "jsonb_array_elements(CASE WHEN jsonb_typeof({target}) = 'array' THEN {target} ELSE '[]'::jsonb END) AS {alias}"
                )
            }
        }
    }

    /// The value at `path` of the first element of the array at `array` (sorting by a
    /// multi-valued attribute).
    pub fn json_first_text(self, column: &str, array: &str, path: &[&str]) -> String {
        let mut full: Vec<String> = vec![array.to_owned()];
        match self {
            Self::Sqlite => {
                let mut p = format!("'$.\"{array}\"[0]");
                for seg in path {
                    p.push_str(&format!(".\"{seg}\""));
                }
                p.push('\'');
                format!("json_extract({column}, {p})")
            }
            Self::Postgres => {
                full.push("0".into());
                full.extend(path.iter().map(|s| (*s).to_owned()));
                let refs: Vec<&str> = full.iter().map(String::as_str).collect();
                format!("(({column}::jsonb) #>> {})", Self::pg_path(&refs))
            }
        }
    }
}

/// Logical names of the unique constraints, with how each backend reports them:
/// PostgreSQL by constraint name, SQLite by `table.column` list in the message.
const UNIQUE_CONSTRAINTS: &[(&str, &str)] = &[
    ("tenants_slug_key", "tenants.slug"),
    ("tenant_hostnames_pkey", "tenant_hostnames.hostname"),
    (
        "users_user_name_key",
        "users.tenant_id, users.user_name_norm",
    ),
    ("users_pkey", "users.id"),
    ("groups_pkey", "groups.id"),
    (
        "group_members_pkey",
        "group_members.group_id, group_members.member_id",
    ),
    ("tokens_token_hash_key", "tokens.token_hash"),
    ("credentials_pkey", "credentials.user_id, credentials.kind"),
    ("user_roles_pkey", "user_roles.user_id, user_roles.role"),
    ("change_log_pkey", "change_log.tenant_id, change_log.seq"),
    (
        "scim_schemas_pkey",
        "scim_schemas.tenant_id, scim_schemas.urn",
    ),
];

/// The logical name of the unique constraint a database error reports, if it is one.
pub fn conflict_constraint(e: &sqlx::Error) -> Option<&'static str> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    if db.kind() != ErrorKind::UniqueViolation {
        return None;
    }
    if let Some(name) = db.constraint()
        && let Some((logical, _)) = UNIQUE_CONSTRAINTS.iter().find(|(n, _)| *n == name)
    {
        return Some(logical);
    }
    let message = db.message();
    UNIQUE_CONSTRAINTS
        .iter()
        .find(|(_, cols)| message.ends_with(cols))
        .map(|(logical, _)| *logical)
        .or(Some("unique"))
}

/// Escapes `%`, `_` and `\` for use inside a `LIKE … ESCAPE '\'` pattern.
pub fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A `LIKE` pattern matching values that contain `s` literally.
pub fn contains_pattern(s: &str) -> String {
    format!("%{}%", escape_like(s))
}

/// `$first, $first+1, …` placeholders for an `IN (…)` list of `n` values.
pub fn in_list(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_escaping() {
        assert_eq!(escape_like(r"50%_off\"), r"50\%\_off\\");
        assert_eq!(contains_pattern("a_b"), r"%a\_b%");
    }

    #[test]
    fn backend_from_url() {
        assert_eq!(
            Backend::from_url("sqlite://data/x.db"),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgres://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mysql://u@h/db"), None);
    }
}
