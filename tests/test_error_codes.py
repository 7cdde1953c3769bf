"""The catalogue of error codes stays in step with the code that raises them and the document that describes them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jupyter_assets.errors import ERROR_CODES, ApiError, asset_not_found, forbidden, request_invalid

from conftest import OPENAPI

SOURCE = Path(__file__).resolve().parent.parent / "jupyter_assets"


def raised_codes() -> set[str]:
    text = "\n".join(path.read_text() for path in SOURCE.rglob("*.py"))
    return set(re.findall(r'\bApiError\(\s*"([a-z_]+)"', text))  # the server's ApiError, not the client's


def test_every_raised_code_is_catalogued() -> None:
    codes = raised_codes()
    assert len(codes) > 15  # the scan itself works
    assert codes - set(ERROR_CODES) == set()


def test_every_catalogued_code_is_documented_in_the_openapi_document() -> None:
    description = OPENAPI["info"]["description"]
    undocumented = [code for code in ERROR_CODES if f"`{code}`" not in description]
    assert undocumented == []


def test_the_status_comes_from_the_catalogue() -> None:
    assert [error.status for error in (request_invalid("x"), asset_not_found("a"), forbidden())] == [400, 404, 403]
    assert ApiError("range_not_satisfiable", "No.", headers={"Content-Range": "bytes */0"}).status == 416
    assert ApiError("token_expired", "Expired.").status == 401


def test_an_unknown_code_fails_loudly() -> None:
    with pytest.raises(ValueError, match="'asset_lost' is not in ERROR_CODES"):
        ApiError("asset_lost", "Gone.")
