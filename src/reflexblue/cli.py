"""The `reflexblue` command: serve the product and manage it from a terminal or a script."""

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from reflexblue.accounts import service as accounts
from reflexblue.accounts.models import Role
from reflexblue.accounts.schemas import TokenCreate, TokenRead, UserCreate
from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.errors import DomainError, MasterKeyError
from reflexblue.core.logging import configure_logging
from reflexblue.core.paging import Order
from reflexblue.core.runtime import Runtime, start_runtime
from reflexblue.core.settings import Settings
from reflexblue.core.validation import parse
from reflexblue.integrations import service as integrations
from reflexblue.integrations.models import Integration
from reflexblue.integrations.schemas import IntegrationCreate, IntegrationRead, IntegrationUpdate

T = TypeVar("T")

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
IntegrationRef = Annotated[str, typer.Argument(help="The integration's id (int_…) or Export ID.")]


def main() -> None:
    app()


# --- running -----------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Apply migrations, then serve the console, the Management API and the External API."""
    import uvicorn

    from reflexblue.app import create_app

    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)
    _run(_prepare_to_serve(settings))
    typer.echo(f"ReflexBlue is at http://{host}:{port}/", err=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, proxy_headers=False)


async def _prepare_to_serve(settings: Settings) -> None:
    runtime = await start_runtime(settings)
    try:
        async with transaction(runtime.sessions) as session:
            password = (
                settings.admin_password.get_secret_value() if settings.admin_password else None
            )
            generated = await accounts.ensure_first_admin(session, password)
    finally:
        await runtime.close()
    if generated:
        # Printed on the terminal once and never logged: it exists nowhere else in clear.
        typer.echo(
            "\nCreated the first administrator.\n"
            f"  user name: {accounts.FIRST_ADMIN_USERNAME}\n"
            f"  password:  {generated}\n"
            "Keep it safe; it is not shown again.\n",
            err=True,
        )


@app.command()
def migrate() -> None:
    """Apply pending database migrations and check the master key."""
    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)
    _with_runtime(lambda runtime: _nothing())
    typer.echo("The database schema is up to date.")


async def _nothing() -> None:
    return None


# --- users and tokens --------------------------------------------------------------------


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="The user name to sign in with.")],
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
    data = _parse(UserCreate, {"username": name, "password": password, "role": role.value})

    async def create(runtime: Runtime) -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            user = await accounts.create_user(session, data, CLI_ACTOR)
            return {"id": user.id, "username": user.username, "role": user.role}

    created = _with_runtime(create)
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
    import secrets

    return secrets.token_urlsafe(accounts.GENERATED_PASSWORD_BYTES), True


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Argument(help="The user the token acts as.")],
    name: Annotated[str, typer.Option("--name", help="What the token is for.")],
    as_json: JsonOption = False,
) -> None:
    """Create a Management API token. It is printed once; only its hash is kept."""
    data = _parse(TokenCreate, {"name": name})

    async def create(runtime: Runtime) -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            row, token = await accounts.create_token(session, user, data.name, CLI_ACTOR)
            return {**TokenRead.model_validate(row).model_dump(mode="json"), "token": token}

    created = _with_runtime(create)
    if as_json:
        _print(created, True, "")
    else:
        typer.echo(created["token"])
        typer.echo(f"Token {created['id']} for {user!r}; it is not shown again.", err=True)


@tokens_app.command("list")
def tokens_list(
    user: Annotated[str, typer.Argument(help="Whose tokens to list.")], as_json: JsonOption = False
) -> None:
    """List a user's tokens (never the tokens themselves)."""

    async def load(runtime: Runtime) -> list[dict[str, Any]]:
        async with transaction(runtime.sessions) as session:
            rows = await accounts.list_tokens(session, user)
            return [TokenRead.model_validate(row).model_dump(mode="json") for row in rows]

    rows = _with_runtime(load)
    if as_json:
        _print(rows, True, "")
        return
    for row in rows:
        state = "revoked" if row["revoked_at"] else "active"
        typer.echo(f"{row['id']}  …{row['last_four']}  {state:8} {row['name']}")


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="The token's id (tok_…).")]) -> None:
    """Revoke a token; requests with it fail from now on."""

    async def revoke(runtime: Runtime) -> None:
        async with transaction(runtime.sessions) as session:
            await accounts.revoke_token(session, token_id, CLI_ACTOR)

    _with_runtime(revoke)
    typer.echo(f"Revoked {token_id}.")


# --- integrations ------------------------------------------------------------------------


@integrations_app.command("list")
def integrations_list(
    sort: Annotated[
        str, typer.Option(help="name, external_id, export_id, created_at, updated_at")
    ] = "name",
    order: Annotated[str, typer.Option(help="asc or desc")] = "asc",
    search: Annotated[str | None, typer.Option("--search", "-q", help="Text to look for.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=integrations.PAGE_SIZE_MAX)] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List integrations, one page at a time."""
    if sort not in integrations.SORT_FIELDS:
        _fail(f"--sort must be one of: {', '.join(integrations.SORT_FIELDS)}")
    if order not in ("asc", "desc"):
        _fail("--order must be asc or desc")
    chosen_order: Order = "asc" if order == "asc" else "desc"

    async def load(runtime: Runtime) -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            page = await integrations.list_integrations(
                session,
                sort=sort,
                order=chosen_order,
                q=search,
                limit=limit,
                cursor=cursor,
            )
            items = [_integration_json(row) for row in page.items]
            return {"items": items, "next_cursor": page.next_cursor}

    page = _with_runtime(load)
    if as_json:
        _print(page, True, "")
        return
    for item in page["items"]:
        typer.echo(f"{item['id']}  {item['export_id']:<24} {item['name']}")
    if page["next_cursor"]:
        typer.echo(f"More: --cursor {page['next_cursor']}", err=True)


@integrations_app.command("show")
def integrations_show(ref: IntegrationRef, as_json: JsonOption = False) -> None:
    """Show one integration (without its secret key)."""

    async def load(runtime: Runtime) -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            return _integration_json(await _find(session, ref))

    _print_integration(_with_runtime(load), as_json)


@integrations_app.command("create")
def integrations_create(
    name: Annotated[str, typer.Option(help="The integration's name.")],
    external_id: Annotated[str, typer.Option(help="The ID the external system knows it by.")],
    export_id: Annotated[str, typer.Option(help="Letters, digits and _ only; unique.")],
    description: Annotated[str, typer.Option(help="What the integration is for.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Create an integration; its secret key is generated (see `rotate-secret`, `secret`)."""
    data = _parse(
        IntegrationCreate,
        {
            "name": name,
            "description": description,
            "external_id": external_id,
            "export_id": export_id,
        },
    )

    async def create(runtime: Runtime) -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            row = await integrations.create_integration(session, runtime.box, data, CLI_ACTOR)
            return _integration_json(row)

    _print_integration(_with_runtime(create), as_json)


@integrations_app.command("update")
def integrations_update(
    ref: IntegrationRef,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    external_id: Annotated[str | None, typer.Option(help="New external integration ID.")] = None,
    export_id: Annotated[str | None, typer.Option(help="New Export ID.")] = None,
    if_version: Annotated[
        int | None, typer.Option(help="Only if the integration is still at this version.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Change the given fields of an integration; the others stay as they are."""
    given = {
        "name": name,
        "description": description,
        "external_id": external_id,
        "export_id": export_id,
    }
    data = _parse(IntegrationUpdate, {k: v for k, v in given.items() if v is not None})

    async def update(runtime: Runtime) -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            found = await _find(session, ref)
            row = await integrations.update_integration(
                session, found.id, data, CLI_ACTOR, expected_version=if_version
            )
            await session.flush()
            return _integration_json(row)

    _print_integration(_with_runtime(update), as_json)


@integrations_app.command("delete")
def integrations_delete(
    ref: IntegrationRef,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete an integration with its webhooks and API keys."""
    if not yes and sys.stdin.isatty():
        typer.confirm(f"Delete integration {ref!r} with its webhooks and API keys?", abort=True)

    async def delete(runtime: Runtime) -> str:
        async with transaction(runtime.sessions) as session:
            found = await _find(session, ref)
            await integrations.delete_integration(session, found.id, CLI_ACTOR)
            return found.name

    name = _with_runtime(delete)
    typer.echo(f"Deleted integration {name!r}.")


@integrations_app.command("secret")
def integrations_secret(ref: IntegrationRef, as_json: JsonOption = False) -> None:
    """Print the secret key (the reveal is audited)."""

    async def reveal(runtime: Runtime) -> dict[str, Any]:
        async with transaction(runtime.sessions) as session:
            found = await _find(session, ref)
            read = await integrations.reveal_secret(session, runtime.box, found.id, CLI_ACTOR)
            return read.model_dump(mode="json")

    _print_secret(_with_runtime(reveal), as_json)


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

    _print_secret(_with_runtime(rotate), as_json)


async def _find(session: Any, ref: str) -> Integration:
    if ref.startswith("int_"):
        return await integrations.get_integration(session, ref)
    return await integrations.get_integration_by_export_id(session, ref)


def _integration_json(row: Integration) -> dict[str, Any]:
    return IntegrationRead.model_validate(row).model_dump(mode="json")


def _print_integration(item: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print(item, True, "")
        return
    labels = {
        "id": "ID",
        "name": "Name",
        "description": "Description",
        "external_id": "External integration ID",
        "export_id": "Export ID",
        "created_at": "Created",
        "updated_at": "Last modified",
        "version": "Version",
    }
    for key, label in labels.items():
        typer.echo(f"{label + ':':<25} {item[key]}")


def _print_secret(read: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print(read, True, "")
        return
    typer.echo(read["secret"])
    if read["previous_secret_expires_at"]:
        typer.echo(
            f"The previous secret signs until {read['previous_secret_expires_at']}.", err=True
        )


# --- plumbing ----------------------------------------------------------------------------


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"REFLEXBLUE_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        _fail(f"configuration: {problems}")


def _with_runtime(work: Callable[[Runtime], Awaitable[T]]) -> T:
    settings = _settings()

    async def run() -> T:
        runtime = await start_runtime(settings)
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    return _run(run())


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coroutine)
    except DomainError as error:
        _fail(_describe(error))
    except MasterKeyError as error:
        _fail(f"master key: {error}")


def _describe(error: DomainError) -> str:
    if not error.errors:
        return error.detail
    return "; ".join(f"{e.field}: {e.message}" for e in error.errors)


def _parse(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return parse(model, data)
    except DomainError as error:
        _fail(_describe(error))


def _print(value: Any, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(value, indent=2) if as_json else text)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
