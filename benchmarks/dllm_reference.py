"""dLLM's BD3LM sampler and A2D model classes, imported at run time from a checkout (never copied).

dLLM (github.com/ZHZisZZ/dllm) is a training framework: importing its top
package pulls in every pipeline, trainer and evaluation harness, with
accelerate, peft, deepspeed, datasets and more. The sampler
(`dllm/core/samplers/bd3lm.py`) and the A2D networks
(`dllm/pipelines/a2d/models/*/modeling_*.py`) need only torch and
transformers 4.57. So the package folders above them (`dllm`, `dllm.core`,
`dllm.pipelines`) are entered in `sys.modules` as plain namespace modules
pointing at the checkout's folders, without running their `__init__.py`;
`dllm/core/samplers/__init__.py`, `dllm/core/schedulers/__init__.py` and
`dllm/pipelines/a2d/__init__.py` then run unchanged, and every line of the
sampler and the networks is dLLM's own.

Used by `versus_dllm.py` (their side of the speed comparison) and by
`tests/fixtures/backbones/make_fixture.py`; both run in the separate venv of
benchmarks/README.md ("Chat models").
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

SAMPLER_FILE = Path("dllm/core/samplers/bd3lm.py")
A2D_FILE = Path("dllm/pipelines/a2d/__init__.py")


def import_dllm(checkout: Path) -> types.SimpleNamespace:
    """`samplers` (dllm.core.samplers) and `a2d` (dllm.pipelines.a2d) from the checkout at `checkout`."""
    checkout = checkout.resolve()
    if not (checkout / SAMPLER_FILE).is_file() or not (checkout / A2D_FILE).is_file():
        raise SystemExit(f"--dllm {checkout}: not a checkout of ZHZisZZ/dllm (no {SAMPLER_FILE} or {A2D_FILE})")
    for name in ("dllm", "dllm.core", "dllm.pipelines"):
        package = types.ModuleType(name)
        package.__path__ = [str(checkout / name.replace(".", "/"))]
        sys.modules[name] = package
    try:
        import transformers

        import dllm.core.samplers as samplers
        import dllm.pipelines.a2d as a2d
    except ImportError as err:
        raise SystemExit(f"dLLM's sampler needs {err.name!r}: run this from the dLLM venv of benchmarks/README.md") from None
    if not transformers.__version__.startswith("4."):
        raise SystemExit(f"dLLM's A2D models need transformers 4.x (4.57), not {transformers.__version__}: "
                         "run this from the dLLM venv of benchmarks/README.md")
    transformers.logging.set_verbosity_error()
    return types.SimpleNamespace(samplers=samplers, a2d=a2d, transformers=transformers, checkout=checkout)


def checkout_commit(checkout: Path) -> str:
    """The commit the checkout is at (for the report), or 'unknown' when it is not a git work tree."""
    head = checkout / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (checkout / ".git" / ref[5:]).read_text().strip()
        return ref
    except OSError:
        return "unknown"
