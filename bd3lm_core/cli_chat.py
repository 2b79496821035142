"""`bd3lm chat`: a conversation with a chat model in the terminal, or scripted with --message.

Interactive: each line you type is a user turn; the reply streams block by
block. Ctrl+C stops the reply (what was written stays in the conversation),
not the chat; /reset starts over, /exit (or Ctrl+D) quits. Scripted: every
--message is one user turn, answered in order; with --json each reply is one
JSON object on its own line. The sampler flags are generate's (cli.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import asdict

from . import checks
from .cli_options import EXIT_INTERRUPTED, add_model_options, add_sampler_options, load_from_flags, sampler_settings
from .errors import BD3LMError


def add_chat(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="chat with a chat model (Qwen/Llama-backbone block diffusion)",
                       description="Chat with a block diffusion chat model, rendered by its own chat template.")
    add_model_options(p)
    p.add_argument("--system", metavar="TEXT", help="system prompt")
    think = p.add_mutually_exclusive_group()
    think.add_argument("--think", dest="enable_thinking", action="store_const", const=True,
                       help="let a template that reads enable_thinking (Qwen3's) open a reasoning block")
    think.add_argument("--no-think", dest="enable_thinking", action="store_const", const=False,
                       help="ask such a template to skip the reasoning block")
    p.add_argument("--message", action="append", metavar="TEXT",
                   help="a user turn, answered without asking (repeat for several, answered in order)")
    add_sampler_options(p, tokens_help="the most new tokens per reply")
    p.add_argument("--json", action="store_true", help="with --message: one JSON object per reply")
    p.set_defaults(run=run_chat, enable_thinking=None)


def run_chat(args: argparse.Namespace) -> int:
    sampler_settings(args)  # a wrong flag is refused before the model loads
    for text in [args.system or "", *(args.message or [])]:
        checks.text(text, "--message")
    if args.json and not args.message:
        raise BD3LMError("--json answers the --message turns; give at least one --message (or leave out --json to chat).")
    loaded = load_from_flags(args)
    if loaded.chat_template is None:
        raise BD3LMError(f"{loaded.name} has no chat template, so it cannot chat; use `bd3lm generate` to continue a text.")
    if args.enable_thinking is not None and not loaded.chat_template.reads_enable_thinking:
        print(f"note: {loaded.name}'s chat template does not read enable_thinking; --think/--no-think changes nothing.",
              file=sys.stderr)
    chat = _Chat(args, loaded, sampler_settings(args, loaded))
    if args.message:
        for text in args.message:
            if chat.answer(text):
                return EXIT_INTERRUPTED
        return 0
    return chat.interactive()


class _Chat:
    """The conversation so far, and how one turn is answered and shown."""

    def __init__(self, args: argparse.Namespace, loaded, settings) -> None:
        self.args, self.loaded, self.settings = args, loaded, settings
        self.messages: list[dict] = []
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.args.system}] if self.args.system else []

    def answer(self, text: str) -> bool:
        """Answer one user turn (streamed, or as JSON); True if Ctrl+C stopped the reply."""
        from .chat import generate_chat, render_chat
        from .interrupts import first_interrupt_cancels
        from .sampling import BlockDone, Finished

        self.messages.append({"role": "user", "content": text})
        prompt = render_chat(self.loaded, self.messages, self.args.enable_thinking)
        cancel = threading.Event()
        finished = None
        with first_interrupt_cancels(cancel):
            for event in generate_chat(self.loaded, self.messages, self.settings, cancel=cancel,
                                       enable_thinking=self.args.enable_thinking):
                if isinstance(event, BlockDone) and not self.args.json:
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                elif isinstance(event, Finished):
                    finished = event
        self.messages.append({"role": "assistant", "content": finished.text})
        if self.args.json:
            print(json.dumps({
                "model": self.loaded.name, "prompt": prompt, "reply": finished.text, "token_ids": list(finished.token_ids),
                "nfe": finished.nfe, "seconds": finished.seconds, "tokens_per_second": finished.tokens_per_second,
                "stop_reason": finished.stop_reason, "device": self.loaded.placement[0], "dtype": self.loaded.placement[1],
                "settings": asdict(finished.settings),
            }), flush=True)
        else:
            print()
            print(f"[{len(finished.token_ids)} tokens, {finished.nfe} forwards, {finished.tokens_per_second:.1f} tokens/s, "
                  f"stopped: {finished.stop_reason}]", file=sys.stderr)
        return cancel.is_set()

    def interactive(self) -> int:
        print(f"chatting with {self.loaded.name}; /reset starts over, /exit quits, Ctrl+C stops a reply.", file=sys.stderr)
        while True:
            try:
                text = input("> ")
            except EOFError:
                print()
                return 0
            except KeyboardInterrupt:  # at the prompt: a fresh line, as a shell does
                print()
                continue
            if text.strip() == "/exit":
                return 0
            if text.strip() == "/reset":
                self.reset()
                print("(a new conversation)", file=sys.stderr)
                continue
            if text.strip():
                self._try_turn(text)

    def _try_turn(self, text: str) -> None:
        """One typed turn; a mistake in it (not UTF-8, refused by the template, too large for memory) is one line,
        the turn is dropped, and the conversation so far is kept: a chat is not lost to one bad line."""
        kept = len(self.messages)
        try:
            self.answer(checks.text(text, "that line"))
        except BD3LMError as err:
            del self.messages[kept:]
            print(f"bd3lm: {err}", file=sys.stderr, flush=True)
