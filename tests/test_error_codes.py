"""The catalogue of error codes stays in step with the code that raises them and the document that describes them."""

from __future__ import annotations

import re
from pathlib import Path

from jupyter_assets.errors import ERROR_CODES

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
