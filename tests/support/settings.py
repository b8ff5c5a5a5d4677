"""Settings for tests that deliver to real receivers on this machine."""

from pathlib import Path

from reflexblue.core.settings import Settings


def loopback_delivery_settings(database_url: str, tmp_path: Path) -> Settings:
    """Receivers listen on loopback, so private targets are allowed; retries come at once and
    attempts time out after two seconds, so that a test can watch a schedule play out."""
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=database_url,
        allow_private_targets=True,
        retry_schedule="0,0",
        delivery_timeout=2.0,
    )
