#!/usr/bin/env bash
# What the test suite needs besides node_modules, installed when missing (npm's `pretest` and
# .ci/run both call this one script):
#   - Debian's libsodium23: an independent implementation that opens our envelopes;
#   - Debian's chromium: the dashboard page tests drive it through playwright-core;
#   - python3 with numpy, scipy and mpmath: the reference checks (accountant, noise, llama).
# As root it installs what is missing with apt-get; otherwise it stops and prints the exact
# command to run. It changes nothing when everything is there.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

apt_packages=(libsodium23 chromium)
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

if [ "${#missing[@]}" -eq 0 ]; then exit 0; fi

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
