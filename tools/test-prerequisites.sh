#!/usr/bin/env bash
# What the test suite needs besides node_modules, installed when missing (npm's `pretest` and
# .ci/run both call this one script):
#   - Debian's libsodium23: an independent implementation that opens our envelopes;
#   - Debian's chromium: the dashboard page tests drive it through playwright-core;
#   - python3 with numpy, scipy and mpmath: the reference checks (accountant, noise, llama);
#   - Debian's postgresql, its cluster running, and the test role and database
#     (postgres://fedlora:fedlora@127.0.0.1:5432/fedlora_test): the PostgreSQL store's contract
#     tests. Skipped when FEDLORA_TEST_POSTGRES names another server.
# As root it installs what is missing with apt-get, starts the cluster and creates the role and
# database; otherwise it stops and prints the exact command to run. It changes nothing when
# everything is there.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

apt_packages=(libsodium23 chromium)
# The PostgreSQL server only when the tests use the local default one.
if [ -z "${FEDLORA_TEST_POSTGRES:-}" ]; then apt_packages+=(postgresql); fi
python_modules=(numpy scipy mpmath)
python_packages=(python3-numpy python3-scipy python3-mpmath)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# Debian's chromium package provides /usr/bin/chromium, the path the browser tests launch.
if [[ ! " ${missing[*]} " == *" chromium "* ]] && [ ! -x /usr/bin/chromium ]; then missing+=(chromium); fi
if ! command -v python3 >/dev/null 2>&1; then
  missing+=(python3 "${python_packages[@]}")
else
  for i in "${!python_modules[@]}"; do
    python3 -c "import ${python_modules[$i]}" >/dev/null 2>&1 || missing+=("${python_packages[$i]}")
  done
fi

if [ "${#missing[@]}" -ne 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "test prerequisites missing: ${missing[*]} (Debian package names); this machine has no apt-get: install their equivalents, then run npm test again" >&2
    exit 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "test prerequisites missing: ${missing[*]}. Install them, then run npm test again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "installing the test prerequisites: ${missing[*]}" >&2
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The PostgreSQL test server: a running cluster with the fedlora role and the fedlora_test database.
if [ -n "${FEDLORA_TEST_POSTGRES:-}" ]; then exit 0; fi
test_url=postgres://fedlora:fedlora@127.0.0.1:5432/fedlora_test
if psql "$test_url" -tAc 'SELECT 1' >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "the PostgreSQL test server $test_url is not reachable. Start the cluster and create the test role and database (idempotent), then run npm test again:" >&2
  echo "  sudo bash tools/test-prerequisites.sh" >&2
  echo "(or point FEDLORA_TEST_POSTGRES at a server where the tests may create schemas)" >&2
  exit 1
fi
echo "setting up the PostgreSQL test server ($test_url)" >&2
# The first cluster Debian's postgresql made (normally 15/main on port 5432), started if down.
read -r pg_version pg_cluster pg_port pg_status _ < <(pg_lsclusters -h | head -n 1) || true
if [ -z "${pg_version:-}" ]; then
  pg_version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
  pg_createcluster --start "$pg_version" main >/dev/null
  pg_port=5432
elif [ "$pg_status" != online ]; then
  pg_ctlcluster "$pg_version" "$pg_cluster" start
fi
if [ "$pg_port" != 5432 ]; then
  echo "PostgreSQL cluster $pg_version/$pg_cluster listens on port $pg_port, not 5432: set FEDLORA_TEST_POSTGRES=postgres://fedlora:fedlora@127.0.0.1:$pg_port/fedlora_test" >&2
  exit 1
fi
as_postgres() { runuser -u postgres -- "$@"; }
as_postgres psql -q -v ON_ERROR_STOP=1 -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fedlora') THEN CREATE ROLE fedlora LOGIN PASSWORD 'fedlora' CREATEDB; END IF;
END \$\$"
if ! as_postgres psql -tAc "SELECT 1 FROM pg_database WHERE datname = 'fedlora_test'" | grep -q 1; then
  as_postgres createdb -O fedlora fedlora_test
fi
psql "$test_url" -tAc 'SELECT 1' >/dev/null
