"""What every console page receives: the signed-in user, checked forms, and the templates."""

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.responses import Response

from reflexblue.accounts.sessions import SignedIn, resume_trusted
from reflexblue.api.dependencies import RuntimeDep
from reflexblue.api.problems import BodyTooLarge, UnsupportedMediaType
from reflexblue.console.security import CSRF_FIELD, SESSION_COOKIE, check_csrf
from reflexblue.core.errors import DomainError, Forbidden

PACKAGE_DIR = Path(__file__).resolve().parent
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
# The largest form, the detail screen, stays far below this even with every character of
# the longest description percent-encoded.
FORM_MAX_BYTES = 64 * 1024
FORM_MAX_FIELDS = 50
templates = Jinja2Templates(directory=PACKAGE_DIR / "templates")
# Pages show data only a signed-in user may see: keep them out of shared caches and the
# back-forward cache after sign-out.
PAGE_HEADERS = {"Cache-Control": "no-store", "Vary": "HX-Request"}
# The templates are files of the installed package, not edited while it runs: checking each
# one's modification time on every render would be work for nothing.
templates.env.auto_reload = False


class LoginRequired(Exception):
    """The page needs a signed-in user; the handler sends the browser to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def _readable_time(value: datetime) -> str:
    # The browser turns this into local time (console.js); this is what shows without script.
    return value.strftime("%d %b %Y, %H:%M UTC").lstrip("0")


def _iso_time(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


templates.env.filters["readable_time"] = _readable_time
templates.env.filters["iso_time"] = _iso_time


async def current_user(request: Request, runtime: RuntimeDep) -> SignedIn:
    signed_in = await resume_trusted(runtime.sessions, request.cookies.get(SESSION_COOKIE))
    if signed_in is None:
        raise LoginRequired(_path_with_query(request))
    return signed_in


ConsoleUser = Annotated[SignedIn, Depends(current_user)]


def require_admin(signed_in: ConsoleUser) -> SignedIn:
    if not signed_in.user.is_admin:
        raise Forbidden("Only administrators may change integrations; your role may only read.")
    return signed_in


ConsoleAdmin = Annotated[SignedIn, Depends(require_admin)]


class FormRefused(DomainError):
    title = "Form not accepted"


async def checked_form(request: Request, signed_in: ConsoleUser) -> FormData:
    """The posted form, once its CSRF token has been found to be this session's."""
    form = await read_form(request)
    submitted = form.get(CSRF_FIELD)
    check_csrf(signed_in.csrf_token, request, submitted if isinstance(submitted, str) else None)
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


async def read_form(request: Request) -> FormData:
    """The fields of a posted form, read strictly: the console's own pages send each field
    once, URL-encoded as UTF-8, so anything else did not come from them and is refused
    whole rather than stored as a guess (Starlette would keep the last of repeated fields
    and turn bytes that are not UTF-8 into replacement characters)."""
    length = request.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and int(length) > FORM_MAX_BYTES:
        raise BodyTooLarge(f"A form may be at most {FORM_MAX_BYTES} bytes.")
    body = await request.body()
    if len(body) > FORM_MAX_BYTES:
        raise BodyTooLarge(f"A form may be at most {FORM_MAX_BYTES} bytes.")
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and media_type != FORM_MEDIA_TYPE:
        raise UnsupportedMediaType(f"Send the form as {FORM_MEDIA_TYPE}.")
    try:
        fields = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=FORM_MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise FormRefused("The form holds text that is not valid UTF-8.") from None
    except ValueError:
        raise FormRefused(f"A form may have at most {FORM_MAX_FIELDS} fields.") from None
    repeated = sorted(name for name, count in Counter(n for n, _ in fields).items() if count > 1)
    if repeated:
        raise FormRefused(f"The form sends the field {repeated[0]!r} more than once.")
    return FormData(dict(fields))


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    signed_in: SignedIn | None = None,
    status_code: int = 200,
) -> Response:
    page = _page_context(context, signed_in)
    response = templates.TemplateResponse(request, template, page, status_code=status_code)
    response.headers.update(PAGE_HEADERS)
    return response


def page_text(template: str, context: dict[str, Any]) -> str:
    """A page for no one signed in, as text, for an answer built without a request."""
    return templates.get_template(template).render(_page_context(context, None))


def _page_context(context: dict[str, Any], signed_in: SignedIn | None) -> dict[str, Any]:
    return {
        "signed_in": signed_in,
        "csrf_token": signed_in.csrf_token if signed_in else "",
        **context,
    }


def form_text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def url_with(path: str, **params: str | None) -> str:
    kept = {name: value for name, value in params.items() if value}
    return f"{path}?{urlencode(kept)}" if kept else path


def _path_with_query(request: Request) -> str:
    query = request.url.query
    return f"{request.url.path}?{query}" if query else request.url.path
