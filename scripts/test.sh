#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite, lint and type checks, as root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${BEE_VENV:-.venv}"
"$VENV/bin/ruff" check bee bee_contract bee_record bee_report tests bench formats fuzz
"$VENV/bin/mypy"
"$VENV/bin/python" -m pytest -ra "$@"
