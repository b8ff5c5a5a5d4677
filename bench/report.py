"""Figures, their medians and targets, the printed table and the JSON record of a run."""

import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    """A target from the issue: the ratio product/baseline at least `ratio_at_least` and at
    most `ratio_at_most`, or the product's median at most `at_most` (in the figure's unit)."""

    text: str
    ratio_at_least: float | None = None
    at_most: float | None = None
    ratio_at_most: float | None = None

    def met(self, figure: "Figure") -> bool | None:
        if self.ratio_at_least is not None or self.ratio_at_most is not None:
            ratio = figure.ratio
            if ratio is None:
                return None
            low = self.ratio_at_least if self.ratio_at_least is not None else ratio
            high = self.ratio_at_most if self.ratio_at_most is not None else ratio
            return low <= ratio <= high
        if self.at_most is not None:
            return figure.product_median <= self.at_most
        return None


@dataclass
class Figure:
    key: str
    label: str
    unit: str
    target: Target | None = None
    product: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)

    @property
    def product_median(self) -> float:
        return statistics.median(self.product)

    @property
    def ratio(self) -> float | None:
        if not self.product or not self.baseline:
            return None
        return self.product_median / statistics.median(self.baseline)

    def record(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "product": self.product,
            "baseline": self.baseline,
            "product_summary": _summary(self.product),
            "baseline_summary": _summary(self.baseline),
            "ratio": self.ratio,
            "target": self.target.text if self.target else None,
            "met": self.target.met(self) if self.target and self.product else None,
        }


@dataclass
class Report:
    backend: str
    rounds: int
    sizes: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    runs: dict[str, list[Any]] = field(default_factory=dict)
    void: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The product's code when the run began; compared with the code when it ended.
    source_at_start: dict[str, str] = field(default_factory=lambda: source_version())

    def figure(self, key: str) -> Figure:
        return next(f for f in self.figures if f.key == key)

    def add_run(self, kind: str, run: Any) -> None:
        self.runs.setdefault(kind, []).append(asdict(run) | _properties(run))

    def record(self) -> dict[str, Any]:
        return {
            "date": datetime.now(UTC).isoformat(),
            "command": " ".join(["python -m bench", *sys.argv[1:]]),
            "machine": {
                "cpu_count": os.cpu_count(),
                "platform": platform.platform(),
                "processor": platform.processor() or platform.machine(),
                "python": platform.python_version(),
            },
            "source": {"at_start": self.source_at_start, "at_end": source_version()},
            "backend": self.backend,
            "rounds": self.rounds,
            "sizes": self.sizes,
            "figures": [f.record() for f in self.figures],
            "runs": self.runs,
            "void": self.void,
            "notes": self.notes,
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.record(), indent=2) + "\n")

    def table(self) -> str:
        header = ("figure", "product median [min–max]", "baseline", "ratio", "target", "met?")
        rows = [header, *(_row(f) for f in self.figures)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.extend(f"NOTE: {note}" for note in self.notes)
        lines.extend(f"VOID: {reason}" for reason in self.void)
        if source_version() != self.source_at_start:
            lines.append("NOTE: the product's sources changed while this run went on")
        return "\n".join(line.rstrip() for line in lines)


def source_version() -> dict[str, str]:
    """The commit and a digest of the product's sources, uncommitted changes included, so that
    two runs can be told apart when the working tree moved between them."""
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPOSITORY, capture_output=True, text=True, check=False
    ).stdout.strip()
    digest = hashlib.sha256()
    for path in sorted((REPOSITORY / "src" / "reflexblue").rglob("*.py")):
        digest.update(path.relative_to(REPOSITORY).as_posix().encode())
        digest.update(path.read_bytes())
    return {"commit": commit, "sources_sha256": digest.hexdigest()}


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _properties(run: Any) -> dict[str, Any]:
    """Derived figures of a raw run (such as a rate), kept in the JSON beside its fields."""
    names = [n for n, v in vars(type(run)).items() if isinstance(v, property)]
    found = {n: getattr(run, n) for n in names}
    for name, value in vars(run).items():
        if hasattr(value, "__dataclass_fields__"):
            found[name] = asdict(value) | _properties(value)
    return found


def _row(figure: Figure) -> tuple[str, ...]:
    met = figure.target.met(figure) if figure.target and figure.product else None
    return (
        figure.label,
        f"{_spread(figure.product)} {figure.unit}",
        _spread(figure.baseline) if figure.baseline else "—",
        f"{figure.ratio:.2f}" if figure.ratio is not None else "—",
        figure.target.text if figure.target else "—",
        {True: "yes", False: "NO", None: "—"}[met],
    )


def _spread(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{_number(statistics.median(values))} [{_number(min(values))}–{_number(max(values))}]"


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"
