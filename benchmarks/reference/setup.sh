#!/usr/bin/env bash
# Installs the DreamerV2 reference (PyPI sdist dreamerv2==2.2.0) into its own venv and patches it
# for today's stack. Idempotent: a second run only compares two stamps and returns.
#   bash benchmarks/reference/setup.sh          (PYTHON=python3.11 to pick the interpreter)
# Result: .venv/ (the venv) and .venv/dreamerv2-2.2.0/dreamerv2/ (the patched source, run in place).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
SRC="$VENV/dreamerv2-2.2.0"
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
  echo "[setup] creating venv $VENV" >&2
  "${PYTHON:-python3}" -m venv "$VENV"
fi

# Dependencies: reinstall only when requirements.txt changed.
req_sum="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$VENV/.req.stamp" 2>/dev/null)" != "$req_sum" ]; then
  echo "[setup] installing $HERE/requirements.txt" >&2
  "$PY" -m pip install --quiet -r "$HERE/requirements.txt"
  echo "$req_sum" > "$VENV/.req.stamp"
fi

# Source: download, unpack afresh and patch whenever patch.py changed.
src_sum="$(sha256sum "$HERE/patch.py" | cut -d' ' -f1)"
if [ "$(cat "$VENV/.src.stamp" 2>/dev/null)" != "$src_sum" ] || [ ! -d "$SRC" ]; then
  echo "[setup] fetching and patching dreamerv2==2.2.0" >&2
  mkdir -p "$VENV/sdist"
  "$PY" -m pip download --quiet --no-deps --no-binary :all: dreamerv2==2.2.0 -d "$VENV/sdist"
  rm -rf "$SRC"
  tar -xzf "$VENV/sdist/dreamerv2-2.2.0.tar.gz" -C "$VENV"
  "$PY" "$HERE/patch.py" "$SRC/dreamerv2"
  echo "$src_sum" > "$VENV/.src.stamp"
fi
