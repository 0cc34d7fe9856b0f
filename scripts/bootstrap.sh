#!/usr/bin/env bash
# Create .venv (if needed) and install the core and every plugin under plugins/,
# editable, core first (so pip never looks for `smsbridge` on the package index).
# Usage: scripts/bootstrap.sh [--dev]      (--dev adds test, lint and docs tools)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "smsbridge needs Python >= 3.11 (found: $("$PY" --version 2>&1)); set PYTHON=..." >&2
  exit 2
fi
VENV=${SMSBRIDGE_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
stamp="$VENV/.smsbridge-installed"
extra=""
[ "${1:-}" = "--dev" ] && extra="[dev]"
# Re-install only when a pyproject changed since the last install.
want=$(cat pyproject.toml plugins/*/pyproject.toml 2>/dev/null | sha256sum | cut -d' ' -f1)$extra
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
"${PIP[@]}" install --upgrade pip
args=(-e ".$extra")
for plugin in plugins/*/; do
  [ -f "$plugin/pyproject.toml" ] || continue
  if [ -n "$extra" ] && grep -q '^\s*test\s*=' "$plugin/pyproject.toml"; then
    args+=(-e "${plugin%/}[test]")
  else
    args+=(-e "${plugin%/}")
  fi
done
"${PIP[@]}" install "${args[@]}"
echo "$want" > "$stamp"
