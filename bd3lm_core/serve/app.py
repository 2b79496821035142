"""The HTTP side of `bd3lm serve`: OpenAI's routes on Starlette, answered from the `Runner`'s thread.

Routes: GET /v1/models, POST /v1/completions (a prompt, for any model) and
POST /v1/chat/completions (messages, rendered by the model's chat template).
Answers follow OpenAI's shapes, streamed or not; `usage` carries our `nfe`
(forward passes) beside the token counts, and a `bd3lm` object carries each
sample's seed and stop reason. Errors are OpenAI error objects.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..budgets import require_sampling_memory
from ..chat import render_chat
from ..errors import BD3LMError
from ..loader import LoadedModel
from .requests import MAX_BODY_BYTES, Job, RequestError, parse_body, read_job
from .runner import END, Busy, Done, Failed, Piece, Runner, StepInfo, Ticket

DISCONNECT_POLL_S = 0.25  # how often a waiting non-streamed request checks that its client is still there


def build_app(loaded: LoadedModel, defaults: dict[str, object], queue_size: int = 8, api_key: str | None = None) -> Starlette:
    """The ASGI app serving `loaded`; `defaults` are sampler settings (the serve command's flags) requests start from."""
    runner = Runner(loaded, queue_size)
    created = int(time.time())

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": loaded.name, "object": "model", "created": created, "owned_by": "bd3lm"},
        ]})

    async def completions(request: Request) -> Response:
        return await _answer(request, chat=False)

    async def chat_completions(request: Request) -> Response:
        return await _answer(request, chat=True)

    async def _answer(request: Request, chat: bool) -> Response:
        job = read_job(parse_body(await _body(request)), chat)
        if job.model != loaded.name:
            raise RequestError(404, f"the model {job.model!r} is not served here; this server has {loaded.name!r}.",
                               "model", code="model_not_found")
        try:
            settings = loaded.default_settings(**{**defaults, **job.settings})
            settings.check()
            prompt = render_chat(loaded, job.messages) if chat else job.prompt
            block = settings.block_size or loaded.config.block_size
            require_sampling_memory(loaded, job.n, len(prompt.encode()) + 1 + settings.tokens + block)
        except BD3LMError as err:
            raise RequestError(400, str(err)) from None
        ticket = runner.submit(Ticket(prompt, settings, job.n, job.stops, job.step_events, asyncio.get_running_loop()))
        reply = _Reply(job, loaded.name)
        if job.stream:
            return StreamingResponse(_stream(ticket, reply), media_type="text/event-stream")
        return await _whole(request, ticket, reply)

    routes = [
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={
        RequestError: _request_error, Busy: _busy, HTTPException: _http_error,
    })
    if api_key is not None:
        app.add_middleware(_KeyCheck, api_key=api_key)
    app.state.runner = runner
    return app


async def _body(request: Request) -> bytes:
    """The request's body, read no further than one byte past the limit (whatever Content-Length claims)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            break
    return bytes(body)


class _Reply:
    """The OpenAI answer being built for one request: ids, the samples' texts, and the JSON shapes."""

    def __init__(self, job: Job, model: str) -> None:
        self.job, self.model = job, model
        self.id = ("chatcmpl-" if job.chat else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.done: dict[int, Done] = {}

    def _envelope(self, chunk: bool) -> dict:
        kind = ("chat.completion" if self.job.chat else "text_completion") + (".chunk" if chunk and self.job.chat else "")
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def chunk(self, row: int, text: str, finish_reason: str | None = None, first: bool = False) -> dict:
        if self.job.chat:
            delta = {"role": "assistant", "content": text} if first else ({"content": text} if text else {})
            choice = {"index": row, "delta": delta, "finish_reason": finish_reason}
        else:
            choice = {"index": row, "text": text, "finish_reason": finish_reason, "logprobs": None}
        return {**self._envelope(chunk=True), "choices": [choice]}

    def step(self, info: StepInfo) -> dict:
        revealed = [{"position": p, "token": t, "text": s} for p, t, s in info.revealed]
        return {**self._envelope(chunk=True), "object": "bd3lm.step", "choices": [],
                "bd3lm": {"row": info.row, "block": info.block, "step": info.step, "revealed": revealed}}

    def usage(self) -> dict:
        finished = [d.finished for d in self.done.values()]
        completion = sum(len(f.token_ids) for f in finished)
        prompt = len(finished[0].prompt_ids) if finished else 0
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                "nfe": max((f.nfe for f in finished), default=0)}  # the batch's forwards, shared by its samples

    def ours(self) -> dict:
        rows = [self.done[row] for row in sorted(self.done)]
        seconds = max((d.finished.seconds for d in rows), default=0.0)
        tokens = sum(len(d.finished.token_ids) for d in rows)
        return {
            "seconds": seconds, "tokens_per_second": tokens / seconds if seconds > 0 else 0.0,
            "samples": [{"seed": d.finished.settings.seed, "stop_reason": d.stop_reason} for d in rows],
            "settings": {k: v for k, v in asdict(rows[0].finished.settings).items() if k != "seed"} if rows else {},
        }

    def whole(self) -> dict:
        choices = []
        for row in sorted(self.done):
            d = self.done[row]
            if self.job.chat:
                choices.append({"index": row, "message": {"role": "assistant", "content": d.text},
                                "finish_reason": d.finish_reason})
            else:
                choices.append({"index": row, "text": d.text, "finish_reason": d.finish_reason, "logprobs": None})
        return {**self._envelope(chunk=False), "choices": choices, "usage": self.usage(), "bd3lm": self.ours()}


async def _whole(request: Request, ticket: Ticket, reply: _Reply) -> Response:
    """Wait for every sample, checking that the client is still there (one that left cancels the request)."""
    checked = time.monotonic()
    while True:
        try:
            item = await asyncio.wait_for(ticket.events.get(), DISCONNECT_POLL_S)
        except asyncio.TimeoutError:
            item = None
        if time.monotonic() - checked >= DISCONNECT_POLL_S:
            checked = time.monotonic()
            if await request.is_disconnected():
                ticket.cancel.set()
                return Response(status_code=499)
        if item is None:
            continue
        if item is END:
            return JSONResponse(reply.whole())
        if isinstance(item, Failed):
            ticket.cancel.set()
            return _error(item.status, item.message)
        if isinstance(item, Done):
            reply.done[item.finished.row] = item


async def _stream(ticket: Ticket, reply: _Reply) -> AsyncIterator[str]:
    """Server-sent events: a chunk per committed block of each sample, then its finish, usage, and [DONE].

    A client that disconnects ends this generator early (Starlette cancels it), which cancels the request.
    """
    sent: dict[int, str] = {}
    try:
        while (item := await ticket.events.get()) is not END:
            if isinstance(item, Failed):
                yield _sse({"error": _error_object(item.status, item.message)})
                break
            if isinstance(item, StepInfo):
                yield _sse(reply.step(item))
                continue
            if isinstance(item, Piece):
                row, text, reason = item.row, item.text, None
            else:  # Done: what was held back (a possible stop string that was not one), and the finish
                row, reason = item.finished.row, item.finish_reason
                text = item.text[len(sent.get(row, "")) :]
                reply.done[row] = item
            chunk = reply.chunk(row, text, reason, first=row not in sent)
            sent[row] = sent.get(row, "") + text
            yield _sse(chunk)
        else:
            yield _sse({**reply._envelope(chunk=True), "choices": [], "usage": reply.usage(), "bd3lm": reply.ours()})
        yield "data: [DONE]\n\n"
    finally:
        ticket.cancel.set()  # a no-op after the end; stops the generation when the client has gone


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, allow_nan=False)}\n\n"


def _error_object(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    kind = {401: "authentication_error", 429: "rate_limit_error"}.get(status, "invalid_request_error")
    code = code or {401: "invalid_api_key", 404: "not_found", 429: "rate_limit_exceeded"}.get(status)
    return {"message": message, "type": kind, "param": param, "code": code}


def _error(status: int, message: str, param: str | None = None, headers: dict | None = None,
           code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": _error_object(status, message, param, code)}, status_code=status, headers=headers)


async def _request_error(request: Request, err: RequestError) -> Response:
    return _error(err.status, err.message, err.param, code=err.code)


async def _busy(request: Request, err: Busy) -> Response:
    return _error(429, f"{err}: one generation runs at a time and the line of waiting requests is full.",
                  headers={"Retry-After": str(err.retry_after)})


async def _http_error(request: Request, err: HTTPException) -> Response:
    return _error(err.status_code, f"{request.method} {request.url.path}: {err.detail}")


class _KeyCheck:
    """401 unless the request carries `Authorization: Bearer <api key>` (compared in constant time)."""

    def __init__(self, app, api_key: str) -> None:
        self.app, self.expected = app, f"Bearer {api_key}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                message = "a missing or wrong API key: send the server's key as 'Authorization: Bearer KEY'."
                await _error(401, message)(scope, receive, send)
                return
        await self.app(scope, receive, send)
