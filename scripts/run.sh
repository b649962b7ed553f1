#!/usr/bin/env bash
# Builds idhub (release) and runs it on the embedded SQLite default (./data/idhub.db).
# It prints where to go (Swagger UI, health) and, on first start, the administrator's
# password. Extra arguments go to `idhub serve` (e.g. --listen 0.0.0.0:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/system-packages.sh
idhub_ensure_system_packages
echo "building idhub (the first build takes a few minutes)..." >&2
cargo build --release --locked --bin idhub >&2
exec ./target/release/idhub serve "$@"
