"""Discovery of the server: the Jupyter server that runs this kernel (from Jupyter's runtime files, or from
JupyterHub's environment), and the token of a running server at a given URL."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def _local_url(url: str) -> str:
    """A bind address such as 0.0.0.0 or [::] is not a place to connect to: use the loopback address instead."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host in ("", "0.0.0.0", "::", "*"):
        netloc = "127.0.0.1" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _running_servers() -> list[dict[str, Any]]:
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return []
    return list(list_running_servers())


def _contains(root: str | None, path: str) -> bool:
    if not root:
        return False
    try:
        return os.path.commonpath([os.path.realpath(root), os.path.realpath(path)]) == os.path.realpath(root)
    except ValueError:  # different drives on Windows
        return False


def _kernel_parent_pids() -> set[int]:
    """The process ids that may be the Jupyter server running this kernel: jupyter_client passes the server's pid as
    JPY_PARENT_PID (on POSIX; on Windows it is a handle, not a pid), and a kernel started directly is its child."""
    pids = {os.getppid()}
    parent = os.environ.get("JPY_PARENT_PID", "")
    if os.name != "nt" and parent.isdigit():
        pids.add(int(parent))
    return pids


def _root(server: dict[str, Any]) -> str:
    return server.get("root_dir") or server.get("notebook_dir") or ""


def _serving(servers: list[dict[str, Any]], path: str) -> dict[str, Any] | None:
    """The server whose root holds ``path`` most closely (a server for a subfolder, not one for a parent)."""
    inside = [server for server in servers if _contains(_root(server), path)]
    return max(inside, key=lambda server: len(os.path.realpath(_root(server))), default=None)


def _kernel_server(servers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The running server that started this kernel: the one whose pid is the kernel's parent, else the one whose
    root holds the notebook (JPY_SESSION_NAME, set by Jupyter Server) or the working directory. None when no
    server passes any of these: another user's or another project's server is never a guess."""
    parents = _kernel_parent_pids()
    by_pid = [server for server in servers if server.get("pid") in parents]
    if len(by_pid) == 1:
        return by_pid[0]
    # Several servers in one process (or none known by pid): the notebook's path, then the working directory.
    # JPY_SESSION_NAME is an absolute file path, or a path relative to the server's root that cannot place it.
    notebook = os.environ.get("JPY_SESSION_NAME", "")
    candidates = by_pid or servers
    for path in filter(None, (notebook if os.path.isabs(notebook) else "", os.getcwd())):
        found = _serving(candidates, path)
        if found is not None:
            return found
    return by_pid[0] if by_pid else None


def discover_server() -> tuple[str, str | None]:
    """The URL and token of the Jupyter server that runs this kernel (see AssetsClient)."""
    hub_token = os.environ.get("JUPYTERHUB_API_TOKEN")
    hub_url = os.environ.get("JUPYTERHUB_SERVICE_URL")
    if hub_token and hub_url:
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "")
        parts = urlsplit(_local_url(hub_url))
        path = parts.path if prefix.rstrip("/") in parts.path else prefix  # the bind URL carries the prefix
        return urlunsplit(parts._replace(path=path)), hub_token
    servers = _running_servers()
    chosen = _kernel_server(servers)
    if chosen is not None:
        return _local_url(chosen["url"]), chosen.get("token") or hub_token
    how = "pass the API's URL and a token, e.g. AssetsClient('http://localhost:5121', token='<api key>')"
    if not servers:
        raise ValueError(f"No running Jupyter server was found for this kernel: {how}.")
    others = ", ".join(f"{s.get('url')} (root {_root(s) or '?'}, pid {s.get('pid')})" for s in servers)
    raise ValueError(
        f"None of the {len(servers)} running Jupyter servers runs this kernel (none is its parent process or serves "
        f"{os.getcwd()}): {others}. To use one of them anyway, {how}."
    )


def token_for(url: str) -> str | None:
    """The token of a running Jupyter server at this URL, so that AssetsClient(url) alone works in a notebook."""
    wanted = url.rstrip("/")
    for info in _running_servers():
        if _local_url(str(info.get("url", ""))).rstrip("/") == wanted or str(info.get("url", "")).rstrip("/") == wanted:
            return info.get("token") or None
    return None
