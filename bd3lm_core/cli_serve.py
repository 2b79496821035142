"""`bd3lm serve`: an OpenAI-compatible server on localhost for the model given (bd3lm_core/serve/).

The sampler flags are generate's and become the defaults of every request;
a request's own fields (max_tokens, temperature, top_p, seed and the
"bd3lm" object) override them.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys

from . import checks
from .cli_options import add_model_options, add_sampler_options, load_from_flags, sampler_settings, sampler_values
from .errors import BD3LMError

MAX_QUEUE = 1024


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a model through the OpenAI API on localhost",
                       description="Serve a model through OpenAI's chat and text completion API "
                                   "(needs the server extra: pip install 'bd3lm-studio[serve]').")
    add_model_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default %(default)s; 0 picks a free one)")
    p.add_argument("--api-key", metavar="KEY", help="require 'Authorization: Bearer KEY' on every request")
    p.add_argument("--queue", type=int, default=8, metavar="N",
                   help="requests that may wait while one generates; more are answered 429 (default %(default)s)")
    add_sampler_options(p, tokens_help="the most new tokens per request unless it sets max_tokens")
    p.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    sampler_settings(args)  # a wrong flag is refused before the model loads
    checks.whole(args.port, "--port", 0, 65535)
    checks.whole(args.queue, "--queue", 1, MAX_QUEUE)
    try:
        import uvicorn

        from .serve.app import build_app
    except ImportError as err:
        raise BD3LMError(f"bd3lm serve needs the server extra ({err.name} is missing): "
                         "pip install 'bd3lm-studio[serve]' (or pip install starlette uvicorn).") from None
    listener = _listen(args.host, args.port)
    if not args.api_key and not _is_loopback(args.host):
        print(f"bd3lm: warning: listening on {args.host} without --api-key: anyone who can reach this machine "
              "can use the model.", file=sys.stderr)
    loaded = load_from_flags(args)
    app = build_app(loaded, sampler_values(args), queue_size=args.queue, api_key=args.api_key)
    host, port = listener.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {loaded.name} at http://{shown}:{port}/v1 (Ctrl+C stops)", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    server.run(sockets=[listener])
    app.state.runner.close()
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port before the model loads, so a taken port is reported at once."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        listener = socket.socket(family, kind, proto)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(128)
    except OSError as err:
        raise BD3LMError(f"cannot listen on {host}:{port} ({err.strerror or err}); choose another --port or --host.") from None
    return listener


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
