"""Chat-model backbones (model/decoder.py) compute what dLLM's own model classes compute, and chat from the CLI.

Fixture folders come from BD3LM_BACKBONE_FIXTURES (colon-separated), by
default the shared ones (../shared/fixtures/backbones, README there): each has
`checkpoint/` in the published layout and `expected.safetensors` with the last
block's logits from one full forward under the block diffusion mask and from
the block alone over a cache of the first two blocks. Folders we make
ourselves (Llama, SDAR, sharded, tied and untied) must give the same logits
with and without the cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from backbone_factory import MASK_ID, SHARED_BACKBONES, STOP_IDS, make_backbone_folder
from bd3lm_core import BD3LMError, load_model, render_chat
from bd3lm_core.sampling.context import CachedContext, FullContext

TOLERANCE = 1e-4


def fixture_folders() -> list[Path]:
    listed = os.environ.get("BD3LM_BACKBONE_FIXTURES")
    if listed is not None:
        return [Path(p) for p in listed.split(":") if p]
    return sorted(p for p in SHARED_BACKBONES.iterdir() if (p / "expected.safetensors").is_file()) if SHARED_BACKBONES.is_dir() else []


FIXTURES = fixture_folders()


def last_block_logits(loaded, ids: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The last block's logits `[B, V]`: full forward with the block mask, and the block alone over the cache."""
    prefix, last = ids[:, :-block], ids[:, -block:]
    rows = torch.arange(block)
    full = FullContext(loaded.model, block)
    full.commit(prefix)
    cached = CachedContext(loaded.model, block)
    cached.commit(prefix)
    cached.logits(last, rows)  # writes the two clean blocks into the cache (with the block, as sampling does)
    return full.logits(last, rows)[0], cached.logits(last, rows)[0]  # the second runs the block alone


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_backbone_parity(fixture: Path) -> None:
    expected = load_file(str(fixture / "expected.safetensors"))
    loaded = load_model(fixture / "checkpoint", device="cpu", dtype="float32")
    block = int(expected["block_size"][0])
    assert expected["position_ids"][0].tolist() == list(range(expected["input_ids"].shape[1]))
    full, cached = last_block_logits(loaded, expected["input_ids"], block)
    assert (full - expected["logits_full"][0]).abs().max() < TOLERANCE
    assert (cached - expected["logits_cached"][0]).abs().max() < TOLERANCE


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_backbone_parity_cuda(fixture: Path) -> None:
    """The same logits on a GPU in float32 (bfloat16 is checked for agreement with float32's choice, not to 1e-4)."""
    expected = load_file(str(fixture / "expected.safetensors"))
    loaded = load_model(fixture / "checkpoint", device="cuda", dtype="float32")
    full, cached = last_block_logits(loaded, expected["input_ids"].cuda(), int(expected["block_size"][0]))
    assert (full.cpu() - expected["logits_full"][0]).abs().max() < 1e-3
    assert (cached.cpu() - expected["logits_cached"][0]).abs().max() < 1e-3


def bd3lm(*args: str) -> dict:
    """Run the CLI with --json and return its one JSON object (its lines, for chat)."""
    result = subprocess.run(
        [sys.executable, "-m", "bd3lm_core.cli", *args, "--json", "--device", "cpu"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_every_fixture_generates_and_chats_from_the_cli(fixture: Path) -> None:
    folder = str(fixture / "checkpoint")
    loaded = load_model(folder, device="cpu")
    defaults, block = loaded.default_settings(), loaded.model.default_block_size
    [run] = bd3lm("generate", "--model", folder, "--prompt", "Hello", "--tokens", "6", "--seed", "5", "--ignore-eos")
    assert len(run["token_ids"]) == 6 and run["stop_reason"] == "length"
    assert (run["settings"]["sampler"], run["settings"]["block_size"]) == (defaults.sampler, block)  # the authors'
    # no forward is spent on positions past the 6 tokens asked, wherever the last block ends
    if defaults.sampler == "low-confidence":  # dLLM's: one token per forward
        assert run["nfe"] == 6
    assert 1 <= run["nfe"] <= 6
    replies = bd3lm("chat", "--model", folder, "--message", "Hi", "--message", "And?", "--tokens", "5", "--seed", "5",
                    "--block-size", "4", "--ignore-eos")
    assert len(replies) == 2
    first, second = replies
    turns = [{"role": "user", "content": "Hi"}]
    assert first["prompt"] == render_chat(loaded, turns)
    turns += [{"role": "assistant", "content": first["reply"]}, {"role": "user", "content": "And?"}]
    assert second["prompt"] == render_chat(loaded, turns) and second["prompt"].startswith(first["prompt"] + first["reply"])
    for reply in replies:
        assert len(reply["token_ids"]) == 5 and reply["stop_reason"] == "length" and reply["settings"]["block_size"] == 4
        assert reply["nfe"] >= 2 and reply["tokens_per_second"] > 0
        assert reply["reply"] == loaded.tokenizer.decode(reply["token_ids"])


def test_the_chatml_fixture_prompt_is_exactly_the_template() -> None:
    folder = SHARED_BACKBONES / "a2d-qwen3-bs4" / "checkpoint"
    if not folder.is_dir():
        pytest.skip("the shared fixtures are not beside this checkout")
    [reply] = bd3lm("chat", "--model", str(folder), "--message", "Hi", "--tokens", "2", "--seed", "0")
    assert reply["prompt"] == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


MADE = {
    "llama-untied-sharded": dict(model_type="a2d-llama", shards=3),
    "llama-gqa1-tied": dict(model_type="a2d-llama", kv_heads=1, tie=True),
    "sdar-qwen3": dict(model_type="sdar", mask_in_config=False, tie=True, shards=2, extra={"block_size": 4}),
    "qwen2-3layers": dict(model_type="a2d-qwen2", layers=3, heads=8, kv_heads=4, hidden=64),
}


@pytest.mark.parametrize("name", MADE)
def test_made_checkpoints_agree_with_and_without_the_cache(name: str, tmp_path: Path) -> None:
    folder = make_backbone_folder(tmp_path / name, **MADE[name])
    loaded = load_model(folder, device="cpu", dtype="float32")
    assert loaded.model.mask_id == MASK_ID and loaded.stop_ids == tuple(STOP_IDS)
    block = 4
    ids = torch.randint(0, 50000, (1, 3 * block), generator=torch.Generator().manual_seed(1))
    ids[0, -3:] = MASK_ID
    full, cached = last_block_logits(loaded, ids, block)
    assert full.abs().max() > 0.1  # not a degenerate network
    assert (full - cached).abs().max() < TOLERANCE


def test_a_float32_chat_model_on_an_x86_cpu_samples_with_packed_layers_and_the_same_logits(tmp_path: Path, monkeypatch) -> None:
    from bd3lm_core.model import hf_layout, kernels

    if not kernels.packing_available():
        pytest.skip("oneDNN's packed linear needs an x86 CPU and a torch built with oneDNN")
    folder = make_backbone_folder(tmp_path / "qwen2", **MADE["qwen2-3layers"])  # biases on q, k and v
    packed = load_model(folder, device="cpu", dtype="float32")
    layer = packed.model.model.layers[0]
    assert isinstance(layer.self_attn.q_proj, kernels.PackedLinear) and isinstance(layer.mlp.down_proj, kernels.PackedLinear)
    assert isinstance(packed.model.lm_head, kernels.FewRowsLinear)  # the untied output layer keeps the few-rows kernel
    monkeypatch.setattr(hf_layout, "packing_available", lambda: False)  # as on a CPU without it
    unpacked = load_model(folder, device="cpu", dtype="float32")
    assert isinstance(unpacked.model.model.layers[0].self_attn.q_proj, kernels.FewRowsLinear)
    ids = torch.randint(0, 50000, (1, 12), generator=torch.Generator().manual_seed(5))
    ids[0, -3:] = MASK_ID
    a, b = last_block_logits(packed, ids, 4)[1], last_block_logits(unpacked, ids, 4)[1]
    assert a.abs().max() > 0.1 and (a - b).abs().max() < TOLERANCE


def test_each_layer_is_packed_before_the_next_is_read(tmp_path: Path, monkeypatch) -> None:
    """Packing makes a copy of each matrix: done layer by layer, the plain weights of one layer at most are alive."""
    from bd3lm_core.model import hf_layout

    if not hf_layout.packing_available():
        pytest.skip("oneDNN's packed linear needs an x86 CPU and a torch built with oneDNN")
    events = []
    fill, pack = hf_layout._fill, hf_layout.pack_linear_layers

    def reading(tensor, files, name: str, shards) -> None:
        if name.startswith("model.layers."):
            events.append(("read", name.split(".")[2]))
        fill(tensor, files, name, shards)

    def packing(part) -> None:
        events.append(("pack", None))
        pack(part)

    monkeypatch.setattr(hf_layout, "_fill", reading)
    monkeypatch.setattr(hf_layout, "pack_linear_layers", packing)
    load_model(make_backbone_folder(tmp_path / "m", **MADE["qwen2-3layers"]), device="cpu", dtype="float32")
    layer_reads = [layer for kind, layer in events if kind == "read"]
    assert sorted(set(layer_reads)) == ["0", "1", "2"]
    packs = [i for i, (kind, _) in enumerate(events) if kind == "pack"]
    assert len(packs) == 3
    for pack_at, next_layer in zip(packs, ["1", "2", None]):  # layer i is packed before layer i + 1 is read
        assert next_layer is None or ("read", next_layer) not in events[:pack_at]


def test_a_prompt_past_the_window_is_written_in_chunks_and_a_few_rows_get_their_own_logits(tmp_path: Path) -> None:
    """Writes that ask no logits, and steps that ask a few rows, run the last layer on those rows alone."""
    folder = make_backbone_folder(tmp_path / "qwen3", model_type="a2d-qwen3", tie=True,
                                  extra={"max_position_embeddings": 16})
    block = 4
    ids = torch.randint(0, 50000, (1, 44), generator=torch.Generator().manual_seed(4))
    ids[0, -3:] = MASK_ID
    prefix, last = ids[:, :-block], ids[:, -block:]
    every_row, two_rows = torch.arange(block), torch.tensor([1, 3])
    logits = {}
    for dtype in ("float32", "int8"):
        loaded = load_model(folder, device="cpu", dtype=dtype)
        full, cached = FullContext(loaded.model, block), CachedContext(loaded.model, block)
        full.commit(prefix)
        cached.commit(prefix)
        written = cached.logits(last, every_row)  # two windows of 16 written with no logits, then the block
        assert cached.cached == prefix.shape[1]
        alone = cached.logits(last, two_rows)  # the block alone over the cache, two rows asked
        logits[dtype] = full.logits(last, every_row), written, alone  # the first: all at once, sliding-window mask
    whole, written, alone = logits["float32"]
    assert whole.abs().max() > 0.1
    assert (written - whole).abs().max() < TOLERANCE and (alone - whole[:, two_rows]).abs().max() < TOLERANCE
    # int8 quantizes each forward's rows by their own range, so its forwards differ by about its error, no more
    for int8, exact in zip(logits["int8"], (whole, whole, whole[:, two_rows])):
        assert (int8 - exact).abs().max() < 0.1 * whole.abs().max()


def test_a_prompts_many_rows_and_a_steps_few_take_different_attention_kernels_and_agree(tmp_path: Path, monkeypatch) -> None:
    """Past FEW_QUERIES rows per key head attention runs in SDPA's kernel, below it in explicit products."""
    from bd3lm_core.model import network

    folder = make_backbone_folder(tmp_path / "qwen2", **MADE["qwen2-3layers"])  # 8 query heads over 4 key heads
    loaded = load_model(folder, device="cpu", dtype="float32")
    block, groups = 4, 2
    length = (network.FEW_QUERIES // groups // block + 2) * block  # the full forward is past the threshold
    ids = torch.randint(0, 50000, (1, length), generator=torch.Generator().manual_seed(2))
    ids[0, -3:] = MASK_ID
    sdpa_rows = []
    sdpa = network.F.scaled_dot_product_attention
    monkeypatch.setattr(network.F, "scaled_dot_product_attention", lambda q, *a, **k: sdpa_rows.append(q.shape[2]) or sdpa(q, *a, **k))
    full, cached = last_block_logits(loaded, ids, block)
    assert sdpa_rows and min(sdpa_rows) == groups * length  # only the whole-sequence forwards took SDPA
    assert full.abs().max() > 0.1
    assert (full - cached).abs().max() < TOLERANCE  # the block alone, over the cache, took the explicit products


def test_sdar_takes_its_defaults_and_chats(tmp_path: Path) -> None:
    folder = make_backbone_folder(tmp_path / "sdar", model_type="sdar", mask_in_config=False, tie=True)
    loaded = load_model(folder, device="cpu")
    assert loaded.family == "sdar" and loaded.model.default_block_size == 4
    assert loaded.default_settings().sampler == "threshold" and loaded.default_settings().threshold == 0.9
    [reply] = bd3lm("chat", "--model", str(folder), "--message", "Hi", "--tokens", "8", "--seed", "1", "--ignore-eos")
    assert reply["settings"]["sampler"] == "threshold" and reply["settings"]["block_size"] == 4
    assert len(reply["token_ids"]) == 8
    assert reply["prompt"] == render_chat(loaded, [{"role": "user", "content": "Hi"}])


@pytest.mark.parametrize("extra, field", [
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "rope_scaling"),
    ({"num_experts": 128}, "num_experts"),
    ({"use_sliding_window": True, "sliding_window": 4096}, "sliding_window"),
])
def test_unsupported_features_are_refused_by_name(tmp_path: Path, extra: dict, field: str) -> None:
    folder = make_backbone_folder(tmp_path / "m", model_type="a2d-qwen3", extra=extra)
    with pytest.raises(BD3LMError, match=field):
        load_model(folder, device="cpu")


def test_no_mask_token_is_refused(tmp_path: Path) -> None:
    folder = make_backbone_folder(tmp_path / "m", model_type="sdar", mask_in_config=False)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    del config["mask_token"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(BD3LMError, match="mask token is unknown"):
        load_model(folder, device="cpu")


def test_a_sharded_chat_model_downloads_whole_and_loads(tmp_path: Path, online, bd3lm_home: Path) -> None:
    from bd3lm_core import download_model, installed_models
    from hubserver import HubServer

    made = make_backbone_folder(tmp_path / "made", model_type="sdar", mask_in_config=False, shards=3)
    files = {f.name: f.read_bytes() for f in made.iterdir()}
    assert len([n for n in files if n.endswith(".safetensors")]) == 3
    with HubServer({"test-org/tiny-sdar": files}) as hub:
        folder = download_model("test-org/tiny-sdar", endpoint=hub.url)
    assert {f.name for f in folder.iterdir() if not f.name.startswith(".")} == set(files)
    assert all((folder / name).read_bytes() == data for name, data in files.items())
    assert [m.repo_id for m in installed_models()] == ["test-org/tiny-sdar"]
    loaded = load_model(folder, device="cpu")
    assert loaded.chat_template is not None and loaded.stop_ids == tuple(STOP_IDS)


def test_auto_precision_takes_the_best_that_fits_and_a_precision_that_does_not_is_refused(tmp_path, monkeypatch) -> None:
    import bd3lm_core.devices as devices

    folder = make_backbone_folder(tmp_path / "m", model_type="a2d-qwen3")
    params = sum(p.numel() for p in load_model(folder, device="cpu", dtype="float32").model.parameters())
    monkeypatch.setattr(devices, "free_bytes", lambda device: int(params * 3))  # bfloat16 fits, float32 does not
    assert load_model(folder, device="cpu").dtype == torch.bfloat16
    with pytest.raises(BD3LMError, match=r"in float32 but .* is free on cpu; use --dtype bfloat16"):
        load_model(folder, device="cpu", dtype="float32")
    monkeypatch.setattr(devices, "free_bytes", lambda device: 1000)
    with pytest.raises(BD3LMError, match="needs .* even in bfloat16 but 1.0 kB is free"):
        load_model(folder, device="cpu")


def bd3lm_fails(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "bd3lm_core.cli", *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    return result.stderr


@pytest.mark.parametrize("template, expected", [
    ("{{ raise_exception('System messages are not supported') }}", "refused the conversation: System messages are not supported"),
    ("{% for m in messages %}", "is broken: Unexpected end of template"),
    ("{{ messages.__class__.__mro__ }}", "unsafe"),
    (None, "has no chat template, so it cannot chat; use `bd3lm generate`"),
    # hostile templates tried for issue 21: the first three allocated gigabytes or were read as no template at all
    ("{{ 'a' * 1000000000 }}", "refused the conversation: the template repeats a value 1000000000 times"),
    ("{{ 2 ** 1000000000 }}", "refused the conversation: the template raises 2 to the power 1000000000"),
    ("{% for i in range(100000) %}{{ 'a' * 1000 }}{% endfor %}", "refused the conversation: its prompt grew past"),
    (42, "tokenizer_config.json: chat_template is int, not a template's text"),
    ("{% for i in range(1000000000) %}a{% endfor %}", "failed: OverflowError: Range too big"),
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "failed: RecursionError"),
    ("{{ messages[5].content }}", "refused the conversation: list object has no element 5"),
    ("{{ cycler.__init__.__globals__.os.popen('id').read() }}", "is unsafe"),
], ids=["raises", "broken", "unsafe", "none", "repeat-1e9", "power-1e9", "renders-100MB", "a-number", "range-1e9",
        "recursion", "bad-index", "sandbox-escape"])
def test_chat_template_problems_are_one_line(tmp_path: Path, template: str | None, expected: str) -> None:
    folder = make_backbone_folder(tmp_path / "m")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] = template
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert expected in bd3lm_fails("chat", "--model", str(folder), "--message", "Hi", "--json", "--tokens", "2")


@pytest.mark.parametrize("plant, expected", [
    (os.mkfifo, "chat_template.jinja is a pipe, a device or a socket"),
    (lambda path: path.mkdir(), "chat_template.jinja is a folder"),
    (lambda path: path.write_bytes(b"\xff\xfe{{ x }}"), "chat_template.jinja is not valid UTF-8 text"),
    (lambda path: path.write_bytes(b" " * 2_000_000), "more than the 1.0 MB a chat_template.jinja can be"),
], ids=["fifo", "folder", "not-utf8", "2MB"])
def test_a_chat_template_jinja_that_is_no_readable_template_is_one_line(tmp_path: Path, plant, expected: str) -> None:
    """The file that wins over tokenizer_config.json's template is refused, not passed over or read with U+FFFD."""
    folder = make_backbone_folder(tmp_path / "m")
    plant(folder / "chat_template.jinja")
    assert expected in bd3lm_fails("chat", "--model", str(folder), "--message", "Hi", "--json", "--tokens", "2")


def test_a_typed_line_that_is_not_utf8_is_one_line_and_the_chat_goes_on(tmp_path: Path) -> None:
    folder = make_backbone_folder(tmp_path / "m")
    result = subprocess.run([sys.executable, "-m", "bd3lm_core.cli", "chat", "--model", str(folder), "--tokens", "2",
                             "--seed", "0"], input=b"\xff\xfe hi\nHi\n/exit\n", capture_output=True, timeout=300)
    err = result.stderr.decode()
    assert result.returncode == 0 and "Traceback" not in err, err
    assert "bd3lm: that line is not valid UTF-8 text; pass it in UTF-8.\n" in err
    assert "tokens," in err  # the next line was answered: its "[N tokens, ...]" summary


def test_chat_template_jinja_file_wins_and_thinking_reaches_it(tmp_path: Path) -> None:
    folder = make_backbone_folder(tmp_path / "m")
    (folder / "chat_template.jinja").write_text(
        "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
        "{% if enable_thinking is defined and not enable_thinking %}(no thinking)\n{% endif %}[assistant] "
    )
    [reply] = bd3lm("chat", "--model", str(folder), "--system", "Be kind.", "--message", "Hi", "--no-think",
                    "--tokens", "2", "--seed", "0")
    assert reply["prompt"] == "[system] Be kind.\n[user] Hi\n(no thinking)\n[assistant] "


def test_a_made_llama_generates_from_the_cli_and_what_only_bd3lms_do_is_refused(tmp_path: Path) -> None:
    folder = make_backbone_folder(tmp_path / "llama", model_type="a2d-llama", shards=2)
    [run] = bd3lm("generate", "--model", str(folder), "--prompt", "Hi", "--tokens", "7", "--block-size", "4",
                  "--sampler", "ddpm", "--steps", "2", "--seed", "3", "--ignore-eos", "--dtype", "int8")
    assert len(run["token_ids"]) == 7 and run["dtype"] == "int8" and run["settings"]["sampler"] == "ddpm"
    assert run["nfe"] <= 2 * 3  # 2 steps per block, 3 blocks (the prompt's one token starts the first)
    (tmp_path / "text.txt").write_text("Some text to evaluate.\n")
    assert "works on BD3-LM and MDLM checkpoints only" in bd3lm_fails("eval", "--model", str(folder), "--data", str(tmp_path / "text.txt"))
    assert "works on BD3-LM and MDLM checkpoints only" in bd3lm_fails("convert", str(folder), str(tmp_path / "out"))


def test_ctrl_c_stops_the_reply_not_the_chat(tmp_path: Path) -> None:
    import select
    import signal
    import time

    folder = SHARED_BACKBONES / "a2d-qwen3-bs4" / "checkpoint"
    if not folder.is_dir():
        folder = make_backbone_folder(tmp_path / "m", model_type="a2d-qwen3")
    chat = subprocess.Popen(
        [sys.executable, "-m", "bd3lm_core.cli", "chat", "--model", str(folder), "--tokens", "100000", "--block-size", "4",
         "--ignore-eos", "--no-repetition-stop", "--device", "cpu"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    chat.stdin.write(b"Tell me a long story\n")
    chat.stdin.flush()
    shown = b""
    deadline = time.monotonic() + 120
    while len(shown) < 40 and time.monotonic() < deadline:  # the reply is streaming
        if select.select([chat.stdout], [], [], 0.1)[0]:
            shown += os.read(chat.stdout.fileno(), 4096)
    chat.send_signal(signal.SIGINT)
    out, err = chat.communicate(b"/exit\n", timeout=120)
    assert chat.returncode == 0, err
    assert b"stopped: cancelled" in err and b"Traceback" not in err
    assert (shown + out).rstrip().endswith(b">")  # back at the prompt after the stopped reply


def test_free_memory_is_what_the_system_reports() -> None:
    from bd3lm_core.memory import free_bytes

    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        pytest.skip("no /proc/meminfo here")
    fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in meminfo.read_text().splitlines()}
    free = free_bytes(torch.device("cpu"))
    assert 0 < free <= fields["MemTotal"]
    assert abs(free - fields["MemAvailable"]) < 0.1 * fields["MemTotal"]  # read a moment apart


def test_a_sharded_chat_model_in_the_hf_cache_is_listed_and_loaded_in_place(tmp_path: Path, hf_cache, bd3lm_home) -> None:
    from bd3lm_core import installed_models

    made = make_backbone_folder(tmp_path / "made", model_type="sdar", mask_in_config=False, shards=2)
    snapshot = hf_cache.add("JetLM/SDAR-tiny-Chat", {f.name: f.read_bytes() for f in made.iterdir()})
    [listed] = installed_models()
    assert (listed.repo_id, listed.path, listed.in_hf_cache) == ("JetLM/SDAR-tiny-Chat", snapshot, True)
    before = hf_cache.files()
    loaded = load_model("JetLM/SDAR-tiny-Chat", device="cpu")
    assert loaded.path == snapshot and loaded.family == "sdar" and hf_cache.files() == before


def test_int8_gives_a_tied_model_an_int8_output_layer_and_close_logits() -> None:
    """The tied output layer is a quarter of a small chat model's reads: int8 must quantize it too, not leave it float32."""
    folder = SHARED_BACKBONES / "a2d-qwen3-bs4" / "checkpoint"
    if not (folder / "config.json").is_file():
        pytest.skip(f"no fixture at {folder}")
    full, int8 = (load_model(folder, device="cpu", dtype=d) for d in ("float32", "int8"))
    assert isinstance(int8.model.lm_head, torch.ao.nn.quantized.dynamic.Linear)
    assert not hasattr(full.model, "lm_head")  # float32 still multiplies by the embedding itself
    ids = torch.randint(0, 1000, (1, 12), generator=torch.Generator().manual_seed(0))
    a, b = last_block_logits(full, ids, 4)[1], last_block_logits(int8, ids, 4)[1]
    assert (a - b).abs().max() < 0.05 * a.abs().max()
    assert (a - b).abs().max() > 0


@pytest.mark.parametrize("amx", [True, False])
def test_an_int8_chat_model_keeps_its_cache_in_bfloat16_only_on_a_cpu_with_amx(tmp_path: Path, amx: bool, monkeypatch) -> None:
    from bd3lm_core.model import kernels

    folder = make_backbone_folder(tmp_path / "qwen2", **MADE["qwen2-3layers"])
    monkeypatch.setattr(kernels, "amx_available", lambda: amx)
    full, int8 = (load_model(folder, device="cpu", dtype=d) for d in ("float32", "int8"))
    cached = CachedContext(int8.model, 4)
    assert cached.cache.k.dtype == (torch.bfloat16 if amx else torch.float32)
    assert CachedContext(full.model, 4).cache.k.dtype == torch.float32  # float32 weights: a float32 cache, AMX or not
    ids = torch.randint(0, 50000, (1, 12), generator=torch.Generator().manual_seed(6))
    ids[0, -3:] = MASK_ID
    a, b = last_block_logits(full, ids, 4)[1], last_block_logits(int8, ids, 4)[1]
    assert (a - b).abs().max() < 0.1 * a.abs().max()
