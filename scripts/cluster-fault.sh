#!/usr/bin/env bash
# Issue 6 load and fault test: two release idhub nodes on one fresh PostgreSQL database, a mixed
# SCIM workload across both for 60 s while node B is SIGKILLed and restarted and every database
# connection is terminated twice; at the end the database must hold exactly the users and
# memberships the successful responses promised. Loopback only; about 65 s plus the release
# build (~6 min cold). Exit status 0 on PASS, 1 on FAIL.
#
#   IDHUB_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres scripts/cluster-fault.sh
#
# The URL (default above) needs the right to create databases; the test creates
# idhub_bench_<random> and drops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/system-packages.sh
idhub_ensure_system_packages

export IDHUB_BENCH_POSTGRES_URL="${IDHUB_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_hostport=$(printf '%s' "$IDHUB_BENCH_POSTGRES_URL" | sed -E 's#^[a-z]+://([^@/]*@)?([^/?]*).*#\2#')
pg_host=${pg_hostport%:*}; pg_port=${pg_hostport##*:}
[ "$pg_port" = "$pg_hostport" ] && pg_port=5432
if ! (exec 3<>"/dev/tcp/${pg_host}/${pg_port}") 2>/dev/null; then
  echo "error: PostgreSQL at ${pg_host}:${pg_port} is unreachable (set IDHUB_BENCH_POSTGRES_URL)" >&2
  exit 1
fi

exec cargo bench --locked --bench cluster -- fault
