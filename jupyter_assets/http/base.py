"""The base handler: authentication, envelopes, JSON bodies, and running blocking work off the event loop.

Handlers are written against plain Tornado. Inside Jupyter, app.py mixes each one with Jupyter's own handler
class, so Jupyter's user, cookies, XSRF and CORS rules apply as well.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import tornado.web
from jupyter_server.auth.identity import User

from ..auth import API_KEY_PREFIX, Principal, jupyter_owner
from ..errors import ApiError, request_invalid
from ..model import human_size, iso, new_id

T = TypeVar("T")
log = logging.getLogger("jupyter_assets")
# JSON bodies are small. Larger ones are refused with 413 before they are parsed (uploads stream their own).
MAX_JSON_BODY = 4 * 1024 * 1024
MAX_DRAINED_BODY = 16 * 1024 * 1024  # a refused body up to this size is read first, so the client hears why
MAX_URL_LENGTH = 64 * 1024

# How Jupyter's Authorizer actions on the "assets" resource map to our scopes (JupyterHub roles use these).
JUPYTER_ACTIONS = {"assets:read": "read", "assets:write": "write", "assets:delete": "write", "assets:admin": "execute"}


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class AssetsHandler(tornado.web.RequestHandler):
    """Common behaviour of every jupyter-assets handler."""

    auth_resource = "assets"  # lets Jupyter's Authorizer (and JupyterHub roles) govern the extension
    in_jupyter = False  # True on the classes app.py builds for the Jupyter server
    trust_jupyter_user = False  # there: accept the user Jupyter authenticated (c.AssetsApp.trust_jupyter_user)
    principal: Principal
    deferred_error: ApiError | None = None  # found early, answered after the request body was read

    @property
    def service(self):  # -> AssetService (typed loosely to keep this module free of the service's imports)
        return self.settings["jupyter_assets_service"]

    @property
    def authenticator(self):
        return self.settings["jupyter_assets_authenticator"]

    # -- authentication -----------------------------------------------------------------------------------

    def _credential(self) -> tuple[str, str] | None:
        """The Authorization header as (scheme, credential), lower-case scheme; None when there is none."""
        header = self.request.headers.get("Authorization", "").strip()
        if not header:
            return None
        scheme, _, credential = header.partition(" ")
        return scheme.lower(), credential.strip()

    async def prepare(self) -> None:
        self.trace_id = new_id()
        # The anonymous route looks at no credential: a proxy's Basic auth or a stale header must not refuse it.
        sent = None if self._allows_anonymous() else self._credential()
        principal = None
        if sent is None:
            if self.trust_jupyter_user:
                principal = await self._jupyter_principal(credential_sent=False)
        elif sent[0] == "bearer" and sent[1]:
            principal = await self._authenticate(sent[1])
            # Jupyter's own token may come as a Bearer credential too; one of our keys is never passed on.
            if principal is None and self.trust_jupyter_user and not sent[1].startswith(API_KEY_PREFIX):
                principal = await self._jupyter_principal(credential_sent=True)
            if principal is None:
                raise ApiError("api_key_invalid", "The API key is invalid or revoked.")
        elif sent[0] == "token" and self.trust_jupyter_user:
            # Jupyter's own header form, under Jupyter's own rules: a stale token (an open tab after a restart)
            # leaves the cookie, which Jupyter's XSRF check then guards.
            principal = await self._jupyter_principal(credential_sent=False)
            if principal is None:
                raise ApiError("auth_required", "The Jupyter token is not valid for this server.")
        else:
            raise ApiError("auth_required", "The Authorization header must have the form 'Bearer <API key or JWT>'.")
        if principal is None and not self._allows_anonymous():
            raise ApiError("auth_required", "Authentication is required: send Authorization: Bearer <key>.")
        if principal is not None:
            self.principal = principal
            if not self.in_jupyter or principal.via != "jupyter":  # there Jupyter's own user is current already
                # What @tornado.web.authenticated checks, and what Jupyter's and JupyterHub's request loggers read.
                self.current_user = User(principal.subject)

    async def _authenticate(self, credential: str) -> Principal | None:
        if self.authenticator.answers_in_memory(credential):
            return self.authenticator.authenticate(credential)
        return await self.run_blocking(self.authenticator.authenticate, credential)

    async def _jupyter_principal(self, credential_sent: bool) -> Principal | None:
        """Inside Jupyter: the user Jupyter itself authenticated (token, cookie, JupyterHub), with the scopes its
        Authorizer grants on the "assets" resource (all of them with Jupyter's default Authorizer). A request
        that carries a credential counts only when Jupyter accepted that credential: a cookie never stands in for
        a credential that failed, and only a credential skips Jupyter's XSRF check."""
        from jupyter_server.base.handlers import JupyterHandler

        try:
            await JupyterHandler.prepare(self, _redirect_to_login=False)
        except tornado.web.HTTPError as error:
            # Jupyter refuses unauthenticated requests with a bare 403; we answer with our own 401 instead. A
            # cookie request refused by the XSRF check keeps Jupyter's 403, unless it also carried a credential
            # that failed, which is what the caller must hear about.
            known_user = getattr(self, "_jupyter_current_user", None) is not None
            if error.status_code != 403 or (known_user and not credential_sent):
                raise
            return None
        user = getattr(self, "_jupyter_current_user", None)
        if user is None or (credential_sent and not self.token_authenticated):
            return None
        scopes = set()
        for scope, action in JUPYTER_ACTIONS.items():
            allowed = self.authorizer.is_authorized(self, user, action, self.auth_resource)
            if allowed if isinstance(allowed, bool) else await allowed:
                scopes.add(scope)
        name = self._jupyter_username(user)
        if self.service.catalog.is_shared and name not in self.service.config.admin_users:
            scopes.discard("assets:admin")  # a team member is an ordinary owner unless named in admin_users
        return Principal(jupyter_owner(name), frozenset(scopes), "jupyter")

    def _jupyter_username(self, user: Any) -> str:
        """A stable owner name. Jupyter's own single-user identity providers invent a random anonymous name per
        token-authenticated request, so there the owner is the account that runs the server; other providers
        (JupyterHub's) name real users."""
        if type(self.identity_provider).__module__.startswith("jupyter_server."):
            return getpass.getuser()
        return user.username

    def _allows_anonymous(self) -> bool:
        method = getattr(self, self.request.method.lower(), None)
        return bool(getattr(method, "__allow_unauthenticated", False))

    # -- responses ----------------------------------------------------------------------------------------

    def set_default_headers(self) -> None:
        super().set_default_headers()
        if not self.in_jupyter:  # bearer credentials only, no cookies: any origin may call the standalone API
            self.set_header("Access-Control-Allow-Origin", "*")

    def send_json(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(payload, default=_json_default, ensure_ascii=False))

    def send_data(self, data: Any, status: int = 200) -> None:
        self.send_json({"data": data}, status)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # A deferred error is the real reason even when @authenticated then refused the request first.
        error = self.deferred_error or kwargs.get("exc_info", (None, None, None))[1]
        self.finish(self.prepare_error_response(error, status_code))

    def prepare_error_response(self, error: BaseException | None, status_code: int = 500) -> bytes:
        """Set the status and headers for an error and return its envelope."""
        if isinstance(error, ApiError):
            code, message, status_code = error.code, error.message, error.status
            for name, value in error.headers.items():
                self.set_header(name, value)
        elif isinstance(error, tornado.web.HTTPError):
            code, message = _http_error_code(error.status_code), error.log_message or self._reason
        else:
            code, message, status_code = "internal_server_error", "An unexpected error occurred.", 500
        if status_code == 401:
            self.set_header("WWW-Authenticate", 'Bearer realm="jupyter-assets"')
        self.clear_header("Content-Disposition")
        self.set_status(status_code)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        trace_id = getattr(self, "trace_id", None) or new_id()
        envelope = {"error": {"code": code, "message": message, "traceId": trace_id, "status": status_code}}
        return json.dumps(envelope, ensure_ascii=False).encode()

    def log_exception(self, typ, value, tb) -> None:  # type: ignore[no-untyped-def]
        if isinstance(value, ApiError):
            log.info("%s %s -> %s %s", self.request.method, self.request.path, value.status, value.code)
            return
        if isinstance(value, tornado.web.HTTPError):
            return super().log_exception(typ, value, tb)
        log.error(
            "internal error (traceId %s) in %s %s",
            getattr(self, "trace_id", "-"),
            self.request.method,
            self.request.path,
            exc_info=(typ, value, tb),
        )

    # -- helpers ------------------------------------------------------------------------------------------

    async def run_blocking(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.service.executor, function, *args)

    async def run_with_model(self, model: str | None, function: Callable[..., T], *args: Any) -> T:
        """As run_blocking, on the threads of ``model`` when the work may load or run one: it never takes a thread
        the reads (or another model) need."""
        executor = self.service.model_executors[model] if model else self.service.executor
        return await asyncio.get_running_loop().run_in_executor(executor, function, *args)

    def json_body(self, default: Any = None) -> Any:
        """The parsed JSON body; an empty body gives ``default``; malformed JSON is 400 request_invalid."""
        if len(self.request.body) > MAX_JSON_BODY:
            raise body_too_large(len(self.request.body))
        if not self.request.body.strip():
            return default
        try:
            return json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError) as error:
            raise request_invalid(f"The body is not valid JSON: {error}") from error
        except RecursionError:
            raise request_invalid("The body is not valid JSON: it nests too deeply.") from None


def body_too_large(size: int) -> ApiError:
    return ApiError(
        "request_body_too_large",
        f"The request body ({human_size(size)}) is over this route's limit of {human_size(MAX_JSON_BODY)}.",
    )


def _http_error_code(status: int) -> str:
    return {
        401: "auth_required",
        403: "auth_forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "asset_file_too_large",
    }.get(status, "request_invalid" if status < 500 else "internal_server_error")


class NotFoundHandler(AssetsHandler):
    """Unknown routes of the standalone server answer with the envelope too."""

    async def prepare(self) -> None:
        self.trace_id = new_id()
        raise ApiError("not_found", f"No route for {self.request.method} {self.request.path}.")


class UriTooLongHandler(AssetsHandler):
    """The standalone server answers a request line longer than it accepts with the envelope, not a closed
    connection (Tornado's own header limit is raised above this one for that)."""

    async def prepare(self) -> None:
        self.trace_id = new_id()
        raise ApiError("request_uri_too_long", f"The URL is over {MAX_URL_LENGTH // 1024} KiB.")


@tornado.web.stream_request_body
class BodyTooLargeHandler(AssetsHandler):
    """The standalone server's answer to a JSON route's body declared over MAX_JSON_BODY: a body up to
    MAX_DRAINED_BODY is read and thrown away first, since a client still sending would see a reset instead of
    the answer; a larger one is answered at once and the connection closed."""

    async def prepare(self) -> None:
        self.trace_id = new_id()
        declared = int(self.request.headers["Content-Length"])
        self.refusal = body_too_large(declared)
        self.refusal.headers["Connection"] = "close"
        if declared > MAX_DRAINED_BODY:
            raise self.refusal
        self.request.connection.set_max_body_size(declared)

    def data_received(self, chunk: bytes) -> None:
        pass  # thrown away

    async def refuse(self, *args: str) -> None:
        raise self.refusal

    get = head = post = put = patch = delete = options = refuse
