"""The overview's state as the URL holds it (sort, order, search, page, selection), and the
detail form's fields; both are plain values the templates read."""

from dataclasses import dataclass, field, replace
from typing import Literal, get_args
from urllib.parse import urlencode

from starlette.datastructures import FormData, QueryParams

from reflexblue.core.paging import Order
from reflexblue.integrations.service import SORT_FIELDS, SortField

OVERVIEW_PATH = "/management/general/integrations"
SEARCH_MAX_LENGTH = 200
ORDERS: tuple[Order, ...] = get_args(Order)

AriaSort = Literal["ascending", "descending", "none"]


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    sort: SortField | None


COLUMNS = (
    Column("name", "Name", "name"),
    Column("description", "Description", None),
    Column("external_id", "External integration ID", "external_id"),
    Column("export_id", "Export ID", "export_id"),
    Column("updated_at", "Last modified", "updated_at"),
)


@dataclass(frozen=True)
class ListView:
    """Everything that decides what the overview shows; a link with it reproduces the view."""

    sort: SortField = "name"
    order: Order = "asc"
    q: str = ""
    cursor: str | None = None
    selected: str | None = None
    notices: tuple[str, ...] = field(default=(), compare=False)

    def url(self, **changes: str | None) -> str:
        view = replace(self, **changes)  # type: ignore[arg-type]
        return f"{OVERVIEW_PATH}?{urlencode(view.params())}"

    def params(self, *, with_page: bool = True) -> dict[str, str]:
        """Query parameters; defaults are left out so links stay short."""
        params: dict[str, str] = {"sort": self.sort, "order": self.order}
        if self.q:
            params["q"] = self.q
        if with_page and self.cursor:
            params["cursor"] = self.cursor
        if with_page and self.selected:
            params["selected"] = self.selected
        return params

    def back_params(self) -> dict[str, str]:
        """What a detail screen carries so that Save and Cancel return to the same view."""
        return self.params(with_page=False)

    def sort_url(self, sort: SortField) -> str:
        """Clicking a header sorts by it; clicking the sorted one again reverses the order."""
        order: Order = "desc" if (sort == self.sort and self.order == "asc") else "asc"
        return self.url(sort=sort, order=order, cursor=None)

    def aria_sort(self, sort: SortField | None) -> AriaSort:
        if sort != self.sort:
            return "none"
        return "ascending" if self.order == "asc" else "descending"


def list_view_from(params: QueryParams | FormData) -> ListView:
    """Read the view from a query or a form; a bad value falls back to the default, with a
    notice saying so, rather than failing the whole screen."""
    notices: list[str] = []
    sort_text = _text(params, "sort") or "name"
    sort: SortField = "name"
    if sort_text in SORT_FIELDS:
        sort = sort_text
    else:
        notices.append("That sort column is not known; the list is sorted by name.")
    order_text = _text(params, "order") or "asc"
    order: Order = "asc"
    if order_text in ORDERS:
        order = order_text
    else:
        notices.append("The order must be ascending or descending; it is ascending now.")
    q = (_text(params, "q") or "").strip()
    if len(q) > SEARCH_MAX_LENGTH:
        q = q[:SEARCH_MAX_LENGTH]
        notices.append(f"The search uses the first {SEARCH_MAX_LENGTH} characters only.")
    return ListView(
        sort=sort,
        order=order,
        q=q,
        cursor=_text(params, "cursor") or None,
        selected=_text(params, "selected") or None,
        notices=tuple(notices),
    )


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    required: bool
    hint: str = ""
    multiline: bool = False
    max_length: int = 100


FORM_FIELDS = (
    FormField("name", "Name", required=True, hint="The name of the integration.", max_length=200),
    FormField(
        "description",
        "Description",
        required=False,
        hint="A description of the integration.",
        multiline=True,
        max_length=2000,
    ),
    FormField(
        "external_id",
        "External integration ID",
        required=True,
        hint="The ID under which the integration is known in the system it is linked to.",
    ),
    FormField(
        "export_id",
        "Export ID",
        required=True,
        hint="Letters (A–Z, a–z), digits (0–9) and the underscore (_) only. "
        "It must be unique; upper and lower case count as the same.",
    ),
)
FIELD_LABELS = {each.name: each.label for each in FORM_FIELDS}


def typed_values(form: FormData) -> dict[str, str]:
    """What the person typed, field by field, as typed (the rules trim it, not the form)."""
    return {each.name: _text(form, each.name) or "" for each in FORM_FIELDS}


def grace_period_in_words(seconds: int) -> str:
    if seconds == 0:
        return "no time at all"
    for unit_seconds, unit in ((86_400, "day"), (3600, "hour"), (60, "minute")):
        if seconds % unit_seconds == 0 and not (unit == "day" and seconds == 86_400):
            count = seconds // unit_seconds
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def _text(params: QueryParams | FormData, name: str) -> str | None:
    value = params.get(name)
    return value if isinstance(value, str) else None
