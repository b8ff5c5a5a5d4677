"""`python -m bench`: run every benchmark, print the table, write the JSON. Exits with 1 when
a run is void, with 2 when a benchmark could not run at all."""

import argparse
import sys
from pathlib import Path

from bench.context import BENCHMARKS, Options
from bench.processes import BenchError
from bench.runner import run_benchmarks

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"


def _options(arguments: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--postgresql", action="store_true", help="on a throwaway PostgreSQL 15, not SQLite"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, to see that it works")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where the JSON goes")
    parser.add_argument("--rounds", type=_positive, default=3, help="runs of each figure")
    parser.add_argument(
        "--deliveries", type=_positive, help="deliveries per drain (and requests of B)"
    )
    parser.add_argument(
        "--drain-limit",
        type=_positive_seconds,
        metavar="SECONDS",
        help="stop a drain still running after this long and rate what was delivered "
        "(default 120, or 60 with --quick)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FOLDER",
        help="record py-spy raw profiles of the worker in the first round's drains",
    )
    parser.add_argument(
        "--only",
        type=_benchmark_names,
        metavar="NAME[,NAME]",
        default=BENCHMARKS,
        help=f"run only these benchmarks, of: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--soak-minutes",
        type=_positive_minutes,
        metavar="MINUTES",
        help="how long the soak runs (default 10, or 0.5 with --quick)",
    )
    parsed = parser.parse_args(arguments)
    return Options(
        postgresql=parsed.postgresql,
        quick=parsed.quick,
        rounds=parsed.rounds,
        json_path=parsed.json,
        deliveries=parsed.deliveries,
        drain_limit_seconds=parsed.drain_limit,
        profile_folder=parsed.profile,
        only=parsed.only,
        soak_minutes=parsed.soak_minutes,
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _benchmark_names(text: str) -> tuple[str, ...]:
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = names - set(BENCHMARKS)
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown: {', '.join(sorted(unknown)) or '(none given)'}; "
            f"choose from {', '.join(BENCHMARKS)}"
        )
    # In the order of a full run, whatever the order given.
    return tuple(name for name in BENCHMARKS if name in names)


def _positive_minutes(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 minutes")
    return value


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def main(arguments: list[str]) -> int:
    options = _options(arguments)
    if options.profile_folder is not None:
        options.profile_folder.mkdir(parents=True, exist_ok=True)
    try:
        report = run_benchmarks(options)
    except BenchError as error:
        print(f"The benchmark could not run: {error}", file=sys.stderr)
        return 2
    report.write_json(options.json_path)
    print(report.table())
    print(f"\nJSON: {options.json_path}")
    return 1 if report.void else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
