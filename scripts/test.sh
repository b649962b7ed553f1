#!/usr/bin/env bash
# The whole test suite: system packages, formatting, lints, and every test on SQLite and on
# PostgreSQL (IDHUB_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres).
# Under CI=true an unreachable PostgreSQL fails the run; elsewhere it is reported and skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/system-packages.sh
idhub_ensure_system_packages

export IDHUB_TEST_POSTGRES_URL="${IDHUB_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_hostport=$(printf '%s' "$IDHUB_TEST_POSTGRES_URL" | sed -E 's#^[a-z]+://([^@/]*@)?([^/?]*).*#\2#')
pg_host=${pg_hostport%:*}; pg_port=${pg_hostport##*:}
[ "$pg_port" = "$pg_hostport" ] && pg_port=5432
if ! (exec 3<>"/dev/tcp/${pg_host}/${pg_port}") 2>/dev/null; then
  if [ "${CI:-}" = "true" ]; then
    echo "error: PostgreSQL at ${pg_host}:${pg_port} is unreachable and CI=true: PostgreSQL tests must run" >&2
    exit 1
  fi
  echo "warning: PostgreSQL at ${pg_host}:${pg_port} is unreachable: running the SQLite cases only" >&2
  unset IDHUB_TEST_POSTGRES_URL
fi

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy -D warnings" >&2
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== cargo test (SQLite${IDHUB_TEST_POSTGRES_URL:+ and PostgreSQL})" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --workspace --all-targets 2>&1 | tee "$log"
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
