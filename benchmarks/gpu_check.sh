#!/usr/bin/env bash
# The GPU path, checked on a lent GPU machine in one prepared run of under 5 minutes: the tests
# that need CUDA, then the sampler benchmark on CUDA in bfloat16 and float32, then (when the
# authors' checkout was carried along) their sampler beside ours on the same GPU.
#
# The GPU machine reaches no package registry and gets only this checkout, so prepare here first
# (benchmarks/README.md, "On a GPU", has the commands): a folder .gpu/ ignored by git, holding
#   .gpu/tokenizer.json   a copy of GPT-2's tokenizer.json (../shared/data/gpt2/ does not travel)
#   .gpu/whl/             wheels of what our engine needs and that machine lacks (cp312)
#   .gpu/bd3lms/          optional: a work tree of kuleshov-group/bd3lms for the comparison
# then run it through the device tool with carry [".gpu"]:  bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH="$PWD"
if compgen -G ".gpu/whl/*.whl" >/dev/null; then
    $py -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
fi
out=${OUT:-/tmp}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$py -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())"

echo "== tests that need CUDA"
timeout 120 $py -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py tests/test_backbone_parity.py 2>&1 | tail -15

echo "== sampler benchmark"
for dtype in bfloat16 float32; do
    timeout 150 $py benchmarks/sampler.py --device cuda --dtype "$dtype" --tokenizer .gpu/tokenizer.json 2>&1 \
        | tee "$out/sampler-$dtype.md"
done

if [ -d .gpu/bd3lms ]; then
    echo "== the authors' sampler beside ours"
    timeout 150 $py benchmarks/versus_reference.py --reference .gpu/bd3lms --device cuda --dtype bfloat16 \
        --tokenizer .gpu/tokenizer.json 2>&1 | tee "$out/versus-reference.md"
fi
