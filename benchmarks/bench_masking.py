"""Masking throughput (MB/s) against input size: linear masking keeps MB/s flat from 1 kB to 8 MB.

    python benchmarks/bench_masking.py [--sizes 1k,8k,64k,512k,1M,8M] [--repeat 3] [--shapes name,...]

Each shape is text built to make a backtracking pattern retry what it has read (a run of name characters,
of "://", of "user:" pairs, of PEM headers without an end, ...), plus ordinary report text. Every text is
masked by a Redactor holding 20 known secrets in all their encodings, as a run's redactor does. The
figure is the best of ``--repeat`` runs (one run from 1 MB up); the last column divides the time at the
largest size by the time at 1 MB scaled to that size: about 1 is linear, a quadratic pattern gives
the size ratio itself.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_reachability.redact import Redactor  # noqa: E402


def repeat(unit: str) -> Callable[[int], str]:
    return lambda size: (unit * (size // len(unit) + 1))[:size]


def padded(head: str, filler: str) -> Callable[[int], str]:
    return lambda size: (head + filler * size)[:size]


REPORT_TEXT = (
    "FAILED suites/test_10_api_health.py::test_health - AssertionError: 127.0.10.57:80: empty_reply: TCP "
    "connected, "
    "request sent, closed with zero bytes\ncurl -v --resolve 97v.test:80:127.0.10.57 http://97v.test/health\n"
    "GET https://user:pw@api.example.com/x?token=abc&page=2 Authorization: Bearer abcdefgh1234 Cookie: "
    "sid=1\n"
    '{"password": "x", "status": 503, "headers": {"content-type": "text/plain"}}\n'
)

# Shapes that made the earlier patterns retry: each is what one pattern reads before failing, repeated.
ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "secret name run": repeat("token"),
    "secret name, '='": repeat("token="),
    "secret name, ':'": repeat("token:"),
    "quoted names": repeat('"password":'),
    "name then spaces": padded("password", " "),
    "letters": repeat("a"),
    "scheme characters": repeat("a-"),
    "'://' run": repeat("a://"),
    "'user:' after '://'": repeat("a://b:"),
    "userinfo with '@'": repeat("a://b:c@"),
    "password with '/'": repeat("u:p/"),
    "'@' run": repeat("@"),
    "PEM begin, no end": repeat("-----BEGIN PRIVATE KEY-----"),
    "PEM blocks": repeat("-----BEGIN RSA PRIVATE KEY-----x-----END RSA PRIVATE KEY-----"),
    "header name": repeat("authorization"),
    "header then spaces": padded("authorization", " "),
    "bearer words": repeat("bearer "),
    "basic words": repeat("basic "),
    "JWT prefix": repeat("eyJ"),
    "JWT parts": repeat("eyJabcdefghij."),
    "GitHub prefix": repeat("ghp_"),
    "quotes and backslashes": repeat("\\\"'"),
    "query pairs": repeat("token=a&"),
    "report text": repeat(REPORT_TEXT),
}

SIZES = {"1k": 1 << 10, "8k": 8 << 10, "64k": 64 << 10, "512k": 512 << 10, "1M": 1 << 20, "8M": 8 << 20}


def run_redactor() -> Redactor:
    return Redactor([f"known-secret-{n:02d}-p@ss w/\"q'<&>" for n in range(20)])


def measure(redact: Redactor, text: str, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        redact(text)
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default=",".join(SIZES), help="comma-separated sizes from " + ", ".join(SIZES)
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shapes", default="", help="comma-separated shape names (default all)")
    args = parser.parse_args(argv)
    sizes = [name.strip() for name in args.sizes.split(",") if name.strip()]
    unknown = [name for name in sizes if name not in SIZES]
    if unknown:
        parser.error(f"unknown size {unknown[0]!r}; known: {', '.join(SIZES)}")
    shapes = [name.strip() for name in args.shapes.split(",") if name.strip()] or list(ADVERSARIAL)
    if any(name not in ADVERSARIAL for name in shapes):
        parser.error(f"unknown shape; known: {', '.join(ADVERSARIAL)}")
    redact = run_redactor()
    print(f"known secrets: 20 ({len(redact.known.forms)} forms); Python {sys.version.split()[0]}")
    print(f"{'shape':26}" + "".join(f"{name + ' MB/s':>12}" for name in sizes) + f"{'linearity':>11}")
    ratios = []
    worst_per_mb = 0.0
    for shape in shapes:
        seconds = {}
        for name in sizes:
            size = SIZES[name]
            seconds[name] = measure(
                redact, ADVERSARIAL[shape](size), args.repeat if size < SIZES["1M"] else 1
            )
        cells = "".join(f"{SIZES[name] / 1e6 / max(seconds[name], 1e-9):>12.1f}" for name in sizes)
        largest = max(sizes, key=SIZES.get)
        linearity = ""
        if "1M" in seconds and largest != "1M":
            ratio = seconds[largest] / (seconds["1M"] * SIZES[largest] / SIZES["1M"])
            ratios.append(ratio)
            linearity = f"{ratio:.2f}"
        if "1M" in seconds:
            worst_per_mb = max(worst_per_mb, seconds["1M"])
        print(f"{shape:26}{cells}{linearity:>11}")
    if ratios:
        print(
            "linearity (time at the largest size / time at 1 MB scaled): median "
            f"{statistics.median(ratios):.2f}, "
            f"max {max(ratios):.2f}"
        )
    if worst_per_mb:
        print(f"slowest shape at 1 MB: {worst_per_mb:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
