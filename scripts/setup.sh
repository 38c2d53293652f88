#!/usr/bin/env bash
# Idempotent set-up for bee on Debian 12 / Ubuntu, as root.
#   - distro bcc for Python (python3-bpfcc) and the peers used by tests and benchmarks
#   - kernel headers: the running kernel's package when there is one, otherwise the
#     distro's generic headers wired in as /lib/modules/$(uname -r)/{build,source}
#   - a venv from the distro's python3 with --system-site-packages, bee installed into it
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "setup: run as root (apt-get and /lib/modules need it)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
PKGS=(python3 python3-venv python3-pip python3-bpfcc bpfcc-tools linux-perf
      binutils gcc g++ make llvm libc6-dbg python3.11-dbg nodejs chromium golang-go
      util-linux)
# rustc: only from apt when no toolchain is already on PATH.
command -v rustc >/dev/null 2>&1 || PKGS+=(rustc)
# npm: only from apt when no npm is already on PATH (used to fetch speedscope for tests).
command -v npm >/dev/null 2>&1 || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
KREL="$(uname -r)"
if [ ! -e "/lib/modules/$KREL/build/include" ]; then
    missing+=(HEADERS)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    real=()
    for p in "${missing[@]}"; do
        [ "$p" = HEADERS ] && continue
        if [ "$p" = python3.11-dbg ] && ! apt-cache show python3.11-dbg >/dev/null 2>&1; then
            continue   # optional: debug symbols for the symbolization benchmark
        fi
        real+=("$p")
    done
    [ "${#real[@]}" -gt 0 ] && apt-get install -y -qq --no-install-recommends "${real[@]}" >/dev/null
fi

# Kernel headers for bcc.
if [ ! -e "/lib/modules/$KREL/build/include" ]; then
    if apt-cache show "linux-headers-$KREL" >/dev/null 2>&1; then
        apt-get install -y -qq --no-install-recommends "linux-headers-$KREL" >/dev/null
    else
        apt-get install -y -qq --no-install-recommends linux-headers-amd64 >/dev/null
        build="$(ls -d /usr/src/linux-headers-*-amd64 | sort -V | tail -1)"
        source="$(ls -d /usr/src/linux-headers-*-common | sort -V | tail -1)"
        mkdir -p "/lib/modules/$KREL"
        ln -sfn "$build" "/lib/modules/$KREL/build"
        ln -sfn "$source" "/lib/modules/$KREL/source"
    fi
fi

# The venv: distro python3 so that the distro's bcc module is importable.
VENV="${BEE_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import bcc' 2>/dev/null; then
    rm -rf "$VENV"
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
# pip's notices about this machine's local index folders are noise; real errors still show.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]" \
    2> >(grep -v "^WARNING: Location" >&2)
# Bytecode now, as a wheel install does: with PYTHONDONTWRITEBYTECODE set, an editable
# install would otherwise compile bee from source at every launch.
"$VENV/bin/python" -m compileall -q bee bee_contract bee_record bee_report >/dev/null

# speedscope's own importer, used by the tests to load our exports (pinned version).
if [ ! -f tests/.node/node_modules/speedscope/package.json ]; then
    npm install --silent --no-audit --no-fund --prefix tests/.node --save-exact \
        speedscope@1.25.0 >/dev/null
fi

# bcc attaches tracepoints through tracefs.
if [ ! -d /sys/kernel/tracing/events ] && [ ! -d /sys/kernel/debug/tracing/events ]; then
    mount -t tracefs nodev /sys/kernel/tracing
fi
