#!/usr/bin/env bash
# Installs what the tests need (system packages included, when missing), then runs npm ci, build,
# lint, type-check and every test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for bin in tar zstd gzip bzip2 xz lz4 git; do
  command -v "$bin" >/dev/null 2>&1 || need_apt+=("$bin")
done
# Registry tests: a real Chromium for the web UI, and PostgreSQL server binaries (scripts/postgres.sh).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
[ -x /usr/lib/postgresql/15/bin/pg_ctl ] || need_apt+=(postgresql-15)
# Trust tests: independent implementations that must accept what we sign and encrypt.
command -v minisign >/dev/null 2>&1 || need_apt+=(minisign)
command -v age >/dev/null 2>&1 || need_apt+=(age)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing system packages: ${need_apt[*]}"
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

echo "==> npm ci"
npm ci --no-audit --no-fund
echo "==> build"
npm run build
echo "==> lint"
npm run lint
echo "==> type-check"
npm run typecheck
echo "==> Ceph radosgw on loopback (S3 tests; stopped afterwards if this run started it)"
ceph_started=0
if ! scripts/ceph.sh status; then
  ceph_started=1
  scripts/ceph.sh start
fi
trap 'if [ "$ceph_started" = 1 ]; then scripts/ceph.sh stop; fi' EXIT
echo "==> tests"
npx vitest run "$@"
