# Sourced by scripts/demo and scripts/test with the dependency groups (pyproject.toml) they need:
#   source scripts/bootstrap.sh all        (demo: every service, the trainer, embedded servers)
#   source scripts/bootstrap.sh all,test   (tests: the same plus pytest)
# Makes .venv/ and installs the project with those groups once; installs again only when
# pyproject.toml changes or a group is missing, so a second run needs no network.
set -euo pipefail
groups=${1:?which dependency groups, e.g. all}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), "Introspect needs Python 3.11"'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.introspect-installed  # "<sha256 of pyproject.toml> <groups installed>"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
read -r have have_groups 2>/dev/null < "$stamp" || have="" have_groups=""
[ "$have" = "$want" ] || have_groups=""
merged=$(echo "$have_groups,$groups" | tr ',' '\n' | grep -v '^$' | sort -u | paste -sd, -)
if [ "$have" != "$want" ] || [ "$merged" != "$have_groups" ]; then
  echo "[bootstrap] installing .[$merged] into .venv (torch==2.13.0 is pinned)"
  echo "[bootstrap] 1/2 pip"
  .venv/bin/python -m pip install -q --upgrade pip
  # a first install is minutes of downloads: show them rather than look frozen
  echo "[bootstrap] 2/2 the project and its dependencies: the first time about 70 packages," \
       "1.7 GB installed (torch the largest), several minutes; later runs need no network"
  started=$SECONDS
  if [ -t 1 ]; then  # a person watches: pip's own lines and download bars
    .venv/bin/python -m pip install -e ".[$merged]"
  else  # a log (CI): no bars, a line per package fetched (pip's warnings and errors: stderr, all kept)
    .venv/bin/python -m pip install --progress-bar off -e ".[$merged]" \
      | sed -un -E '/^(Collecting|Processing|  Downloading|Installing collected|Successfully installed)/p'
  fi
  echo "[bootstrap] installed in $((SECONDS - started)) s"
  echo "$want $merged" > "$stamp"
fi
# The browser test (tests/test_web_browser.py) drives Debian's chromium through playwright; it is
# installed here when missing and we can (root and apt-get), else that test says why it skips.
if [[ ",$groups," == *",test,"* ]] && ! command -v chromium >/dev/null \
   && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[bootstrap] installing Debian's chromium for the browser test"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "[bootstrap] chromium not installed: the browser test will skip"
fi
export PATH="$PWD/.venv/bin:$PATH"
