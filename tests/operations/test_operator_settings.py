"""The operator webhook's settings: off by default, and a clear refusal of what cannot work."""

import base64

import pytest
from pydantic import ValidationError

from reflexblue.core.settings import Settings
from tests.operations.conftest import new_signing_secret

URL = "https://ops.example.com/reflexblue"


def _refusal(**values: str) -> tuple[str, str]:
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, **values)  # type: ignore[arg-type]
    (error,) = raised.value.errors()
    return ".".join(str(part) for part in error["loc"]), error["msg"]


def test_the_operator_webhook_is_off_by_default() -> None:
    settings = Settings(_env_file=None)

    assert (settings.operator_webhook_url, settings.operator_webhook_secret) == ("", None)


def test_a_url_with_a_valid_secret_is_accepted() -> None:
    secret = new_signing_secret()

    settings = Settings(_env_file=None, operator_webhook_url=URL, operator_webhook_secret=secret)

    assert settings.operator_webhook_secret is not None
    assert settings.operator_webhook_secret.get_secret_value() == secret


def test_a_url_without_a_secret_is_refused_naming_the_secret() -> None:
    field, message = _refusal(operator_webhook_url=URL)

    assert field == "operator_webhook_secret"
    assert "required when REFLEXBLUE_OPERATOR_WEBHOOK_URL is set" in message


BAD_SECRETS = {
    "no-prefix": base64.b64encode(b"x" * 32).decode(),
    "not-base64": "whsec_not base64!",
    "too-short": "whsec_" + base64.b64encode(b"x" * 8).decode(),
}


@pytest.mark.parametrize("secret", BAD_SECRETS.values(), ids=BAD_SECRETS.keys())
def test_a_bad_secret_is_refused_without_repeating_it(secret: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, operator_webhook_url=URL, operator_webhook_secret=secret)

    assert raised.value.errors()[0]["loc"] == ("operator_webhook_secret",)
    assert secret not in str(raised.value)


@pytest.mark.parametrize("url", ["ftp://ops.example.com/h", "ops.example.com/h", "https://u:p@h/x"])
def test_a_url_that_is_not_plain_http_is_refused(url: str) -> None:
    field, _ = _refusal(operator_webhook_url=url, operator_webhook_secret=new_signing_secret())

    assert field == "operator_webhook_url"
