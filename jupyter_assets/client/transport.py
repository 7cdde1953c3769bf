"""The HTTP side of the client: sessions that retry and carry the token, the API's envelope unwrapped, its errors
raised as AssetsApiError."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

API_PATH = "/api/v1/assets"
CHUNK = 1024 * 1024


class AssetsApiError(Exception):
    """An error answer of the API: its envelope's code, message, HTTP status and trace id."""

    def __init__(self, code: str, message: str, status: int, trace_id: str | None = None) -> None:
        self.code = code
        self.message = message
        self.status = status
        self.trace_id = trace_id
        super().__init__(str(self))

    def __str__(self) -> str:
        trace = f" [{self.trace_id}]" if self.trace_id else ""
        return f"{self.code} ({self.status}): {self.message}{trace}"

    @classmethod
    def from_envelope(cls, error: dict[str, Any], status: int) -> AssetsApiError:
        """From the API's ``{"code", "message", "traceId"}`` (an error envelope's, or a batch item's)."""
        return cls(str(error["code"]), str(error["message"]), status, error.get("traceId"))

    @classmethod
    def from_response(cls, response: requests.Response) -> AssetsApiError:
        try:
            return cls.from_envelope(response.json()["error"], response.status_code)
        except (ValueError, KeyError, TypeError):  # not our envelope: a proxy, Jupyter itself, a gateway
            message = f"{response.reason or 'HTTP error'}: {response.text[:500]}".strip()
            return cls("http_error", message, response.status_code)


def new_session(token: str | None) -> requests.Session:
    session = requests.Session()
    # A kept-alive connection can be closed by the server just as the next request goes out on it (Tornado
    # closes one after answering an error before the request body was read): repeat idempotent requests.
    retry = Retry(total=2, connect=2, read=2, status=0, other=0, raise_on_status=False)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.headers["User-Agent"] = "jupyter-assets-client"
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


def send(session: requests.Session, method: str, url: str, *, expect_json: bool = True, **kwargs: Any) -> Any:
    """The answer's ``data`` (or, without ``expect_json``, the response itself); an error answer raises."""
    response = session.request(method, url, **kwargs)
    if not 200 <= response.status_code < 300:
        error = AssetsApiError.from_response(response)
        response.close()
        raise error
    if not expect_json:
        return response
    try:
        return response.json()["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise AssetsApiError(
            "http_error", f"Expected a JSON data envelope: {response.text[:200]}", response.status_code
        ) from exc


class WorkerSessions:
    """A session for each of upload_many's worker threads (a requests Session is not thread-safe), made on the
    thread's first request and closed together when the batch ends."""

    def __init__(self, make: Callable[[], requests.Session]) -> None:
        self._make = make
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []

    def current(self) -> requests.Session | None:
        """This thread's session, None outside a worker thread."""
        return getattr(self._local, "session", None)

    def ensure(self) -> None:
        """Give the calling worker thread its session."""
        if self.current() is None:
            self._local.session = self._make()
            with self._lock:
                self._sessions.append(self._local.session)

    def close_all(self) -> None:
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()
