"""``python -m pytest_reachability``: the tool's ``curl`` for on-call use.

    python -m pytest_reachability probe api.example.com --resolver system --resolver 1.1.1.1
    python -m pytest_reachability probe https://97v.test --address 127.0.10.57 --json
    python -m pytest_reachability merge eu.json us.json --html merged.html --incident-report merged.md
    python -m pytest_reachability merge --history "$DATABASE_URL" --run-group reachability-fleet-29012345

Each subcommand is a function ``run_<name>(args) -> int`` registered in ``_build_parser``; a new
subcommand is one more ``add_parser`` call and one more function. Exit codes: 0 every address
answered as expected (``merge``: every target passed), 1 otherwise, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Sequence

from . import jsontext, probes
from .config import Settings, resolve_settings
from .probes.dns import MAX_ADDRESSES_PER_FAMILY
from .probes.http import ProbeResult, tls_context
from .redact import Redactor, collect_secrets, mask_usage_error

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_PHASES = ("dns", "connect", "tls", "ttfb", "transfer", "total")


class UsageProblem(Exception):
    """Bad input: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + message; keep it to one line
        raise UsageProblem(f"{self.prog}: {message}")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m pytest_reachability", description="post-deploy reachability probes")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    probe = commands.add_parser(
        "probe",
        help="probe a target on every address like the api-health gate does",
        description="DNS -> TCP -> TLS -> HTTP on every resolved (or given) address, one line per address.",
    )
    # The plugin's option names work here too (--health-path, --probe-timeout, --resolver, --ca-bundle), with
    # the plugin's own validation, so a command line moves between pytest and probe unchanged.
    probe.add_argument("target", metavar="TARGET", help="host, host:port or http(s):// URL")
    probe.add_argument(
        "--address",
        action="append",
        default=[],
        metavar="ADDR",
        help="probe this address instead of resolving, like curl --resolve (repeatable)",
    )
    probe.add_argument(
        "--resolver",
        action="append",
        default=[],
        metavar="R",
        help="DNS resolver ADDR[:PORT] or 'system' (repeatable; default system)",
    )
    probe.add_argument(
        "--timeout",
        "--probe-timeout",
        dest="timeout",
        default="5",
        metavar="S",
        help="timeout of every phase budget in seconds (default 5)",
    )
    probe.add_argument(
        "--ca-bundle",
        metavar="PATH",
        help="CA bundle to trust (default REQUESTS_CA_BUNDLE, SSL_CERT_FILE, system)",
    )
    probe.add_argument(
        "--path",
        "--health-path",
        dest="path",
        default="/health",
        metavar="P",
        help="path to GET (default /health)",
    )
    probe.add_argument(
        "--mask",
        action="append",
        default=[],
        metavar="VALUE",
        help="a secret to mask in the output (repeatable)",
    )
    probe.add_argument(
        "--mask-env",
        action="append",
        default=[],
        metavar="NAME",
        help="an environment variable whose value is masked (repeatable)",
    )
    probe.add_argument("--json", action="store_true", help="print a JSON list of per-address results")
    probe.set_defaults(run=run_probe)

    merge = commands.add_parser(
        "merge",
        help="merge --results-json files of several jobs (or fleet shards) into one report",
        description="One report from the --results-json files of several jobs (regions, clusters, --shard "
        "I/N runs of a fleet): the fleet summary, an overview and a section table per target. Without an "
        "output option the markdown goes to stdout.",
    )
    merge.add_argument(
        "inputs", nargs="*", metavar="RESULTS.json", help="--results-json files (or earlier merged files)"
    )
    merge.add_argument(
        "--history",
        metavar="URL",
        help="read the targets from this history database (with --run-group) instead of files",
    )
    merge.add_argument(
        "--run-group",
        metavar="NAME",
        help="the run group (REACHABILITY_RUN_GROUP) whose rows --history reads: every shard of one Job",
    )
    merge.add_argument("--html", metavar="OUT.html", help="write a self-contained HTML report")
    merge.add_argument("--incident-report", metavar="OUT.md", help="write the markdown report")
    merge.add_argument(
        "--results-json", metavar="OUT.json", help="write the merged JSON (accepted again by merge)"
    )
    merge.add_argument("--title", default="Reachability report (merged)", help="report title")
    merge.set_defaults(run=run_merge)
    return parser


def run_merge(args: argparse.Namespace) -> int:
    from . import merge

    if bool(args.history) != bool(args.run_group):
        raise UsageProblem("merge: --history and --run-group go together")
    if bool(args.history) == bool(args.inputs):
        raise UsageProblem("merge: name the results files, or --history URL --run-group NAME (not both)")
    try:
        if args.history:
            shards = merge.shards_from_history(args.history, args.run_group)
        else:
            shards = merge.load_shards(args.inputs)
    except merge.MergeInputError as error:
        raise UsageProblem(f"merge: {error}") from None
    outputs = [(args.html, merge.render_html), (args.incident_report, merge.render_markdown)]
    try:
        for path, render in outputs:
            if path:
                merge.write_atomically(path, render(shards, title=args.title))
        if args.results_json:
            merge.write_atomically(
                args.results_json, jsontext.dumps(merge.merged_document(shards), indent=2) + "\n"
            )
    except OSError as error:
        raise UsageProblem(
            f"merge: cannot write: {error.strerror or error}: {error.filename or ''}".rstrip(": ")
        ) from None
    if not (args.html or args.incident_report or args.results_json):
        print(merge.render_markdown(shards, title=args.title), end="")
    else:
        for shard in shards:
            status = "FAIL" if shard.failed else shard.status
            score = "n/a" if shard.health_score is None else f"{shard.health_score}%"
            print(f"{status} {shard.label} health {score} ({shard.source})")
    return EXIT_FAILED if merge.merge_failed(shards) else EXIT_OK


def run_probe(args: argparse.Namespace) -> int:
    settings = _probe_settings(args)
    target = settings.target
    assert target is not None
    for address in args.address:
        try:
            ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            raise UsageProblem(f"--address {address!r} is not an IP address") from None
    if target.scheme == "https":
        try:
            tls_context(settings.ca_bundle)
        except ValueError as error:
            raise UsageProblem(str(error)) from None
    report = None
    if args.address:
        results = probes.run_probe("http", target, settings, addresses=args.address)
    else:
        report = probes.run_probe("dns", target, settings)
        results = probes.run_probe("http", target, settings, dns_report=report)

    # Headers (Set-Cookie), redirect URLs (?token=), body excerpts and failure details can carry secrets:
    # masked as the plugin masks its outputs, with the same secrets (environment, kubeconfig, --mask).
    redact = Redactor(collect_secrets(settings))
    if args.json:
        print(jsontext.dumps([redact(_json_row(result)) for result in results], indent=2))
    else:
        if report is not None and not report.literal:
            print(redact(_dns_line(report)))
        if report is not None and report.not_probed:
            print(redact(_not_probed_line(report)))
        for result in results:
            print(redact(format_result(result)))
        failed = [result for result in results if not result.ok]
        for result in failed:
            print(redact(f"  reproduce: {result.curl}"))
    return EXIT_OK if all(result.ok for result in results) else EXIT_FAILED


def _probe_settings(args: argparse.Namespace) -> Settings:
    """The probe's options read by the plugin's own rules (config.py): one parser for targets, resolvers,
    timeouts, paths, CA bundles and masks."""
    path = args.path if args.path.startswith("/") else "/" + args.path
    cli = {
        "target": args.target,
        "resolvers": args.resolver or None,
        "probe_timeout": args.timeout,
        "health_path": path,
        "ca_bundle": args.ca_bundle,
        "mask": args.mask,
        "mask_env": args.mask_env,
    }
    try:
        return resolve_settings(cli, os.environ, rootpath=None, config_option=None)
    except ValueError as error:
        message = str(error).replace("--probe-timeout:", "--timeout:").replace("--health-path:", "--path:")
        raise UsageProblem(message) from None


def _not_probed_line(report) -> str:
    shown = ", ".join(report.not_probed[:8]) + (", ..." if len(report.not_probed) > 8 else "")
    return (
        f"dns {report.name}: {len(report.not_probed)} more addresses not probed "
        f"(at most {MAX_ADDRESSES_PER_FAMILY} per family): {shown}"
    )


def format_result(result: ProbeResult) -> str:
    """One line: address, scheme, phases, status and (if failed) the class with its detail."""
    where = result.address or "(no address)"
    if ":" in where:
        where = f"[{where}]"
    shown = [
        name for name in _PHASES if name in result.phases and not (name == "tls" and result.scheme == "http")
    ]
    phases = " ".join(f"{name} {result.phases[name]:.1f}ms" for name in shown)
    status = str(result.status) if result.status is not None else "---"
    if result.ok:
        verdict = f"ok {result.reason}".rstrip()
    else:
        assert result.failure is not None
        curl = f" [curl exit {result.failure.curl_exit}]" if result.failure.curl_exit is not None else ""
        verdict = f"{result.failure.value}: {result.detail or result.failure.wording}{curl}"
    return f"{where}:{result.port} {result.scheme} {phases} status {status} {verdict}"


def _dns_line(report) -> str:
    parts = []
    for answer in report.answers:
        found = ",".join(answer.addresses) or (answer.failure.value if answer.failure else answer.rcode)
        parts.append(f"{answer.resolver}={found} ({answer.ms:.1f}ms)")
    agreement = "agree" if report.agree else "DISAGREE"
    return f"dns {report.name}: {' '.join(parts)} -> {agreement}"


def _json_row(result: ProbeResult) -> dict:
    row = result.to_evidence()
    row["ok"] = result.ok
    return row


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(arguments)
        return args.run(args)
    except UsageProblem as problem:
        # The message may quote what was typed (a DSN, a token in a URL): masked like every output.
        print(mask_usage_error(str(problem), arguments), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
