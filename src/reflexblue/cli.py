"""The `reflexblue` command: serve the product and manage it from a terminal or a script.

Every command is scriptable: without a terminal on standard input nothing is asked, output is
JSON with `--json`, and a failure is one line `error: …` on standard error with a non-zero
exit code.
"""

import asyncio
import dataclasses
import json
import secrets
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.accounts import service as accounts
from reflexblue.accounts.models import Role
from reflexblue.accounts.schemas import TokenCreate, TokenRead, UserCreate
from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction, utcnow
from reflexblue.core.errors import (
    ConfigurationError,
    DomainError,
    FieldError,
    MasterKeyError,
    PreconditionFailed,
)
from reflexblue.core.event_loop import EventLoopFactory, fast_event_loop_factory
from reflexblue.core.logging import configure_logging
from reflexblue.core.paging import Order
from reflexblue.core.runtime import Runtime, start_runtime
from reflexblue.core.settings import Settings
from reflexblue.core.validation import parse
from reflexblue.integrations import api_keys
from reflexblue.integrations import service as integrations
from reflexblue.integrations.api_keys import ApiKeyCreate, ApiKeyRead
from reflexblue.integrations.models import Integration
from reflexblue.integrations.schemas import IntegrationCreate, IntegrationRead, IntegrationUpdate
from reflexblue.webhooks import event_types
from reflexblue.webhooks.schemas import EventTypeCreate, EventTypeRead

T = TypeVar("T")
PROGRAM_NAME = "reflexblue"
# How a field of a service's error is called on the command line, per group of commands.
Labels = Mapping[str, str]
NO_LABELS: Labels = {}
USER_LABELS: Labels = {"username": "NAME", "password": "password"}
TOKEN_LABELS: Labels = {"name": "--name"}

app = typer.Typer(
    help="ReflexBlue Integrations: integrations, their secret keys and signed webhooks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
users_app = typer.Typer(help="Console and API users.", no_args_is_help=True)
tokens_app = typer.Typer(help="Management API tokens (rbu_…).", no_args_is_help=True)
integrations_app = typer.Typer(help="Integrations and their secret keys.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(integrations_app, name="integrations")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def main() -> None:
    """Run the command line; mistakes in its use are one line on stderr, like every error."""
    try:
        outcome = app(prog_name=PROGRAM_NAME, standalone_mode=False)
    except typer.TyperException as error:
        _fail_usage(error)
    except typer.Abort:
        _fail("aborted")
    # Without standalone mode an explicit exit comes back as its code, a finished command as None.
    sys.exit(outcome if isinstance(outcome, int) else 0)


def _fail_usage(error: typer.TyperException) -> NoReturn:
    # Typer words some of Pydantic's messages with Pydantic's own prefix; it adds nothing here.
    message = error.format_message().replace("Value error, ", "")
    if not message.strip() or "\n" in message.strip():
        # A group called without a command answers with its help text (printed already by
        # Typer's rich output, or carried in the message by plain Click).
        typer.echo(message.strip(), err=True, nl=bool(message.strip()))
    else:
        context = getattr(error, "ctx", None)
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        typer.echo(f"error: {message}{hint}", err=True)
    sys.exit(error.exit_code)


# --- running -----------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Serve only; deliver with `reflexblue worker`.")
    ] = False,
) -> None:
    """Apply migrations, then serve the console, the Management API and the External API, and
    deliver webhooks in the same process unless --no-worker is given."""
    import uvicorn

    from reflexblue.app import create_app

    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)
    signal.signal(signal.SIGTERM, _stop_on_request)
    generated = _run(_prepare_to_serve(settings), settings)
    if generated:
        # Printed on the terminal once and never logged: it exists nowhere else in clear.
        typer.echo(
            "\nCreated the first administrator.\n"
            f"  user name: {accounts.FIRST_ADMIN_USERNAME}\n"
            f"  password:  {generated}\n"
            "Keep it safe; it is not shown again.\n",
            err=True,
        )
    typer.echo(f"ReflexBlue is at http://{host}:{port}/", err=True)
    uvicorn.run(
        # Migrated by _prepare_to_serve just before.
        create_app(settings, run_worker=not no_worker, migrate=False),
        host=host,
        port=port,
        log_config=None,
        proxy_headers=False,
        # The application writes one access line per request itself, with its request id.
        access_log=False,
    )


def _stop_on_request(_signal: int, _frame: FrameType | None) -> None:
    """SIGTERM is how service managers stop a server: that is a success, exit code 0.

    Uvicorn answers SIGTERM with a graceful shutdown and then raises the signal again for the
    handler that was there before it, which is this one.
    """
    raise SystemExit(0)


async def _prepare_to_serve(settings: Settings) -> str | None:
    """Migrate and make sure an administrator exists; the password, if one was generated."""
    runtime = await start_runtime(settings)
    try:
        async with transaction(runtime.sessions) as session:
            chosen = settings.admin_password
            password = chosen.get_secret_value() if chosen else None
            return await accounts.ensure_first_admin(session, password)
    finally:
        await runtime.close()


@app.command()
def migrate() -> None:
    """Apply pending database migrations and check the master key."""
    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)
    _with_runtime(_nothing, NO_LABELS)
    typer.echo("The database schema is up to date.")


async def _nothing(_: Runtime) -> None:
    return None


@app.command()
def worker(
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Serve /metrics and /healthz on this port "
            "(default: REFLEXBLUE_WORKER_METRICS_PORT; without either, no port is opened).",
        ),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address for the metrics port.")] = "127.0.0.1",
) -> None:
    """Run only the delivery worker; any number of them may share one PostgreSQL database."""
    from reflexblue.operations.worker_endpoint import run_worker_process

    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)
    port = metrics_port or settings.worker_metrics_port

    async def run(runtime: Runtime) -> None:
        await run_worker_process(runtime, metrics_host=metrics_host, metrics_port=port)

    _with_runtime(run, NO_LABELS, loop_factory=fast_event_loop_factory())


# --- users and tokens --------------------------------------------------------------------


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The user name to sign in with.")],
    role: Annotated[
        Role, typer.Option(help="admin changes things; viewer only reads.")
    ] = Role.ADMIN,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a user. Without --password-stdin a password is asked for, or generated."""
    password, generated = _password_for_new_user(password_stdin)
    data = _parse(
        UserCreate, {"username": name, "password": password, "role": role.value}, USER_LABELS
    )

    async def create(runtime: Runtime) -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            user = await accounts.create_user(session, data, CLI_ACTOR)
            return {"id": user.id, "username": user.username, "role": user.role}

    created = _with_runtime(create, USER_LABELS)
    if generated:
        created["password"] = password
    _print(created, as_json, f"Created {created['role']} {created['username']!r}.")
    if generated and not as_json:
        typer.echo(f"Password (shown once): {password}")


def _password_for_new_user(password_stdin: bool) -> tuple[str, bool]:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    if sys.stdin.isatty():
        entered = typer.prompt(
            "Password (empty to generate one)",
            default="",
            hide_input=True,
            confirmation_prompt=True,
            show_default=False,
        )
        if entered:
            return entered, False
    return secrets.token_urlsafe(accounts.GENERATED_PASSWORD_BYTES), True


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Argument(metavar="USER", help="The user the token acts as.")],
    name: Annotated[str, typer.Option("--name", help="What the token is for.")],
    as_json: JsonOption = False,
) -> None:
    """Create a Management API token. It is printed once; only its hash is kept."""
    data = _parse(TokenCreate, {"name": name}, TOKEN_LABELS)

    async def create(runtime: Runtime) -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            row, token = await accounts.create_token(session, user, data.name, CLI_ACTOR)
            return {**TokenRead.model_validate(row).model_dump(mode="json"), "token": token}

    created = _with_runtime(create, TOKEN_LABELS)
    if as_json:
        _print(created, True, "")
        return
    # The token alone on stdout, so that `TOKEN=$(reflexblue tokens create …)` works.
    typer.echo(created["token"])
    typer.echo(f"Token {created['id']} for {user!r}; it is not shown again.", err=True)


@tokens_app.command("list")
def tokens_list(
    user: Annotated[str, typer.Argument(metavar="USER", help="Whose tokens to list.")],
    as_json: JsonOption = False,
) -> None:
    """List a user's tokens (never the tokens themselves)."""

    async def load(runtime: Runtime) -> list[dict[str, Any]]:
        async with transaction(runtime.sessions) as session:
            rows = await accounts.list_tokens(session, user)
            return [TokenRead.model_validate(row).model_dump(mode="json") for row in rows]

    rows = _with_runtime(load, TOKEN_LABELS)
    if as_json:
        _print(rows, True, "")
        return
    table = [
        {**row, "ends_with": f"…{row['last_four']}", "state": _token_state(row)} for row in rows
    ]
    _print_table(
        table,
        {"id": "ID", "name": "Name", "ends_with": "Ends with", "state": "State"},
        empty=f"{user!r} has no tokens.",
    )


def _token_state(row: Mapping[str, Any]) -> str:
    return "revoked" if row["revoked_at"] else "active"


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(metavar="TOKEN_ID", help="The token's id (tok_…).")],
) -> None:
    """Revoke a token; requests with it fail from now on."""

    async def revoke(runtime: Runtime) -> None:
        async with transaction(runtime.sessions) as session:
            await accounts.revoke_token(session, token_id, CLI_ACTOR)

    _with_runtime(revoke, TOKEN_LABELS)
    typer.echo(f"Revoked {token_id}.")


# --- integrations ------------------------------------------------------------------------

IntegrationRef = Annotated[
    str,
    typer.Argument(metavar="INTEGRATION", help="The integration's id (int_…) or Export ID."),
]
IfVersion = Annotated[
    int | None,
    typer.Option(help="Only if the integration is still at this version (see `show`)."),
]
# Service errors name model fields; on the command line they are options.
INTEGRATION_LABELS: Labels = {
    field: "--" + field.replace("_", "-")
    for field in ("name", "description", "external_id", "export_id", "if_version", "cursor")
}
INTEGRATION_COLUMNS = {
    "id": "ID",
    "name": "Name",
    "description": "Description",
    "external_id": "External integration ID",
    "export_id": "Export ID",
    "created_at": "Created",
    "updated_at": "Last modified",
    "version": "Version",
}


@integrations_app.command("list")
def integrations_list(
    sort: Annotated[
        str, typer.Option(help="name, external_id, export_id, created_at or updated_at.")
    ] = "name",
    order: Annotated[str, typer.Option(help="asc or desc.")] = "asc",
    search: Annotated[
        str | None, typer.Option("--search", "-q", help="Text to look for in names and IDs.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=integrations.PAGE_SIZE_MAX)] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="next_cursor or prev_cursor of another page.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List integrations, one page at a time."""
    chosen_sort = next((field for field in integrations.SORT_FIELDS if field == sort), None)
    if chosen_sort is None:
        _fail(f"--sort: Sort by one of: {', '.join(integrations.SORT_FIELDS)}.")
    if order not in ("asc", "desc"):
        _fail("--order: Must be asc or desc.")
    chosen_order: Order = "asc" if order == "asc" else "desc"

    async def load(runtime: Runtime) -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            page = await integrations.list_integrations(
                session,
                sort=chosen_sort,
                order=chosen_order,
                q=search,
                limit=limit,
                cursor=cursor,
            )
            return {
                "items": [_integration_json(row) for row in page.items],
                "next_cursor": page.next_cursor,
                "prev_cursor": page.prev_cursor,
            }

    page = _with_runtime(load, INTEGRATION_LABELS)
    if as_json:
        _print(page, True, "")
        return
    columns = {key: INTEGRATION_COLUMNS[key] for key in ("id", "export_id", "name", "updated_at")}
    _print_table(page["items"], columns, empty="No integrations.")
    if page["next_cursor"]:
        typer.echo(f"More: --cursor {page['next_cursor']}", err=True)


@integrations_app.command("show")
def integrations_show(ref: IntegrationRef, as_json: JsonOption = False) -> None:
    """Show one integration (without its secret key)."""

    async def load(runtime: Runtime) -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            return _integration_json(await _find(session, ref))

    _print_integration(_with_runtime(load, INTEGRATION_LABELS), as_json)


@integrations_app.command("create")
def integrations_create(
    name: Annotated[str, typer.Option(help="The integration's name.")],
    external_id: Annotated[str, typer.Option(help="The ID the external system knows it by.")],
    export_id: Annotated[str, typer.Option(help="Letters, digits and _ only; unique.")],
    description: Annotated[str, typer.Option(help="What the integration is for.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create an integration; its secret key is generated (see `secret`, `rotate-secret`)."""
    given = {
        "name": name,
        "description": description,
        "external_id": external_id,
        "export_id": export_id,
    }
    data = _parse(IntegrationCreate, given, INTEGRATION_LABELS)

    async def create(runtime: Runtime) -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            row = await integrations.create_integration(session, runtime.box, data, CLI_ACTOR)
            return _integration_json(row)

    _print_integration(_with_runtime(create, INTEGRATION_LABELS), as_json)


@integrations_app.command("update")
def integrations_update(
    ref: IntegrationRef,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    external_id: Annotated[str | None, typer.Option(help="New external integration ID.")] = None,
    export_id: Annotated[str | None, typer.Option(help="New Export ID.")] = None,
    if_version: IfVersion = None,
    as_json: JsonOption = False,
) -> None:
    """Change the given fields of an integration; the others stay as they are."""
    given = {
        "name": name,
        "description": description,
        "external_id": external_id,
        "export_id": export_id,
    }
    changes = {field: value for field, value in given.items() if value is not None}
    data = _parse(IntegrationUpdate, changes, INTEGRATION_LABELS)
    if not changes:
        typer.echo(
            "Nothing to change: give --name, --description, --external-id or --export-id.",
            err=True,
        )

    async def update(runtime: Runtime) -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            found = await _find(session, ref)
            with _stale_version_names_option(if_version):
                row = await integrations.update_integration(
                    session, found.id, data, CLI_ACTOR, expected_version=if_version
                )
                await session.flush()
            return _integration_json(row)

    _print_integration(_with_runtime(update, INTEGRATION_LABELS), as_json)


@integrations_app.command("delete")
def integrations_delete(
    ref: IntegrationRef,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    if_version: IfVersion = None,
) -> None:
    """Delete an integration with its webhooks and API keys.

    Asks first on a terminal; a script (no terminal on standard input) is not asked.
    """
    if not yes and sys.stdin.isatty():
        typer.confirm(f"Delete integration {ref!r} with its webhooks and API keys?", abort=True)

    async def delete(runtime: Runtime) -> str:
        async with transaction(runtime.sessions) as session:
            found = await _find(session, ref)
            with _stale_version_names_option(if_version):
                await integrations.delete_integration(
                    session, found.id, CLI_ACTOR, expected_version=if_version
                )
            return found.name

    name = _with_runtime(delete, INTEGRATION_LABELS)
    typer.echo(f"Deleted integration {name!r}.")


@integrations_app.command("secret")
def integrations_secret(ref: IntegrationRef, as_json: JsonOption = False) -> None:
    """Print the secret key (the reveal is audited)."""

    async def reveal(runtime: Runtime) -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            found = await _find(session, ref)
            read = await integrations.reveal_secret(session, runtime.box, found.id, CLI_ACTOR)
            return read.model_dump(mode="json")

    _print_secret(_with_runtime(reveal, INTEGRATION_LABELS), as_json)


@integrations_app.command("rotate-secret")
def integrations_rotate_secret(ref: IntegrationRef, as_json: JsonOption = False) -> None:
    """Make a new secret key; the previous one keeps signing for the grace period."""

    async def rotate(runtime: Runtime) -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            found = await _find(session, ref)
            read = await integrations.rotate_secret(
                session,
                runtime.box,
                found.id,
                CLI_ACTOR,
                grace_period_seconds=runtime.settings.secret_grace_period,
            )
            return read.model_dump(mode="json")

    _print_secret(_with_runtime(rotate, INTEGRATION_LABELS), as_json)


async def _find(session: AsyncSession, ref: str) -> Integration:
    """By id when it looks like one, else by Export ID (which may itself start with `int_`)."""
    if ref.startswith("int_"):
        found = await session.get(Integration, ref)
        if found is not None:
            return found
    return await integrations.get_integration_by_export_id(session, ref)


@contextmanager
def _stale_version_names_option(if_version: int | None) -> Iterator[None]:
    """With --if-version given, a refusal for a changed integration names that option."""
    try:
        yield
    except PreconditionFailed as error:
        if if_version is None or error.errors:
            raise
        raise PreconditionFailed(error.detail, [FieldError("if_version", error.detail)]) from None


def _integration_json(row: Integration | integrations.ListedIntegration) -> dict[str, Any]:
    return IntegrationRead.model_validate(row).model_dump(mode="json")


def _print_integration(item: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print(item, True, "")
        return
    width = max(len(label) for label in INTEGRATION_COLUMNS.values()) + 2
    for key, label in INTEGRATION_COLUMNS.items():
        typer.echo(f"{label + ':':<{width}}{item[key]}")


def _print_secret(read: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print(read, True, "")
        return
    typer.echo(read["secret"])
    if read["previous_secret_expires_at"]:
        typer.echo(
            f"The previous secret signs until {read['previous_secret_expires_at']}.", err=True
        )


# --- API keys and event types ------------------------------------------------------------

api_keys_app = typer.Typer(help="External API keys of integrations (rbk_…).", no_args_is_help=True)
event_types_app = typer.Typer(help="The event type catalogue.", no_args_is_help=True)
app.add_typer(api_keys_app, name="api-keys")
app.add_typer(event_types_app, name="event-types")

API_KEY_LABELS: Labels = {"name": "--name", "expires_at": "--expires-in-days"}
EVENT_TYPE_LABELS: Labels = {"name": "NAME", "description": "--description", "schema": "--schema"}
API_KEY_COLUMNS = {
    "id": "ID",
    "name": "Name",
    "last_four": "Ends in",
    "state": "State",
    "created_at": "Created",
    "last_used_at": "Last used",
    "expires_at": "Expires",
}


@api_keys_app.command("create")
def api_keys_create(
    integration: Annotated[str, typer.Argument(help="The integration's id (int_…) or Export ID.")],
    name: Annotated[str, typer.Option("--name", help="What the key is for.")],
    expires_in_days: Annotated[
        int | None,
        typer.Option(min=1, max=3650, help="Days until the key stops working; never if absent."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an External API key. It is printed once; only its hash is kept."""
    expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    data = _parse(ApiKeyCreate, {"name": name, "expires_at": expires_at}, API_KEY_LABELS)

    async def create(runtime: Runtime) -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            found = await _find(session, integration)
            created = await api_keys.create_api_key(session, found.id, data, CLI_ACTOR)
            return created.model_dump(mode="json")

    created = _with_runtime(create, API_KEY_LABELS)
    if as_json:
        _print(created, True, "")
        return
    typer.echo(created["key"])
    typer.echo(f"API key {created['id']} ({created['name']}); it is not shown again.", err=True)


@api_keys_app.command("list")
def api_keys_list(
    integration: Annotated[str, typer.Argument(help="The integration's id (int_…) or Export ID.")],
    as_json: JsonOption = False,
) -> None:
    """List an integration's API keys (never the keys themselves)."""

    async def load(runtime: Runtime) -> list[dict[str, Any]]:
        async with transaction(runtime.sessions) as session:
            found = await _find(session, integration)
            rows = await api_keys.list_api_keys(session, found.id)
            return [ApiKeyRead.model_validate(row).model_dump(mode="json") for row in rows]

    rows = _with_runtime(load, NO_LABELS)
    if as_json:
        _print(rows, True, "")
        return
    shown = [{**row, "last_four": f"…{row['last_four']}", "state": _key_state(row)} for row in rows]
    _print_table(
        [{key: value or "-" for key, value in row.items()} for row in shown],
        API_KEY_COLUMNS,
        empty="This integration has no API keys.",
    )


def _key_state(row: Mapping[str, Any]) -> str:
    if row["revoked_at"]:
        return "revoked"
    if row["expires_at"] and datetime.fromisoformat(row["expires_at"]) <= utcnow():
        return "expired"
    return "active"


@api_keys_app.command("revoke")
def api_keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_…).")]) -> None:
    """Revoke an API key; requests with it get 401 from now on."""

    async def revoke(runtime: Runtime) -> None:
        async with transaction(runtime.sessions) as session:
            await api_keys.revoke_api_key(session, key_id, CLI_ACTOR)

    _with_runtime(revoke, NO_LABELS)
    typer.echo(f"Revoked {key_id}.")


@event_types_app.command("list")
def event_types_list(as_json: JsonOption = False) -> None:
    """List every event type of the catalogue."""

    async def load(runtime: Runtime) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        async with transaction(runtime.sessions) as session:
            while True:
                page = await event_types.list_event_types(session, cursor=cursor)
                rows += [_event_type_json(row) for row in page.items]
                if page.next_cursor is None:
                    return rows
                cursor = page.next_cursor

    rows = _with_runtime(load, NO_LABELS)
    if as_json:
        _print(rows, True, "")
        return
    shown = [{**row, "schema": "yes" if row["schema"] else "-"} for row in rows]
    columns = {"name": "Name", "schema": "Schema", "description": "Description"}
    _print_table(shown, columns, empty="The catalogue is empty.")


@event_types_app.command("create")
def event_types_create(
    name: Annotated[str, typer.Argument(help="Lowercase dotted words, such as order.created.")],
    description: Annotated[str, typer.Option(help="What the event means.")] = "",
    schema: Annotated[
        str | None, typer.Option(help="A JSON Schema that the event's data must satisfy.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Add an event type to the catalogue."""
    given: dict[str, Any] = {"name": name, "description": description}
    if schema is not None:
        try:
            given["schema"] = json.loads(schema)
        except json.JSONDecodeError as error:
            _fail(f"--schema: not valid JSON ({error.msg} at position {error.pos})")
    data = _parse(EventTypeCreate, given, EVENT_TYPE_LABELS)

    async def create(runtime: Runtime) -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            return _event_type_json(await event_types.create_event_type(session, data, CLI_ACTOR))

    created = _with_runtime(create, EVENT_TYPE_LABELS)
    _print(created, as_json, f"Created event type {created['name']!r}.")


def _event_type_json(row: Any) -> dict[str, Any]:
    return EventTypeRead.model_validate(row).model_dump(mode="json", by_alias=True)


# --- events ------------------------------------------------------------------------------

events_app = typer.Typer(help="Publishing events to webhooks.", no_args_is_help=True)
app.add_typer(events_app, name="events")
EVENT_LABELS: Labels = {
    "type": "TYPE",
    "data": "--data",
    "integration": "--integration",
    "idempotency_key": "--idempotency-key",
}


@events_app.command("publish")
def events_publish(
    event_type: Annotated[str, typer.Argument(metavar="TYPE", help="An event type's name.")],
    data: Annotated[str, typer.Option("--data", help="The event's data as a JSON object.")],
    integration: Annotated[
        str | None, typer.Option(help="Only this integration's webhooks (its Export ID).")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Publish once: a repeat with this key returns the first event."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Publish an event: one delivery per subscribed webhook, sent by the running worker."""
    from reflexblue.api.management.events import EventPublish, publish_in_transaction

    try:
        payload = json.loads(data)
    except json.JSONDecodeError as error:
        _fail(f"--data: not valid JSON ({error.msg} at character {error.pos})")
    body = {
        "type": event_type,
        "data": payload,
        "integration": integration,
        "idempotency_key": idempotency_key,
    }
    request = _parse(EventPublish, body, EVENT_LABELS)

    async def publish(runtime: Runtime) -> dict[str, Any]:
        published = await publish_in_transaction(runtime, request)
        return dataclasses.asdict(published)

    published = _with_runtime(publish, EVENT_LABELS)
    summary = (
        f"Already published as {published['id']} under this idempotency key "
        f"({published['deliveries']} deliveries); nothing new was published."
        if published["replayed"]
        else f"Published {published['id']} with {published['deliveries']} deliveries."
    )
    _print(published, as_json, summary)


# --- backups and the master key ---------------------------------------------------------


@app.command("backup")
def backup_command(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="The backup file to write.")],
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it exists.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Copy the SQLite database to PATH while the product keeps running (PostgreSQL: pg_dump).

    The copy is checked with SQLite's integrity check and appears at PATH only when complete.
    Keep the master key too, stored apart from the backup: the secrets in it open only with it.
    """
    from reflexblue.operations import backup

    settings = _settings()
    report = _run_operation(lambda: backup.back_up(settings, path, force=force))
    summary = {
        "path": str(report.path),
        "size_bytes": report.size_bytes,
        "schema_revision": report.schema_revision,
    }
    _print(
        summary, as_json, f"Backed up the database to {report.path} ({report.size_bytes} bytes)."
    )
    typer.echo(
        f"Keep the master key ({_master_key_source(settings)}) as well, stored apart from this "
        "file: the backup's secrets open only with it.",
        err=True,
    )


@app.command("restore")
def restore_command(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="A file made by `backup`.")],
    as_json: JsonOption = False,
) -> None:
    """Replace the SQLite database with a backup, then bring its schema up to date.

    Stop every `serve` and `worker` first. The backup must pass SQLite's integrity check, have
    a schema this version knows and open with the current master key, or nothing changes. The
    replaced database is kept beside it with the suffix .before-restore.
    """
    from reflexblue.operations import backup

    settings = _settings()
    report = _run_operation(lambda: backup.restore(settings, path))
    _with_runtime(_nothing, NO_LABELS)
    summary = {
        "database": str(report.database),
        "previous": str(report.previous) if report.previous else None,
        "schema_revision": report.schema_revision,
    }
    kept = f" The database it replaced is {report.previous}." if report.previous else ""
    _print(summary, as_json, f"Restored {path} to {report.database}; it is up to date.{kept}")


@app.command("rotate-master-key")
def rotate_master_key_command(
    new_key_stdin: Annotated[
        bool,
        typer.Option("--new-key-stdin", help="Read the new key (base64 of 32 bytes) from stdin."),
    ] = False,
    generate: Annotated[bool, typer.Option("--generate", help="Make a new random key.")] = False,
) -> None:
    """Seal every secret with a new master key, in one transaction.

    On the embedded default the new key replaces DATA_DIR/master.key. With REFLEXBLUE_MASTER_KEY
    the new key is printed once (--generate) and the configuration must be changed to it.
    Restart every running `serve` and `worker` afterwards: they keep the old key in memory.
    """
    from reflexblue.operations import master_key

    if new_key_stdin == generate:
        _fail("give exactly one of --new-key-stdin and --generate")
    settings = _settings()
    in_configuration = settings.master_key is not None
    new_key = master_key.new_master_key() if generate else _parse_new_master_key(sys.stdin.read())

    def show_new_key() -> None:
        # Shown before the commit, so that no moment exists in which the database is sealed
        # with a key that nobody holds.
        if in_configuration and generate:
            typer.echo(master_key.encode_master_key(new_key))
            sys.stdout.flush()

    outcome = _run(master_key.rotate_master_key(settings, new_key, show_new_key), settings)
    typer.echo(f"Re-sealed {outcome.secrets_resealed} secrets with the new master key.", err=True)
    if outcome.key_file is not None:
        typer.echo(f"{outcome.key_file} now holds the new key.", err=True)
    else:
        shown = " printed above" if generate else ""
        typer.echo(
            f"Set REFLEXBLUE_MASTER_KEY to the new key{shown} everywhere it is configured "
            "before anything restarts; the old key no longer opens this database.",
            err=True,
        )
    typer.echo(
        "Restart every running `reflexblue serve` and `reflexblue worker`: they still hold "
        "the old key.",
        err=True,
    )


def _parse_new_master_key(text: str) -> bytes:
    from reflexblue.operations import master_key

    try:
        return master_key.parse_new_master_key(text)
    except DomainError as error:
        _fail(error.detail)


def _master_key_source(settings: Settings) -> str:
    if settings.master_key is not None:
        return "the REFLEXBLUE_MASTER_KEY value"
    return str(settings.master_key_file)


def _run_operation(work: Callable[[], T]) -> T:
    """A backup or restore step; what the operator can fix is one line."""
    from reflexblue.operations.backup import BackupError

    try:
        return work()
    except BackupError as error:
        _fail(str(error))
    except MasterKeyError as error:
        _fail(f"master key: {error}")
    except ConfigurationError as error:
        _fail(f"configuration: {error}")
    except OSError as error:
        _fail(f"{error.filename or 'file'}: {error.strerror or error}")


# --- plumbing ----------------------------------------------------------------------------


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"REFLEXBLUE_{'_'.join(str(part) for part in e['loc']).upper()}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        )
        _fail(f"configuration: {problems}")


def _with_runtime(
    work: Callable[[Runtime], Awaitable[T]],
    labels: Labels,
    *,
    loop_factory: EventLoopFactory | None = None,
) -> T:
    settings = _settings()

    async def run() -> T:
        runtime = await start_runtime(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    return _run(run(), settings, labels, loop_factory=loop_factory)


def _run(
    coroutine: Coroutine[Any, Any, T],
    settings: Settings,
    labels: Labels = NO_LABELS,
    *,
    loop_factory: EventLoopFactory | None = None,
) -> T:
    """Run a command's work; what the operator can fix ends it with one line, not a traceback."""
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(coroutine)
    except DomainError as error:
        _fail(_describe(error, labels))
    except MasterKeyError as error:
        _fail(f"master key: {error}")
    except ConfigurationError as error:
        _fail(f"configuration: {error}")
    except DBAPIError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        _fail(f"database {_shown_url(settings)}: {reason}")
    except (ConnectionError, TimeoutError, socket.gaierror) as error:
        _fail(f"database {_shown_url(settings)} cannot be reached: {error}")


def _shown_url(settings: Settings) -> str:
    """The database URL without its password, fit for a message."""
    url = make_url(settings.database_url or settings.sqlalchemy_url)
    return url.render_as_string(hide_password=True)


def _describe(error: DomainError, labels: Labels) -> str:
    if not error.errors:
        return error.detail
    return "; ".join(
        f"{labels.get(e.field, e.field)}: {e.message.rstrip('.')}" for e in error.errors
    )


def _parse(model: type[BaseModel], data: dict[str, Any], labels: Labels) -> Any:
    try:
        return parse(model, data)
    except DomainError as error:
        _fail(_describe(error, labels))


def _print(value: Any, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(value, indent=2) if as_json else text)


def _print_table(rows: list[dict[str, Any]], columns: Mapping[str, str], *, empty: str) -> None:
    """Rows under a header, each column as wide as its widest cell."""
    if not rows:
        typer.echo(empty, err=True)
        return
    widths = {
        key: max(len(label), *(len(str(row[key])) for row in rows))
        for key, label in columns.items()
    }
    last = list(columns)[-1]

    def line(cells: Mapping[str, Any]) -> str:
        return "  ".join(
            str(cells[key]) if key == last else f"{cells[key]!s:<{widths[key]}}" for key in columns
        )

    typer.echo(line(columns))
    for row in rows:
        typer.echo(line(row))


def _fail(message: str) -> NoReturn:
    # One line whatever the message holds, so scripts can read it with `read` or `head -1`.
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(1)
