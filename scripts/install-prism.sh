#!/usr/bin/env bash
# Install Stoplight Prism (the OpenAPI mock server used by the Twilio contract tests)
# into a repo-local npm prefix: <repo>/.prism/node_modules/.bin/prism.
# Idempotent: does nothing when that version is already installed.
# Usage: scripts/install-prism.sh            (env PRISM_VERSION overrides the pinned version)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${PRISM_VERSION:-5.16.0}
PREFIX="$PWD/.prism"
BIN="$PREFIX/node_modules/.bin/prism"
PKG="$PREFIX/node_modules/@stoplight/prism-cli/package.json"

if ! command -v npm >/dev/null 2>&1; then
  echo "install-prism: npm not found; install Node.js >= 18 first" >&2
  exit 2
fi
if [ -x "$BIN" ] && [ -f "$PKG" ] \
  && grep -q "\"version\": \"$VERSION\"" "$PKG" && "$BIN" --version >/dev/null 2>&1; then
  echo "install-prism: prism $VERSION already in $PREFIX"
  exit 0
fi
mkdir -p "$PREFIX"
# A package.json of its own keeps npm from walking up to another project.
[ -f "$PREFIX/package.json" ] || echo '{"name": "smsbridge-prism", "private": true}' > "$PREFIX/package.json"
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
  "@stoplight/prism-cli@$VERSION"
"$BIN" --version >/dev/null
echo "install-prism: prism $VERSION installed in $PREFIX"
