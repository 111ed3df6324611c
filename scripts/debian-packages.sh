#!/usr/bin/env bash
# The Debian packages `make serve` and `make test` need (run by the Makefile and by .ci/run).
#
#   espeak-ng, sox        generated speech and sounds for calibration and tests (command-line tools)
#   openssl               certificates for the TLS tests
#   nodejs, npm           the Node.js client test (clients/node, `npm ci` by the Makefile)
#   libsndfile1           audio decoding (the soundfile wheel bundles a copy; the system one is for
#                         everything else that links it)
#   postgresql            the PostgreSQL gallery backend's tests start a server from its binaries
#                         (initdb, postgres in /usr/lib/postgresql/<version>/bin)
#   build-essential       webrtcvad and pysptk (Resemblyzer's dependencies) ship no wheels: C/C++
#   pythonX.Y-venv / -dev only for a Debian python lacking ensurepip or Python.h ($PYTHON, default python3)
#
# Each requirement is checked first (a command on PATH, dpkg-query for the library), so nothing
# runs when all are met, whatever installed them. Otherwise: apt-get as root, or through sudo
# (passwordless, or asking on a terminal); when neither is possible, one line says what to install,
# and the exit status is 1 so make stops now rather than minutes later. TOITSU_APT=0 skips all this.
set -euo pipefail

[ "${TOITSU_APT:-1}" = 0 ] && exit 0
python=${PYTHON:-python3}
missing=()

have() { command -v "$1" >/dev/null 2>&1; }
installed() {  # a package dpkg knows as installed; without dpkg (not Debian) there is nothing to ask
  have dpkg-query || return 0
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

have espeak-ng || missing+=(espeak-ng)
have sox || missing+=(sox)
have openssl || missing+=(openssl)  # the TLS tests make their certificates with it
installed libsndfile1 || missing+=(libsndfile1)
installed postgresql || missing+=(postgresql)  # server binaries for the postgres gallery tests
# Commands, not dpkg names: a node from NodeSource (its `nodejs` package bundles npm and conflicts
# with Debian's `npm`), nvm or an image counts. Debian's own nodejs/npm only when neither is on PATH.
have node || missing+=(nodejs)
have npm || missing+=(npm)
{ have cc && have c++ && have make; } || missing+=(build-essential)
if ! have "$python"; then
  missing+=(python3 python3-venv python3-dev)
else
  # Debian splits ensurepip (python3.X-venv) and the C headers (python3.X-dev) out of its python.
  version=$("$python" -c 'import sys; print("python%d.%d" % sys.version_info[:2])')
  "$python" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=("$version-venv")
  "$python" -c 'import os, sys, sysconfig
sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || missing+=("$version-dev")
fi

[ ${#missing[@]} -eq 0 ] && exit 0

sudo="" reason=""
if ! have apt-get; then
  reason="no apt-get on this machine"
elif [ "$(id -u)" -ne 0 ]; then
  if have sudo && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
    sudo="sudo"
  else
    reason="not root and no sudo"
  fi
fi
if [ -n "$reason" ]; then
  echo "toitsu: missing system packages ${missing[*]} and cannot install them ($reason): run \`sudo apt-get install ${missing[*]}\` (or your system's equivalent), or set TOITSU_APT=0 to skip this check" >&2
  exit 1
fi

echo "toitsu: installing Debian packages: ${missing[*]}"
# env rather than an export: sudo resets the environment.
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
