"""A tiny run of `python -m bench`: it still works end to end. It asserts no speed at all;
the figures themselves live in docs/benchmarks.md."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import base_environment

DELIVERIES = 300
FIGURES_WITH_BASELINE = {
    "drain_fan_out_1_one_webhook",
    "drain_fan_out_1_16_webhooks",
    "drain_fan_out_10",
    "ingest",
    "signing",
    "failures_drain",
    "hostile_drain",
    *(
        f"flood_{flood}_{stream}_{share}"
        for flood in ("keys", "logins")
        for stream in ("api", "console")
        for share in ("p50", "p99")
    ),
    "soak_rss",
    "drain_cpu",
    "big_tables_drain",
    "big_tables_list_p99",
    "big_tables_overview_p99",
    "soak_throughput",
}
EVERY_FIGURE = FIGURES_WITH_BASELINE | {
    "ingest_batch",
    "worker_peak_rss",
    "worker_peak_rss_big_drain",
    "latency_rate",
    "latency_half_p50",
    "latency_half_p99",
    "latency_tenth_p99",
    "retry_lateness_p99",
    "flood_keys_rate",
    "flood_logins_rate",
}
# A retry sent the moment it fell due is 0 ms late; every other figure is a rate, a size or a
# duration that a working run makes positive.
MAY_BE_ZERO = {"retry_lateness_p99"}
REPOSITORY = Path(__file__).resolve().parents[2]
# The quick run takes about two minutes alone and up to twice that beside the rest of the
# suite; the first test to need it waits for it, so the tests' own limit is raised too.
QUICK_RUN_LIMIT_SECONDS = 480
pytestmark = pytest.mark.timeout(QUICK_RUN_LIMIT_SECONDS + 60)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any]]:
    """The exit code of one quick round on SQLite, and the JSON it wrote."""
    json_path = tmp_path_factory.mktemp("bench") / "results.json"
    sizes = ["--quick", "--rounds", "1", "--deliveries", str(DELIVERIES)]
    finished = subprocess.run(
        [sys.executable, "-m", "bench", *sizes, "--json", str(json_path)],
        cwd=REPOSITORY,
        env=base_environment({}),
        capture_output=True,
        check=False,
        timeout=QUICK_RUN_LIMIT_SECONDS,
    )
    assert json_path.exists(), finished.stderr.decode(errors="replace")
    return finished.returncode, json.loads(json_path.read_text())


def test_quick_bench_run_exits_zero_and_is_not_void(
    quick_run: tuple[int, dict[str, Any]],
) -> None:
    exit_code, results = quick_run

    assert results["void"] == []
    assert exit_code == 0


def test_quick_bench_run_reports_every_figure_with_positive_values(
    quick_run: tuple[int, dict[str, Any]],
) -> None:
    _, results = quick_run
    figures = {figure["key"]: figure for figure in results["figures"]}

    assert set(figures) == EVERY_FIGURE
    for key, figure in figures.items():
        assert len(figure["product"]) == 1, key
        least = 0 if key in MAY_BE_ZERO else 1e-9
        assert all(value >= least for value in figure["product"]), key
    for key in FIGURES_WITH_BASELINE:
        assert len(figures[key]["baseline"]) == 1, key
        assert all(value > 0 for value in figures[key]["baseline"]), key


def test_quick_bench_drains_balance_their_ledgers(quick_run: tuple[int, dict[str, Any]]) -> None:
    _, results = quick_run
    drains = results["runs"]["drains"]

    assert len(drains) == 3
    for drain in drains:
        ledger = drain["ledger"]
        assert ledger["published"] == DELIVERIES, drain["case"]
        assert ledger["succeeded"] + ledger["failed"] + ledger["pending"] == DELIVERIES
        assert ledger["received"] >= ledger["succeeded"]
        assert drain["complete"] is True
