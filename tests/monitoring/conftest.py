"""Fixtures and helpers for the operator's view: metrics scraped and parsed as Prometheus would,
and a runtime that may deliver to loopback receivers."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reflexblue.core.settings import Settings
from tests.support.settings import loopback_delivery_settings

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return loopback_delivery_settings(database_url, tmp_path)


@dataclass(frozen=True)
class Scrape:
    """One scrape's samples, found by sample name and labels."""

    samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float]
    family_names: frozenset[str]

    def value(self, name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        assert key in self.samples, f"no sample {name}{labels} in the scrape"
        return self.samples[key]

    def value_or_zero(self, name: str, **labels: str) -> float:
        """For a series that may not exist yet, before anything has counted into it."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(labels)[label] for sample, labels in self.samples if sample == name}


def parse_scrape(text: str) -> Scrape:
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(samples, frozenset(names))


async def scrape(client: httpx.AsyncClient) -> Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return parse_scrape(response.text)
