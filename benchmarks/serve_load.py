"""Load on `bd3lm serve`, over loopback only: many clients at once, some of them leaving midway.

    python benchmarks/serve_load.py                       # 64 clients, 16 of them disconnect, shipped model
    python benchmarks/serve_load.py --clients 8 --leavers 2 --tokens 8   # a quick check

Starts one server (127.0.0.1, a free port), lets every client send one
completion request at the same moment (streamed for those that leave after
their first chunk, whole for the others), and reports: how each request
ended (200, 429 or disconnected), that none hung past the bound, the
server's memory before and after (it must stay within 10%), requests per
minute and the latency percentiles of the answered ones. Every request has
a time bound, and so has the run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

BOUND_S = 600  # no request may take longer than this


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str, str]:
    command = [sys.executable, "-m", "bd3lm_core.cli", "serve", "--port", "0", "--queue", str(args.queue),
               "--tokens", str(args.tokens)] + (["--model", args.model] if args.model else [])
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    while True:
        line = server.stderr.readline()
        if not line:
            raise SystemExit("the server ended before listening")
        if line.startswith("serving "):
            return server, line.split(" at ")[1].split()[0], line.split()[1]


def client(url: str, model: str, index: int, leaves: bool, start: threading.Event, results: list) -> None:
    body = {"model": model, "prompt": "Once upon a time", "seed": index, "stream": leaves}
    start.wait()
    began = time.monotonic()
    try:
        if leaves:
            with httpx.stream("POST", f"{url}/completions", json=body, timeout=BOUND_S) as response:
                lines = response.iter_lines()
                status = response.status_code
                if status == 200:
                    next(lines)  # the first chunk, then the client goes away
                    status = "left"
        else:
            status = httpx.post(f"{url}/completions", json=body, timeout=BOUND_S).status_code
    except httpx.TimeoutException:
        status = "hung"
    results[index] = (status, time.monotonic() - began)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--leavers", type=int, default=16, help="clients that disconnect after their first chunk")
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per request")
    parser.add_argument("--queue", type=int, default=32, help="the server's --queue")
    parser.add_argument("--model", help="model folder or repo id (default: the shipped model)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    server, url, model = start_server(args)
    try:
        httpx.post(f"{url}/completions", json={"model": model, "prompt": "warm up", "max_tokens": 4}, timeout=60)
        before = rss_bytes(server.pid)
        results: list = [None] * args.clients
        start = threading.Event()
        threads = [threading.Thread(target=client, args=(url, model, i, i < args.leavers, start, results))
                   for i in range(args.clients)]
        for t in threads:
            t.start()
        began = time.monotonic()
        start.set()
        for t in threads:
            t.join(BOUND_S)
        wall = time.monotonic() - began
        time.sleep(1.0)  # let the server finish cancelling
        after = rss_bytes(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    counts: dict[str, int] = {}
    for status, _ in results:
        counts[str(status)] = counts.get(str(status), 0) + 1
    answered = [s for status, s in results if status == 200]
    report = {
        "clients": args.clients, "leavers": args.leavers, "tokens": args.tokens, "queue": args.queue,
        "outcomes": counts, "seconds": wall, "requests_per_minute": 60 * len(answered) / wall,
        "latency_p50_s": percentile(answered, 0.5), "latency_p90_s": percentile(answered, 0.9),
        "latency_p99_s": percentile(answered, 0.99), "latency_mean_s": statistics.fmean(answered) if answered else None,
        "rss_before_mb": before / 2**20, "rss_after_mb": after / 2**20, "rss_change": after / before - 1,
    }
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:22} {value:.3f}" if isinstance(value, float) else f"{key:22} {value}")
    unanswered = sum(v for k, v in counts.items() if k not in ("200", "429", "left"))
    ok = unanswered == 0 and abs(report["rss_change"]) <= 0.10
    print("PASS" if ok else "FAIL: a request neither answered nor refused, or memory moved by more than 10%",
          file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
