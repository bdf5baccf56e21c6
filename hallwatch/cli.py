"""The ``hallwatch`` command line.

hallwatch demo [--for SECONDS]          the whole chain on embedded defaults
hallwatch config validate FILE...       check hall configs, pointing at the YAML line
hallwatch edge --config HALL.yaml       run a hall's edge worker
hallwatch aggregator --hall HALL.yaml   run the aggregator (API, ingest, rules)
hallwatch replay VIDEO --config HALL.yaml --camera CAM   facts a video would produce
hallwatch export DATASET --hall-id ID -o FILE   export a dataset (audited) for auditors
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from hallwatch import cli_users, deploy_mqtt

logger = logging.getLogger(__name__)


def _setup_logging(verbose: int, *, quiet: bool = False) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr
    )


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _cmd_config_validate(args: argparse.Namespace) -> int:
    from hallwatch.config import validate_config_file

    return max(validate_config_file(path) for path in args.files)


def _cmd_edge(args: argparse.Namespace) -> int:
    from edge.worker import EdgeWorker
    from hallwatch.config import ConfigError, load_hall_config

    try:
        config = load_hall_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    worker = EdgeWorker(config)
    worker.start()
    _wait_for_signal()
    worker.stop()
    return 0


def _cmd_aggregator(args: argparse.Namespace) -> int:
    from aggregator.runtime import tune_gc
    from aggregator.service import AggregatorService, NoUsersError
    from aggregator.settings import settings_for

    port = {"http_port": args.port} if args.port is not None else {}
    settings = settings_for(args.hall, **port)
    service = AggregatorService.from_settings(settings)
    try:
        service.ensure_users()
    except NoUsersError as exc:
        print(f"hallwatch aggregator: {exc}", file=sys.stderr)
        return 2
    service.ingestor.warm_up()  # before the freeze: what it builds lives as long as the process
    tune_gc(settings.gc_young_threshold)  # once the process is built: see runtime.py
    service.start()
    print(f"HallWatch aggregator: {service.url}", flush=True)
    _wait_for_signal()
    service.stop()
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from edge.replay import replay_to_stdout

    return replay_to_stdout(Path(args.video), Path(args.config), args.camera)


def _cmd_export(args: argparse.Namespace) -> int:
    import getpass
    from datetime import UTC, datetime, tzinfo

    from tqdm import tqdm

    from aggregator.export import (
        ExportFormat,
        ExportQuery,
        ExportRecord,
        TimeFormat,
        UnknownDatasetError,
        open_audit_source,
        open_source,
        record_export,
        write_export,
    )
    from aggregator.service import build_series_store, load_halls
    from aggregator.settings import settings_for
    from aggregator.store.state import StateStore

    settings = settings_for(args.hall)
    output: Path = args.output
    fmt = ExportFormat(args.format or output.suffix.lstrip(".") or "csv")
    time_format = TimeFormat(args.time_format)
    state = StateStore(settings.database_url)
    state.migrate()
    series = build_series_store(settings) if args.dataset.startswith("series/") else None
    try:
        if args.dataset == "audit":
            hall_id = None
            tz: tzinfo = UTC
            source = open_audit_source(state, time_format=time_format)
            filters: dict[str, str | None] = {"time_format": time_format.value}
        else:
            halls = load_halls(settings.halls)
            if args.hall_id not in halls:
                print(
                    f"unknown hall {args.hall_id!r}; configured: {sorted(halls)}", file=sys.stderr
                )
                return 2
            config = halls[args.hall_id]
            hall_id, tz = config.hall.id, config.tzinfo

            def when(text: str | None) -> datetime | None:
                if text is None:
                    return None
                value = datetime.fromisoformat(text)
                return value.replace(tzinfo=tz) if value.tzinfo is None else value

            query = ExportQuery(
                hall=config, since=when(args.since), until=when(args.until), window=args.window,
                department=args.department, time_format=time_format,
            )  # fmt: skip
            source = open_source(args.dataset, query, state=state, series=series)
            filters = query.filters()
        with tqdm(unit=" rows", file=sys.stderr, disable=args.no_progress) as bar:
            rows = write_export(source, fmt, output, on_rows=bar.update)
        record = ExportRecord(
            actor=getpass.getuser(), via="cli", hall=hall_id, dataset=args.dataset,
            format=fmt.value, rows=rows, filters=filters,
        )  # fmt: skip
        record_export(state, record)
    except UnknownDatasetError as exc:
        print(exc, file=sys.stderr)
        return 2
    finally:
        if series is not None:
            series.close()
        state.dispose()
    print(f"{rows} rows of {args.dataset} → {output}", file=sys.stderr)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from hallwatch.demo.run import run_demo

    return run_demo(duration_s=args.seconds, http_port=args.port, workdir=args.workdir)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render ``docs/cli.md``)."""
    parser = argparse.ArgumentParser(
        prog="hallwatch", description="HallWatch: electronic supervision of service halls."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="More logging.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="Run camera → edge → broker → aggregator → page.")
    demo.add_argument(
        "--for",
        dest="seconds",
        type=float,
        default=None,
        help="Run headless this many seconds, then print the alerts as one JSON line.",
    )
    demo.add_argument("--port", type=int, default=8000, help="Web page port (0: any free).")
    demo.add_argument(
        "--workdir", type=Path, default=Path("var/demo"), help="Where the demo keeps its files."
    )
    demo.set_defaults(func=_cmd_demo)

    config = sub.add_parser("config", help="Hall configuration tools.")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    validate = config_sub.add_parser("validate", help="Validate hall config files.")
    validate.add_argument("files", nargs="+", type=Path, help="Hall YAML files.")
    validate.set_defaults(func=_cmd_config_validate)

    edge = sub.add_parser("edge", help="Run a hall's edge worker.")
    edge.add_argument("--config", required=True, type=Path, help="Hall YAML file.")
    edge.set_defaults(func=_cmd_edge)

    agg = sub.add_parser("aggregator", help="Run the aggregator.")
    agg.add_argument("--hall", action="append", help="Hall YAML file (repeatable).")
    agg.add_argument("--port", type=int, default=None, help="HTTP port.")
    agg.set_defaults(func=_cmd_aggregator)

    replay = sub.add_parser("replay", help="Run the edge pipeline over a recorded video.")
    replay.add_argument("video", help="Video file.")
    replay.add_argument("--config", required=True, help="Hall YAML file.")
    replay.add_argument("--camera", required=True, help="Camera id the video comes from.")
    replay.set_defaults(func=_cmd_replay)

    export = sub.add_parser("export", help="Export a dataset for auditors (recorded).")
    export.add_argument(
        "dataset",
        help="alerts, anomalies, anomaly_transitions, series/<measurement> or audit.",
    )
    export.add_argument("--hall-id", help="Hall to export (not for audit).")
    export.add_argument("--hall", action="append", help="Hall YAML file (repeatable).")
    export.add_argument("-o", "--output", required=True, type=Path, help="File to write.")
    export.add_argument(
        "--format", choices=["csv", "xlsx", "parquet"], help="Default: the output's suffix."
    )
    export.add_argument("--since", help="From (ISO 8601; hall-local if no offset).")
    export.add_argument("--until", help="Until, exclusive (ISO 8601).")
    export.add_argument("--window", help="Only this window.")
    export.add_argument("--department", help="Only this department's windows.")
    export.add_argument("--time-format", choices=["iso", "gbt"], default="iso")
    export.add_argument("--no-progress", action="store_true", help="No progress bar.")
    export.set_defaults(func=_cmd_export)

    cli_users.add_parser(sub)
    deploy_mqtt.add_subcommand(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hallwatch`` console script."""
    args = build_parser().parse_args(argv)
    quiet = args.command in ("replay", "export") or (
        args.command == "demo" and args.seconds is not None and not args.verbose
    )
    _setup_logging(args.verbose, quiet=quiet)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
