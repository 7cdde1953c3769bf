"""What every panel shares: display delegation, the client default and error rendering."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w

from ..client import AssetsApiError, AssetsClient

# What a client call can raise: the API's error envelope, or requests' connection errors (OSError subclasses).
CLIENT_ERRORS = (AssetsApiError, OSError)
# The types uploads accept: the contract's default `allowed_content_types` (the API does not publish the setting).
ALLOWED_CONTENT_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


class Panel:
    """A panel owns an ipywidgets container in `.widget`; displaying the panel displays that container."""

    widget: w.Box

    def __init__(self, client: AssetsClient | None = None) -> None:
        self.client = client if client is not None else AssetsClient()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def error_text(error: BaseException) -> str:
    """One line for a failed call: the API's code and message, never a traceback."""
    if isinstance(error, AssetsApiError):
        return f"{error.code}: {error.message}"
    return f"{type(error).__name__}: {error}"


def error_html(error: BaseException) -> str:
    return f'<span style="color:#b00020">{html.escape(error_text(error))}</span>'


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


def table(headers: list[str], rows: list[list[str]]) -> str:
    """An HTML table from already-escaped cells."""
    head = "".join(f'<th style="text-align:left;padding:2px 8px">{h}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f'<td style="padding:2px 8px">{c}</td>' for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
