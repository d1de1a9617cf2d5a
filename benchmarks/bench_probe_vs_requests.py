"""Benchmark (c): 200 sequential health probes on fresh connections, layered probe vs ``requests.get``.

A threaded HTTP server on loopback answers ``/health``. One round makes ``--count`` sequential
``probe_address`` calls (each a new TCP connection, phases timed, classified), then the same number of
``requests.get`` calls each with a new ``Session`` (a new connection too). Goal: probe ÷ requests <= 1.5.
Prints each round and the median of ``--runs`` (default 5).

    python benchmarks/bench_probe_vs_requests.py [--count 200] [--runs 5]
"""

from __future__ import annotations

import argparse
import http.server
import statistics
import sys
import threading
import time

import requests

from pytest_reachability.config import parse_target
from pytest_reachability.probes.http import probe_address

GOAL = 1.5


class Health(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def time_probes(url: str, count: int) -> float:
    target = parse_target(url)
    started = time.perf_counter()
    for _ in range(count):
        result = probe_address(target, "127.0.0.1", timeout=5, path="/health")
        if not result.ok:
            raise SystemExit(f"probe failed: {result.summary}")
    return time.perf_counter() - started


def time_requests(url: str, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        with requests.Session() as session:
            response = session.get(url + "/health", timeout=5)
            response.raise_for_status()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    # The Host header names the target, the socket goes to 127.0.0.1: for requests the URL uses the address.
    probe_url = f"http://97v.test:{server.server_address[1]}"
    requests_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        time_probes(probe_url, 10)  # warm-up both paths
        time_requests(requests_url, 10)
        ratios, probe_times, requests_times = [], [], []
        for run in range(1, args.runs + 1):
            probe_s = time_probes(probe_url, args.count)
            requests_s = time_requests(requests_url, args.count)
            ratios.append(probe_s / requests_s)
            probe_times.append(probe_s)
            requests_times.append(requests_s)
            print(f"run {run}: probe {probe_s * 1000 / args.count:.2f} ms/req ({probe_s:.2f} s), "
                  f"requests {requests_s * 1000 / args.count:.2f} ms/req ({requests_s:.2f} s), ratio {probe_s / requests_s:.3f}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    ratio = statistics.median(ratios)
    print(f"median of {args.runs} x {args.count}: probe {statistics.median(probe_times) * 1000 / args.count:.2f} ms/req, "
          f"requests {statistics.median(requests_times) * 1000 / args.count:.2f} ms/req, "
          f"probe/requests {ratio:.3f} (goal <= {GOAL}) {'MET' if ratio <= GOAL else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
