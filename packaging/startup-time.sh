#!/usr/bin/env bash
# Start the built bundle on a virtual X display (no screen needed), print the
# seconds until its main window is visible, then close it.
# Needs xvfb-run and xdotool (Debian: apt install xvfb xdotool), and ImageMagick
# for the optional screenshot, taken 5 s after the window appears.
# Usage: packaging/startup-time.sh [SCREENSHOT.png]
set -euo pipefail
bundle=$(realpath "$(dirname "$0")/dist/bd3lm-studio/bd3lm-studio")
shot=${1:+$(realpath -m "$1")}
cd /  # away from the checkout: the bundle must find everything inside itself
export bundle shot HF_HUB_OFFLINE=1
xvfb-run -a -s "-screen 0 1280x800x24" bash -euc '
    start=$(date +%s.%N)
    "$bundle" & pid=$!
    if ! timeout 120 xdotool search --sync --onlyvisible --name "BD3-LM Studio" >/dev/null; then
        echo "no BD3-LM Studio window within 120 s; run the bundle by hand to see its error" >&2
        kill "$pid" 2>/dev/null
        exit 1
    fi
    awk -v a="$start" -v b="$(date +%s.%N)" "BEGIN { printf \"window visible after %.1f s\n\", b - a }"
    if [ -n "$shot" ]; then sleep 5; import -window root "$shot"; fi
    kill "$pid"'
