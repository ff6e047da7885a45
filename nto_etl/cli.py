"""The `nto-etl` command: ping MCE, run the local MCE, run the demo."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from nto_etl.mce.errors import (
    MceAuthenticationError,
    MceConfigurationError,
    MceError,
    MceUnavailableError,
    MceUnreachableError,
)

# How `nto-etl ping` reports each kind of failure (first match wins; exit codes are documented in the README).
PING_FAILURES: dict[type[MceError], tuple[str, int]] = {
    MceConfigurationError: ("not configured (see README 'Pointing at a real tenant')", 2),
    MceAuthenticationError: ("bad credentials", 3),
    MceUnreachableError: ("unreachable", 4),
    MceUnavailableError: ("MCE is not available", 5),
}


def _day(text: str) -> str:
    """An argument that must be a day, YYYY-MM-DD."""
    from datetime import date

    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day YYYY-MM-DD ({exc})") from None


def _at_least_one(text: str) -> int:
    """An argument that must be a whole number of at least 1."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return number


def _ping(args: argparse.Namespace) -> int:
    from nto_etl.mce.client import MceClient
    from nto_etl.mce.settings import MceSettings

    try:
        if args.local_info:
            from nto_etl.connections import local_settings

            settings, _ = local_settings(json.loads(Path(args.local_info).read_text()))
        else:
            settings = MceSettings.from_env()
        client = MceClient(settings)
        status = client.ping()
    except MceError as exc:
        label, code = next((v for k, v in PING_FAILURES.items() if isinstance(exc, k)), ("MCE error", 6))
        print(f"{label}: {exc}", file=sys.stderr)
        return code
    print(f"MCE system status: {status.status} ({client.soap.endpoint})")
    return 0


def _mce_local(args: argparse.Namespace) -> int:
    from nto_etl.mce_local import LocalMce

    state_dir = Path(args.state_dir) if args.state_dir else None
    mce = LocalMce(state_dir, host=args.host, http_port=args.http_port, sftp_port=args.sftp_port)
    info = mce.start()
    if args.info_file:
        path = Path(args.info_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(info.to_json())
        path.chmod(0o600)
    print(info.to_json(), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    mce.stop()
    return 0


def _mce_local_send(args: argparse.Namespace) -> int:
    """A simulated send: through SOAP to a running local MCE, or straight into a stopped one's state."""
    if args.state_dir:
        from datetime import datetime

        from nto_etl.mce_local import LocalMce

        mce = LocalMce(Path(args.state_dir))
        try:
            at = datetime.fromisoformat(args.at) if args.at else None
            from nto_etl.mce_local.clock import mce_now

            send_id, recipients = mce.send(
                args.de, sent_at=at or mce_now(), seed=args.seed, subject=args.subject, name=args.key
            )
        finally:
            mce.stop()
    else:
        from nto_etl.connections import local_settings
        from nto_etl.mce import activities
        from nto_etl.mce.client import MceClient

        settings, _ = local_settings(json.loads(Path(args.local_info).read_text()))
        result = activities.start_send(MceClient(settings), args.key, args.de, args.subject)
        send_id, recipients = int(result.task_id or 0), int(result.message.split()[0])
    print(f"send {send_id}: {recipients} recipients")
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.walkthrough:
        from nto_etl.walkthrough import run_walkthrough

        return run_walkthrough(Path(args.state_dir), Path(args.data_dir))
    from nto_etl.demo import run_demo

    return run_demo(Path(args.state_dir), Path(args.data_dir))


def _generate(args: argparse.Namespace) -> int:
    from datetime import date

    from nto_etl.generate import generate

    files = generate(
        args.rows,
        args.seed,
        Path(args.out),
        date.fromisoformat(args.start_date),
        args.days,
        progress=args.rows >= 100_000,
    )
    print(f"wrote {len(files)} files under {args.out}")
    return 0


def _backfill(args: argparse.Namespace) -> int:
    import dagster as dg

    from nto_etl import runner
    from nto_etl.definitions import defs
    from nto_etl.defs.partitions import daily

    if args.to_date < args.from_date:
        args.parser.error(f"--to {args.to_date} is before --from {args.from_date}")
    first, last = daily.get_first_partition_key(), daily.get_last_partition_key()
    if args.from_date < str(first):
        args.parser.error(
            f"--from {args.from_date} is before the first daily partition, {first} (NTO_START_DATE)"
        )
    if args.to_date > str(last):
        args.parser.error(f"--to {args.to_date} is after the latest daily partition, {last} (today in UTC)")
    definitions = defs()
    selection = runner.partitioned_selection(definitions)
    if args.select:
        graph = definitions.resolve_asset_graph()
        selection = selection & dg.AssetSelection.from_coercible(args.select.split(","))
        try:
            chosen = selection.resolve(graph)
        except dg.DagsterInvalidSubsetError:
            chosen = set()
        if not chosen:
            groups = sorted(
                {graph.get(k).group_name for k in runner.partitioned_selection(definitions).resolve(graph)}
            )
            args.parser.error(
                f"--select {args.select} names no daily asset; groups: {', '.join('group:' + g for g in groups)} "
                "(or asset keys such as crm/contacts_export)"
            )
    days = runner.days_between(args.from_date, args.to_date)
    ok = runner.materialize(definitions, selection, days)
    if ok and not args.skip_analytics:
        ok = runner.materialize(
            definitions, dg.AssetSelection.all() - runner.partitioned_selection(definitions), [None]
        )
    return 0 if ok else 1


def _reliability(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("NTO_RETRY_DELAY", "1")  # before the definitions are imported
    from nto_etl.reliability_report import write_report

    repo = Path(args.data_dir).resolve().parent
    ok = write_report(
        Path(args.out),
        Path(args.data_dir) / "sample" / "crm",
        repo / "nto_etl_tests" / "corpus",
        soak_rows=args.soak_rows,
        soak_days=args.soak_days,
    )
    print(f"wrote {args.out}: {'all checks held' if ok else 'SOME CHECKS FAILED'}")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nto-etl", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    ping = sub.add_parser("ping", help="GetSystemStatus against the configured MCE (NTO_MCE_* variables)")
    ping.add_argument(
        "--local-info", help="a JSON file as printed by `nto-etl mce-local` instead of the environment"
    )
    ping.set_defaults(func=_ping)

    local = sub.add_parser("mce-local", help="run the local MCE (SOAP/HTTP + OAuth2 + SFTP) on loopback")
    local.add_argument(
        "--state-dir", help="where data extensions, files and credentials persist (default: temporary)"
    )
    local.add_argument("--host", default="127.0.0.1", help="a loopback address")
    local.add_argument("--http-port", type=int, default=0, help="0 picks a free port")
    local.add_argument("--sftp-port", type=int, default=0, help="0 picks a free port")
    local.add_argument(
        "--info-file",
        help="also write the connection JSON here (what the pipeline reads by default: "
        ".state/mce-local.json)",
    )
    local.set_defaults(func=_mce_local)
    local_sub = local.add_subparsers(dest="local_command")
    send = local_sub.add_parser("send", help="simulate an email send to a sendable data extension")
    target = send.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--local-info", help="a running local MCE's connection file: the send goes through SOAP, now"
    )
    target.add_argument(
        "--state-dir", help="a stopped local MCE's state directory: the send is written directly"
    )
    send.add_argument("--de", required=True, help="the sendable data extension's external key")
    send.add_argument("--key", default="nto_cli_send", help="the send definition's external key / name")
    send.add_argument("--subject", default="Northern Trail Outfitters")
    send.add_argument(
        "--at", help="with --state-dir: the send time, MCE time (YYYY-MM-DDTHH:MM), default now"
    )
    send.add_argument("--seed", type=int, default=1, help="with --state-dir: the behaviour model's seed")
    send.set_defaults(func=_mce_local_send)

    demo = sub.add_parser("demo", help="run the demo end to end against a local MCE")
    demo.add_argument("--state-dir", default=".state/demo", help="local MCE state and outputs")
    demo.add_argument("--data-dir", default="data", help="the sample CRM data")
    demo.add_argument(
        "--walkthrough", action="store_true", help="the client walk-through instead of the pipeline"
    )
    demo.set_defaults(func=_demo)
    fill = sub.add_parser(
        "backfill",
        help="materialize the daily assets for a range of days, in-process, then "
        "the analytics (configured by the NTO_* variables; see README)",
    )
    fill.add_argument("--from", dest="from_date", type=_day, required=True, help="first day, YYYY-MM-DD")
    fill.add_argument("--to", dest="to_date", type=_day, required=True, help="last day, YYYY-MM-DD")
    fill.add_argument("--select", help="comma-separated asset keys or groups, e.g. 'group:crm,group:staging'")
    fill.add_argument("--skip-analytics", action="store_true", help="only the daily partitions")
    fill.set_defaults(func=_backfill, parser=fill)

    report = sub.add_parser(
        "reliability-report",
        help="run the fault drills, a fault soak and the bad-input corpus; write the report",
    )
    report.add_argument("--out", default="docs/RELIABILITY.md")
    report.add_argument("--data-dir", default="data")
    report.add_argument("--soak-rows", type=int, default=3000)
    report.add_argument("--soak-days", type=int, default=8)
    report.set_defaults(func=_reliability)

    gen = sub.add_parser("generate", help="write a seeded synthetic CRM (daily exports + web analytics)")
    gen.add_argument("--rows", type=_at_least_one, required=True, help="contacts in the CRM by the last day")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--out", required=True, help="output folder")
    gen.add_argument("--start-date", type=_day, default="2026-11-01", help="first day (YYYY-MM-DD)")
    gen.add_argument("--days", type=_at_least_one, default=3, help="number of daily files per dataset")
    gen.set_defaults(func=_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
