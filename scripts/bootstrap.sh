# Sourced by the other scripts: make sure .venv exists and holds this checkout's dependencies.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
pick_python() {
  for py in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$py" ] || continue
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  echo "vaultbot needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
  return 1
}
if [ ! -x .venv/bin/python ]; then
  "$(pick_python)" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
EXTRAS="${VAULTBOT_EXTRAS:-dev}"
STAMP=".venv/.vaultbot-installed"
WANT="$(cat pyproject.toml | { sha256sum 2>/dev/null || shasum -a 256; } | cut -c1-64) $EXTRAS"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "installing vaultbot into .venv (first run takes a minute)..." >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$EXTRAS]"
  echo "$WANT" > "$STAMP"
fi
