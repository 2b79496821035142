"""The `bd3lm` command: generate, judge, download, list models, train, evaluate.

Every subcommand goes through the same public API as the app. User errors
(`BD3LMError`, and flags argparse cannot parse) print one line on stderr and
exit with status 2, before any work starts where the flag alone is wrong.
Ctrl+C exits with 130 after keeping what can be kept (the text generated so
far, a saved training run), SIGTERM during training with 143, and a reader
that goes away (`bd3lm generate | head -c 20`) ends the command quietly with
141, the status of a Unix tool stopped by SIGPIPE. Anything else that escapes
a command is one line too (`failures.describe`): status 2 for a file, memory or
output problem (`> /dev/full`), 1 for our own bug, with its report file named.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from . import checks
from . import cli_options  # the progress line and its state
from .cli_options import (
    EXIT_INTERRUPTED, add_model_options, add_sampler_options, download_progress, load_from_flags, sampler_settings,
)
from .errors import BD3LMError
from .failures import EXIT_USER_ERROR, describe
from .formatting import duration

EXIT_PIPE_CLOSED, EXIT_TERMINATED = 141, 143


def _error(message: str, new_line: bool = False) -> None:
    """`bd3lm: message` on a line of its own, after any progress line (or the ^C a terminal shows: `new_line`)."""
    print(("\n" if new_line or cli_options.shown else "") + f"bd3lm: {message}", file=sys.stderr)


# --- generate ---------------------------------------------------------------


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate text, streamed as blocks commit", description="Generate text with a BD3-LM.")
    add_model_options(p)
    p.add_argument("--prompt", default="", help="text to continue (default: start from BOS alone)")
    add_sampler_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object at the end instead of streaming")
    p.add_argument("--num-samples", type=int, default=1, metavar="N",
                   help="draw N samples of the prompt at once, in one batch; sample i uses seed + i (default 1)")
    p.add_argument("--judge", metavar="SRC",
                   help="score the sample with this autoregressive judge (folder or hub repo id; `default`: the one "
                        "for the model's tokenizer) and report its Gen PPL and entropy")
    p.set_defaults(run=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    import threading
    from dataclasses import asdict

    from .budgets import require_sampling_memory
    from .interrupts import first_interrupt_cancels
    from .sampling import BlockDone, Finished, generate
    from .sampling.loop import MAX_SAMPLES

    sampler_settings(args)  # a wrong flag is refused before the model loads
    checks.text(args.prompt, "--prompt")
    checks.whole(args.num_samples, "--num-samples", 1, MAX_SAMPLES)
    loaded = load_from_flags(args)
    settings = sampler_settings(args, loaded)
    # the prompt's bytes bound its tokens; the last block may run past --tokens
    require_sampling_memory(loaded, args.num_samples, len(args.prompt.encode()) + 1 + settings.tokens + loaded.config.block_size)
    judge = _load_judge(args.judge, loaded, loaded.placement[0]) if args.judge else None
    many = args.num_samples > 1
    stream = not args.json and not many  # one sample streams block by block; several print as each finishes
    if stream:
        sys.stdout.write(args.prompt)
    finished: list[Finished] = []
    cancel = threading.Event()  # the first Ctrl+C: stop before the next step and report what was generated
    with first_interrupt_cancels(cancel):
        for event in generate(loaded, args.prompt, settings, num_samples=args.num_samples, cancel=cancel):
            if isinstance(event, BlockDone) and stream:
                sys.stdout.write(event.text)
                sys.stdout.flush()
            elif isinstance(event, Finished):
                finished.append(event)
                if many and not args.json:
                    print(f"--- sample {event.row + 1} of {args.num_samples} (seed {event.settings.seed}, "
                          f"stopped: {event.stop_reason}) ---\n{args.prompt}{event.text}", flush=True)
    status = EXIT_INTERRUPTED if cancel.is_set() else 0
    finished.sort(key=lambda f: f.row)
    # an empty sample (end-of-text at once) has no Gen PPL; the run is still reported
    quality = [
        None if judge is None else judge.score(f.text, f.token_ids, prompt=args.prompt) if f.text else None
        for f in finished
    ]
    nfe, seconds = max(f.nfe for f in finished), max(f.seconds for f in finished)  # the batch's, not a row's
    tokens = sum(len(f.token_ids) for f in finished)
    speed = tokens / seconds if seconds > 0 else 0.0
    if args.json:
        samples = [
            {"text": f.text, "token_ids": list(f.token_ids), "stop_reason": f.stop_reason, "seed": f.settings.seed,
             **_quality_fields(judge, j)}
            for f, j in zip(finished, quality)
        ]
        run = {
            "model": loaded.name, "prompt": args.prompt, "nfe": nfe, "seconds": seconds, "tokens_per_second": speed,
            "device": loaded.placement[0], "dtype": loaded.placement[1], "settings": asdict(finished[0].settings),
        }
        if many:
            print(json.dumps({**run, "num_samples": args.num_samples, "samples": samples}))
        else:
            first = samples[0]
            print(json.dumps({
                **run, "text": first["text"], "token_ids": first["token_ids"], "stop_reason": first["stop_reason"],
                **_quality_fields(judge, quality[0]),
            }))
        return status
    if stream:
        print()
    judged = [j for j in quality if j is not None]
    scores = ""
    if judged:
        scores = (f", Gen PPL {sum(j.gen_ppl for j in judged) / len(judged):.2f}, "
                  f"entropy {sum(j.entropy for j in judged) / len(judged):.2f}" + (" (means)" if many else ""))
    seed = f"seeds {finished[0].settings.seed}..{finished[-1].settings.seed}" if many else f"seed {finished[0].settings.seed}"
    stops = ", ".join(sorted({f.stop_reason for f in finished}))
    print(f"[{tokens} tokens, {nfe} forwards, {speed:.1f} tokens/s, stopped: {stops}, {seed}{scores}]", file=sys.stderr)
    return status


def _quality_fields(judge, judgement) -> dict:
    """The judge's fields of a JSON result: none without a judge, nulls for an empty sample."""
    if judge is None:
        return {}
    return {
        "judge": judge.name,
        "gen_ppl": judgement.gen_ppl if judgement else None,
        "entropy": judgement.entropy if judgement else None,
    }


# --- judge ------------------------------------------------------------------
def _load_judge(source: str, model, device: str):
    """The judge named on the command line; `default` (or none) is the default judge for `model`."""
    from .quality import load_judge

    return load_judge(None if source == "default" else source, model=model, device=device, progress=download_progress)


def add_judge(sub: argparse._SubParsersAction) -> None:
    from .devices import DEVICES

    p = sub.add_parser("judge", help="Gen PPL and entropy of text files, scored by an autoregressive judge",
                       description="Score UTF-8 text files with an autoregressive judge: generative perplexity "
                                   "(Gen PPL) and the entropy of the tokens (nats).")
    p.add_argument("files", nargs="+", metavar="FILE", help="UTF-8 text, one sample per file")
    p.add_argument("--judge", metavar="SRC", default="default",
                   help="a GPT-2 or block-size-1 BD3-LM: folder or hub repo id (default: the shipped judge)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="default %(default)s: CUDA, then MPS, then CPU")
    p.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    p.set_defaults(run=run_judge)


MAX_JUDGED_BYTES = 16 * 2**20


def run_judge(args: argparse.Namespace) -> int:
    from .training.data import read_text

    # every file is checked before the judge loads; a judged sample is KBs, and the tokenizer holds a word in memory
    texts = [(name, read_text(name, MAX_JUDGED_BYTES)) for name in args.files]
    for name, text in texts:
        if not text.strip():
            raise BD3LMError(f"{name} is empty; give the judge a file with text in it.")
    judge = _load_judge(args.judge, None, args.device)
    for name, text in texts:
        j = judge.score(text)
        if args.json:
            print(json.dumps({"file": name, "tokens": j.tokens, "gen_ppl": j.gen_ppl, "entropy": j.entropy}))
        else:
            print(f"{name}: {j.tokens} tokens, Gen PPL {j.gen_ppl:.2f}, entropy {j.entropy:.2f} nats")
        sys.stdout.flush()
    return 0


# --- models and downloads ----------------------------------------------------
def add_download(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("download", help="download a model from the Hugging Face hub")
    p.add_argument("repo_id", help="for example kuleshov-group/bd3lm-owt-block_size4 (see `bd3lm models`)")
    p.set_defaults(run=run_download)


def run_download(args: argparse.Namespace) -> int:
    from .hub import download_model

    folder = download_model(args.repo_id, progress=download_progress)
    print(f"\n{args.repo_id} is in {folder}", file=sys.stderr)
    return 0


def add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the installed models and the catalog")
    p.set_defaults(run=run_models)


def run_models(args: argparse.Namespace) -> int:
    from .hub import CATALOG, hf_cache, installed_models, models_dir
    from .resources import DEFAULT_JUDGE, DEFAULT_MODEL, default_judge_dir, default_model_dir

    installed = {m.repo_id: m for m in installed_models()}
    print("Shipped:")
    for name, folder, role in ((DEFAULT_MODEL, default_model_dir(), "the default"),
                               (DEFAULT_JUDGE, default_judge_dir(), "the judge for Gen PPL")):
        state = "installed" if (folder / "config.json").is_file() else "missing"
        print(f"  {name:48s} {state} ({role})")
    print(f"Catalog (downloads go to {models_dir()}):")
    for entry in CATALOG:
        mark = "installed" if entry.repo_id in installed else f"{entry.size_bytes / 1e6:.0f} MB"
        where = f" ({installed[entry.repo_id].where})" if entry.repo_id in installed else ""
        print(f"  {entry.repo_id:48s} block {entry.block_size:<5d} {mark:>10s}  {entry.description}{where}")
        if entry.defaults is not None:
            chosen = ", ".join(f"{k} {v}" for k, v in entry.defaults.settings.items())
            print(f"  {'':48s} needs: {entry.memory}; sampler defaults: {chosen} ({entry.defaults.source})")
    others = [m for r, m in installed.items() if all(e.repo_id != r for e in CATALOG)]
    if others:
        print("Other installed models:")
        for m in others:
            print(f"  {m.repo_id:48s} {m.size_bytes / 1e6:.0f} MB  {m.where}: {m.path}")
    for note in hf_cache.scan().skipped.values():
        print(f"note: {note}")
    return 0


# --- convert ----------------------------------------------------------------
def add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="copy a model folder with its weights in another precision (to ship it smaller)")
    p.add_argument("source", help="model folder or hub repo id")
    p.add_argument("dest", help="new model folder")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float16")
    p.set_defaults(run=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .devices import DTYPES
    from .files import new_folder
    from .loader import load_model
    from .model.checkpoints import save_weights

    dest = Path(args.dest)
    try:
        with new_folder(dest) as partial:  # `dest` appears only once every file is written
            loaded = load_model(args.source, device="cpu", dtype="float32")
            loaded.require_dit("bd3lm convert")
            loaded.config.save(partial / "config.json")
            loaded.tokenizer.save(partial / "tokenizer.json")
            save_weights(loaded.model, partial / "model.safetensors", dtype=DTYPES[args.dtype])
    except OSError as err:
        raise BD3LMError(
            f"could not write {dest} ({err.strerror or err}); nothing was written there. Check the path and the free space."
        ) from None
    size = sum(f.stat().st_size for f in dest.iterdir() if f.is_file())
    print(f"wrote {dest} ({size / 1e6:.1f} MB, {args.dtype} weights)", file=sys.stderr)
    return 0


# --- eval -------------------------------------------------------------------
def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="held-out likelihood: NELBO per token and the perplexity bound")
    add_model_options(p)
    p.add_argument("--data", required=True, metavar="FILE", help="UTF-8 text to evaluate on")
    p.add_argument("--separator", default="blank", help="where documents end (as for train; default blank)")
    p.add_argument("--fix-mojibake", action="store_true")
    p.add_argument("--ascii-punctuation", action="store_true")
    p.add_argument("--tail-bytes", type=int, help="evaluate only the last this-many bytes of FILE (e.g. a training hold-out)")
    p.add_argument("--samples", type=int, default=1, help="draws of t and masks to average over (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dataclasses import asdict

    from .sampling import SEED_LIMIT
    from .training.data import TextOptions, make_rows, read_documents, split_tail
    from .training.evaluation import nelbo

    options = TextOptions(args.separator, args.fix_mojibake, args.ascii_punctuation)
    checks.whole(args.samples, "--samples", 1)
    checks.whole(args.batch_size, "--batch-size", 1)
    checks.whole(args.seed, "--seed", 0, SEED_LIMIT - 1)
    if args.tail_bytes is not None:
        checks.whole(args.tail_bytes, "--tail-bytes", 1)
    docs = read_documents(Path(args.data), options)
    loaded = load_from_flags(args)
    loaded.require_dit("bd3lm eval")
    if args.tail_bytes is not None:
        docs = split_tail(docs, args.tail_bytes)[1]
    tok = loaded.tokenizer
    rows = make_rows((tok.encode(d) for d in docs), loaded.config.model_length, tok.bos_id, tok.eos_id)
    result = nelbo(
        loaded.model, rows, samples=args.samples, batch_size=args.batch_size, seed=args.seed,
        progress=None if args.json else lambda i, n: cli_options.line(f"evaluating: batch {i}/{n}"),
    )
    if args.json:
        print(json.dumps({"model": loaded.name, **asdict(result)}))
    else:
        print(f"\n{loaded.name}: NELBO {result.nelbo_per_token:.4f} ± {result.stderr:.4f} nats/token over "
              f"{result.tokens} tokens ({result.samples} draw(s)); perplexity <= {result.ppl_bound:.2f}")
    return 0


# --- train ------------------------------------------------------------------
class _DeprecatedLayers(argparse.Action):
    """`--n-blocks` (the authors' word for transformer layers) still sets --n-layers for one release, with a warning."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print("bd3lm: warning: --n-blocks is deprecated and will be removed; use --n-layers "
              "(it counts transformer layers; blocks are the token blocks of --block-size).", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_train(sub: argparse._SubParsersAction) -> None:
    from .training import TrainSettings
    from .training.group import TRAIN_DEVICES

    d = TrainSettings(data=[], out="")
    p = sub.add_parser("train", help="train a BD3-LM on your own text", description="Train a BD3-LM on plain-text files.",
                       epilog="Under torchrun (WORLD_SIZE and RANK set) the processes wait BD3LM_JOIN_TIMEOUT seconds "
                              "(default 60) for each other to start, then give up in one line.")
    p.add_argument("--data", action="append", required=True, metavar="FILE", help="a UTF-8 text file (repeat for several)")
    p.add_argument("--separator", action="append", metavar="RULE",
                   help="where documents end: blank (an empty line), newline (one newline; blank lines stay inside), "
                        "line, or marker:STRING. One for all files or one per --data. Default: blank")
    p.add_argument("--fix-mojibake", action="store_true", help="repair UTF-8 punctuation mis-decoded as Windows-1252 (â€œ)")
    p.add_argument("--ascii-punctuation", action="store_true", help="turn curly quotes, dashes and ellipses into ASCII")
    p.add_argument("--holdout-bytes", type=int, help="hold out this many bytes from the end of the last file (default 5%%)")
    p.add_argument("--tokenizer", help="use this tokenizer.json instead of training a BPE")
    p.add_argument("--vocab-size", type=int, default=d.vocab_size, help="size of the trained BPE (default %(default)s)")
    for name in ("block_size", "model_length", "hidden_dim", "n_layers", "n_heads", "cond_dim", "batch_size",
                 "warmup", "steps", "eval_every", "eval_rows", "seed"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name), help="default %(default)s")
    p.add_argument("--n-blocks", dest="n_layers", type=int, action=_DeprecatedLayers, help=argparse.SUPPRESS)
    for name in ("dropout", "lr", "weight_decay", "ema", "grad_clip"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name), help="default %(default)s")
    p.add_argument("--schedule", choices=["cosine", "constant"], default=d.schedule)
    p.add_argument("--init-from", metavar="SRC", help="start from this model's weights (folder or hub repo id)")
    p.add_argument("--max-minutes", type=float, help="stop (and save) after this many minutes")
    p.add_argument("--threads", type=int, help="CPU threads for torch (per process under torchrun)")
    p.add_argument("--device", choices=TRAIN_DEVICES, default="cpu",
                   help="default %(default)s; cuda trains in bfloat16 autocast, under torchrun on each rank's LOCAL_RANK GPU")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder: the model and the state to --resume from")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out where it stopped, on its own data and settings "
                        "(--data must name the run's files; --steps and --max-minutes may change)")
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    """One process, or under torchrun one rank of a group; only rank 0 prints, and the others' errors name their rank."""
    import torch

    from .devices import MAX_THREADS
    from .training.group import join_group, leave_group

    if args.threads is not None:
        torch.set_num_threads(checks.whole(args.threads, "--threads", 1, MAX_THREADS))
    group = join_group(args.device)
    try:
        return _train(args, group)
    except BD3LMError as err:
        if group.main:
            raise
        raise BD3LMError(f"rank {group.rank}: {err}") from None
    finally:
        leave_group()


def _train(args: argparse.Namespace, group) -> int:
    from .training import Trainer, TrainSettings
    from .training.trainer import INTERRUPTED, TERMINATED

    fields = TrainSettings.__dataclass_fields__
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    values["separators"] = args.separator or ["blank"]
    settings = TrainSettings(**values)
    trainer = Trainer(settings, resume=args.resume, report=lambda text: print("\n" + text, file=sys.stderr), group=group)
    if group.main:
        params = sum(p.numel() for p in trainer.model.parameters())
        processes = f"; {group.size} processes, {group.size * trainer.settings.batch_size} rows a step" if group.size > 1 else ""
        print(
            f"model: {params / 1e6:.2f}M parameters, vocab {trainer.config.vocab_size}, block {trainer.config.block_size}, "
            f"context {trainer.config.model_length}; data: {len(trainer.train_rows)} training rows, "
            f"{len(trainer.held_rows)} held-out rows{processes}",
            file=sys.stderr,
        )
    stopped = trainer.run(
        lambda p: cli_options.line(
            f"step {p.step}/{p.steps}  loss {p.loss:.3f}  t in [{p.window[0]:.2f}, {p.window[1]:.2f}]  "
            f"{p.tokens_per_second:.0f} tok/s  ETA {duration(p.eta_seconds)}"
        )
    )
    if group.main:
        print(f"\nsaved to {settings.out}", file=sys.stderr)
    return {INTERRUPTED: EXIT_INTERRUPTED, TERMINATED: EXIT_TERMINATED}.get(stopped, 0)


def add_chat(sub: argparse._SubParsersAction) -> None:
    from .cli_chat import add_chat as add

    add(sub)


def add_serve(sub: argparse._SubParsersAction) -> None:
    from .cli_serve import add_serve as add

    add(sub)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_generate, add_chat, add_serve, add_judge, add_download, add_models, add_train, add_eval, add_convert,
]


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line like every other mistake (its default adds the whole usage)."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"bd3lm: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bd3lm", description="Block diffusion language models: generate, download, train, evaluate.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with _named_stdout():
        try:
            code = args.run(args)
            sys.stdout.flush()  # here, where a closed pipe can still be told apart from a real error
            return code
        except BrokenPipeError:
            return _reader_went_away()
        except KeyboardInterrupt:
            _error("interrupted.", new_line=True)
            return EXIT_INTERRUPTED
        except SystemExit:
            raise
        except BaseException as err:  # noqa: BLE001 - every other ending is one line (a Rust panic is a BaseException)
            if isinstance(err, OSError) and err.filename == STDOUT:
                _discard_output()
            failure = describe(err, f"running `bd3lm {args.command}`")
            _error(failure.message)
            return failure.status


STDOUT = "the standard output"


class _NamedOutput:
    """sys.stdout whose write errors name it: `> /dev/full` then reads "No space left on device: the standard output"."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._named(self._stream.write, text)

    def flush(self) -> None:
        self._named(self._stream.flush)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)

    @staticmethod
    def _named(call, *args):
        try:
            return call(*args)
        except OSError as err:  # OSError(EPIPE, ...) is still a BrokenPipeError
            raise OSError(err.errno, err.strerror, STDOUT) from err


@contextmanager
def _named_stdout() -> Iterator[None]:
    stream = sys.stdout
    sys.stdout = _NamedOutput(stream)
    try:
        yield
    finally:
        sys.stdout = stream


def _reader_went_away() -> int:
    """The program reading our output has exited (`| head`): stop without a message, as Unix tools do."""
    _discard_output(sys.stderr)
    return EXIT_PIPE_CLOSED


def _discard_output(*more) -> None:
    """Point stdout (and `more` streams) at /dev/null, so that Python's own flush at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, *more):
        with suppress(OSError, ValueError):
            os.dup2(devnull, stream.fileno())


if __name__ == "__main__":
    sys.exit(main())
