#!/usr/bin/env bash
# nasattn doctor bundle: install from this folder without an index, then run the doctor.
#   bash run.sh [doctor options]          e.g.  bash run.sh --out doctor-out      (--dry-run: tiny, on the CPU)
# Interpreter: $PYTHON, else python3 (it must already have torch). Installs into ./env (a venv that sees
# the system's packages, so the installed torch is used), or into ./site (pip --target, put on PYTHONPATH)
# where venv is missing or NASATTN_INSTALL=target.
# With data/ present, joins its parts, checks them against data/SHA256SUMS and passes --data.
# Nothing is downloaded.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"
# --no-compile: Python compiles what the doctor imports when it imports it (a fraction of scipy and scikit-learn)
PIP_OPTS=(--no-index --find-links "$HERE/wheels" --disable-pip-version-check --quiet --no-compile)

if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "run.sh: $PY cannot import torch; set PYTHON to the interpreter that has the machine's torch" >&2
  exit 2
fi
if [ "${NASATTN_INSTALL:-venv}" = venv ] && { [ -x "$HERE/env/bin/python" ] || "$PY" -m venv --system-site-packages "$HERE/env" 2>/dev/null; }; then
  RUN="$HERE/env/bin/python"
  "$RUN" -m pip install "${PIP_OPTS[@]}" -r "$HERE/requirements.txt"
  "$RUN" -m pip install "${PIP_OPTS[@]}" --no-deps --force-reinstall "$HERE"/wheels/nasattn-*.whl
else
  echo "run.sh: installing into $HERE/site with pip --target (no venv)" >&2
  rm -rf "$HERE/env"
  "$PY" -m pip install "${PIP_OPTS[@]}" --target "$HERE/site" -r "$HERE/requirements.txt"
  "$PY" -m pip install "${PIP_OPTS[@]}" --target "$HERE/site" --no-deps "$HERE"/wheels/nasattn-*.whl
  export PYTHONPATH="$HERE/site${PYTHONPATH:+:$PYTHONPATH}"
  RUN="$PY"
fi

DATA_ARGS=()
if [ -f "$HERE/data/SHA256SUMS" ]; then
  ZIP="$(tail -n 1 "$HERE/data/SHA256SUMS" | awk '{print $2}')"
  if [ ! -f "$HERE/data/$ZIP" ]; then
    (cd "$HERE/data" && head -n -1 SHA256SUMS | sha256sum --check --quiet)
    cat "$HERE/data/$ZIP".part* > "$HERE/data/$ZIP.joining"
    mv "$HERE/data/$ZIP.joining" "$HERE/data/$ZIP"
  fi
  (cd "$HERE/data" && tail -n 1 SHA256SUMS | sha256sum --check --quiet)
  echo "run.sh: data $HERE/data/$ZIP (sha256 checked)"
  DATA_ARGS=(--data "$HERE/data/$ZIP")
fi

OUT="runs/doctor"
prev=""
for a in "$@"; do
  if [ "$prev" = "--out" ]; then OUT="$a"; fi
  case "$a" in --out=*) OUT="${a#--out=}";; esac
  prev="$a"
done

set +e
"$RUN" -m nasattn.doctor ${DATA_ARGS[@]+"${DATA_ARGS[@]}"} "$@"
rc=$?
set -e
OUT_ABS="$(cd "$OUT" 2>/dev/null && pwd || echo "$OUT")"
echo "run.sh: doctor exit $rc; JSON records: $OUT_ABS/doctor.jsonl; summary: $OUT_ABS/summary.txt"
exit $rc
