#!/usr/bin/env bash
# Build the one-folder desktop bundle packaging/dist/bd3lm-studio/, with the
# default model and the icons inside. Its venv and work files stay in
# packaging/build/ so that a second build downloads nothing.
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bundles the CPU-only
# torch, far smaller than the CUDA build pip installs on Linux by default.
set -euo pipefail
cd "$(dirname "$0")"
# a venv of its own when TORCH_INDEX_URL is set: `pip install torch==2.13.0`
# counts any 2.13.0 build (CUDA or CPU) as installed, so it would keep the other one
venv=build/venv${TORCH_INDEX_URL:+-custom-index}
[ -d "$venv" ] || python3 -m venv "$venv"
pip=$venv/bin/pip
$pip install -q torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
rm -rf build/wheel
PYTHON=$venv/bin/python ./build-wheel.sh build/wheel
$pip install -q build/wheel/*.whl pyinstaller pillow
$pip install -q --no-deps --force-reinstall build/wheel/*.whl  # same version number, newer code
"$venv"/bin/pyinstaller --noconfirm --distpath dist --workpath build/pyinstaller bd3lm-studio.spec
du -sh dist/bd3lm-studio
