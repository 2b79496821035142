#!/usr/bin/env bash
# Build the wheel into OUTDIR from a copy of the files git would commit, so the
# checkout gets no build/ or *.egg-info and stray local files (runs, bundles,
# caches) stay out of the wheel.
# Usage: [PYTHON=python-with-pip] packaging/build-wheel.sh OUTDIR
set -euo pipefail
root=$(dirname "$0")/..
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
# (files deleted in the working tree but still tracked are left out, not an error)
git -C "$root" ls-files -z --cached --others --exclude-standard --deduplicate \
    | (cd "$root" && while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done) \
    | tar -C "$root" --null -T - -c | tar -x -C "$src"
"${PYTHON:-python3}" -m pip wheel -q --no-deps -w "$1" "$src"
