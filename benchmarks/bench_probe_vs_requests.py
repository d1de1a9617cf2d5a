"""Benchmark (c): 200 sequential health probes on fresh connections, layered probe vs ``requests.get``.

A threaded HTTP server on loopback answers ``/health``. One round makes ``--count`` sequential
``probe_address`` calls (each a new TCP connection, phases timed, classified), then the same number of
``requests.get`` calls each with a new ``Session`` (a new connection too). Goal: probe ÷ requests <= 1.5.
Prints each round and the median of ``--runs`` (default 5).

    python benchmarks/bench_probe_vs_requests.py [--count 200] [--runs 5] [--https]

With ``--https`` the server speaks TLS with a throwaway CA (trustme) that both clients trust, so each
request also pays a full handshake and certificate verification.
"""

from __future__ import annotations

import argparse
import http.server
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

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


def time_probes(url: str, count: int, ca_bundle: str | None) -> float:
    target = parse_target(url)
    started = time.perf_counter()
    for _ in range(count):
        result = probe_address(target, "127.0.0.1", timeout=5, path="/health", ca_bundle=ca_bundle)
        if not result.ok:
            raise SystemExit(f"probe failed: {result.summary}")
    return time.perf_counter() - started


def time_requests(url: str, count: int, ca_bundle: str | None) -> float:
    started = time.perf_counter()
    for _ in range(count):
        with requests.Session() as session:
            response = session.get(url + "/health", timeout=5, verify=ca_bundle or True)
            response.raise_for_status()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--https", action="store_true", help="TLS on both sides (throwaway CA)")
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    server.daemon_threads = True
    scheme, ca_bundle, workdir = "http", None, None
    if args.https:
        import trustme

        workdir = tempfile.TemporaryDirectory(prefix="rch-bench-")
        ca = trustme.CA()
        ca_bundle = str(Path(workdir.name) / "ca.pem")
        ca.cert_pem.write_to_path(ca_bundle)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # The probe names the host (SNI 97v.test), requests the address; one certificate serves both.
        ca.issue_cert("97v.test", "127.0.0.1").configure_cert(context)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    # The Host header names the target, the socket goes to 127.0.0.1: for requests the URL uses the address.
    probe_url = f"{scheme}://97v.test:{server.server_address[1]}"
    requests_url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    try:
        time_probes(probe_url, 10, ca_bundle)  # warm-up both paths
        time_requests(requests_url, 10, ca_bundle)
        ratios, probe_times, requests_times = [], [], []
        for run in range(1, args.runs + 1):
            probe_s = time_probes(probe_url, args.count, ca_bundle)
            requests_s = time_requests(requests_url, args.count, ca_bundle)
            ratios.append(probe_s / requests_s)
            probe_times.append(probe_s)
            requests_times.append(requests_s)
            print(
                f"run {run}: probe {probe_s * 1000 / args.count:.2f} ms/req ({probe_s:.2f} s), "
                f"requests {requests_s * 1000 / args.count:.2f} ms/req ({requests_s:.2f} s), ratio "
                f"{probe_s / requests_s:.3f}"
            )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        if workdir is not None:
            workdir.cleanup()
    ratio = statistics.median(ratios)
    print(
        f"median of {args.runs} x {args.count} ({scheme}): probe "
        f"{statistics.median(probe_times) * 1000 / args.count:.2f} ms/req, "
        f"requests {statistics.median(requests_times) * 1000 / args.count:.2f} ms/req, "
        f"probe/requests {ratio:.3f} (goal <= {GOAL}) {'MET' if ratio <= GOAL else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
