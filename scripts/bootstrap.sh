# Sourced by scripts/demo and scripts/test: a project venv with everything installed, once.
# Re-installs only when pyproject.toml changes, so a second run needs no network.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "Introspect needs Python 3.11"'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.introspect-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  echo "$want" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
