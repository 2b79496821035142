"""Numbers as people read them, the same in the CLI and the app."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """"42 s", "3 min 05 s", "1 h 02 min"."""
    seconds = int(round(max(0.0, seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"


def size(n: float) -> str:
    """"512 B", "1.5 kB", "680.0 MB", "2.1 GB" (powers of 1000, as disks are sold)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def counted(n: int, noun: str) -> str:
    """"1 token", "2 tokens": a count with its noun."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def download(p) -> str:
    """A download's progress in one line: "model.safetensors: 1.2 MB of 3.4 MB at 2.0 MB/s, 1 s left".

    `p` is a `DownloadProgress`; the CLI's progress line and the app's dialog and status bar all show this.
    """
    done = size(p.downloaded) + (f" of {size(p.total)}" if p.total else "")
    left = f", {duration(p.eta_seconds)} left" if p.eta_seconds is not None else ""
    return f"{p.filename}: {done} at {size(p.bytes_per_second)}/s{left}"
