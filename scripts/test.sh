#!/usr/bin/env bash
# The whole test suite, from a fresh clone: install what is missing, then the one gate
# (typecheck, lint, format check, build, tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run ok
