"""The ``jupyter-assets`` command (also ``jupyter assets``): serve, keys, token, migrate, copy-catalog, export."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import timedelta
from pathlib import Path

from jupyter_core.paths import jupyter_config_path
from traitlets.config import Application

from .app import DEFAULT_STANDALONE_PORT, AssetsApp, serve
from .auth import ALL_SCOPES, mint_jwt, parse_scopes
from .auth.keys import ApiKeys
from .catalog import EXPORTABLE_TABLES, Catalog, CatalogLockedError, CatalogUnreachableError, open_catalog
from .catalog.copying import LIBRARY_FILES_PROFILE, TargetNotEmptyError, copy_catalog
from .errors import ConfigurationError


def _app(args: argparse.Namespace) -> AssetsApp:
    """The settings, as inside Jupyter: JUPYTER_ASSETS_* variables give the defaults, c.AssetsApp.* in
    jupyter_server_config files override them, then --AssetsApp.name=value options and --root."""
    app = AssetsApp()
    Application.load_config_file(app, "jupyter_server_config", path=jupyter_config_path())
    app.parse_command_line(args.traits)
    if getattr(args, "root", None):
        app.root_dir = args.root
    if getattr(args, "catalog_url", None):
        app.catalog_url = args.catalog_url
    return app


def _catalog(app: AssetsApp) -> Catalog:
    try:
        return open_catalog(Path(app.root_dir).expanduser().resolve(), app.catalog_url, app.catalog_pool_size)
    except CatalogLockedError as error:
        sys.exit(
            f"error: {error}\nStop the server first, or manage keys over HTTP with an admin credential: "
            "GET/POST /api/v1/system/api-keys, DELETE /api/v1/system/api-keys/<id>."
        )
    except CatalogUnreachableError as error:
        sys.exit(f"error: {error}")


def _parse_ttl(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}; use e.g. 90s, 30m, 1h, 7d")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 1}[match.group(2)]
    return timedelta(seconds=int(match.group(1)) * unit)


def _scopes(text: str) -> frozenset[str]:
    try:
        return parse_scopes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def cmd_serve(args: argparse.Namespace) -> None:
    app = _app(args)
    if args.workers is not None:
        app.workers = args.workers

    def announce_first_key(service) -> None:  # noqa: ANN001
        # Auth is always required: with nothing configured, create a key on first start and show it once.
        if app.api_keys or app.jwt_secret or app.jwt_public_key or service.api_keys.records():
            return
        key, _ = service.api_keys.create("first-start", ALL_SCOPES)
        print(
            f"jupyter-assets: no credentials were configured; created an admin API key:\n\n    {key}\n",
            flush=True,
        )

    try:
        serve(app, args.ip, args.port, on_ready=announce_first_key)
    except (CatalogLockedError, CatalogUnreachableError, ConfigurationError) as error:
        sys.exit(f"error: {error}")


def cmd_migrate(args: argparse.Namespace) -> None:
    """Opening a catalog migrates it (under an advisory lock on PostgreSQL, so running servers are safe)."""
    catalog = _catalog(_app(args))
    try:
        print(f"The catalog is at schema version {catalog.schema_version()}.")
    finally:
        catalog.close()


def _open(location: str) -> tuple[Catalog, Path]:
    """A catalog named on the command line (a PostgreSQL URL, a catalog.duckdb file or a library folder) and the
    folder a one-server library keeps its files in."""
    if location.startswith(("postgresql://", "postgres://")):
        root = Path(".")
        url: str | None = location
    else:
        path = Path(location).expanduser().resolve()
        root, url = (path.parent if path.suffix == ".duckdb" else path), None
        if not root.is_dir():
            sys.exit(f"error: no library at {location}")
    try:
        return open_catalog(root, url), root / "files"
    except (CatalogLockedError, CatalogUnreachableError) as error:
        sys.exit(f"error: {error}")


def cmd_copy_catalog(args: argparse.Namespace) -> None:
    source, source_files = _open(args.source)
    try:
        target, _ = _open(args.target)
        try:
            report = copy_catalog(source, target, source_files)
        except TargetNotEmptyError as error:
            sys.exit(f"error: {error}")
        finally:
            target.close()
    finally:
        source.close()
    print("Copied:", ", ".join(f"{count} {table}" for table, count in report.rows.items() if count) or "nothing")
    if report.library_files_profile:
        print(f"Assets that had no storage profile now use the local profile {LIBRARY_FILES_PROFILE!r} at "
              f"{source_files}: every server of the team must reach that folder.")  # fmt: skip


def cmd_keys(args: argparse.Namespace) -> None:
    catalog = _catalog(_app(args))
    keys = ApiKeys(catalog)
    try:
        if args.keys_command == "create":
            replaced = keys.revoke_named(args.name) if args.replace else 0
            key, _ = keys.create(args.name, args.scopes)
            if replaced and not args.quiet:
                print(f"Revoked {replaced} earlier key(s) named '{args.name}'.")
            if args.quiet:
                print(key)
            else:
                print(f"Created API key '{args.name}' ({' '.join(sorted(args.scopes))}). It is shown only once:\n")
                print(f"    {key}\n")
        elif args.keys_command == "list":
            records = keys.records()
            if args.json:
                print(json.dumps([r.to_json() for r in records], indent=2))
            for r in [] if args.json else records:
                state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
                print(f"{r.id}  {r.name:<20} {r.prefix}…  {' '.join(r.scopes):<60} {state}")
        elif args.keys_command == "revoke":
            if keys.revoke(args.key) == 0:
                sys.exit(f"error: no active key with id or name {args.key!r}")
            print(f"Revoked {args.key}.")
    finally:
        catalog.close()


def cmd_token(args: argparse.Namespace) -> None:
    app = _app(args)
    private_key = Path(args.private_key).read_text() if args.private_key else None
    try:
        token = mint_jwt(
            args.sub,
            args.scopes,
            args.ttl,
            secret=app.jwt_secret,
            private_key=private_key,
            algorithm=args.algorithm,
            issuer=app.jwt_issuer,
            audience=app.jwt_audience,
        )
    except ValueError as error:
        sys.exit(f"error: {error}")
    print(token)


def cmd_export(args: argparse.Namespace) -> None:
    """Whoever can open the catalog file owns the library: the export covers everything."""
    catalog = _catalog(_app(args))
    destination = Path(args.directory)
    destination.mkdir(parents=True, exist_ok=True)
    try:
        for table in args.tables or EXPORTABLE_TABLES:
            target = destination / (table if table == "events" else f"{table}.parquet")
            catalog.analytics.export_parquet(table, target, visible_to=None)
            print(f"wrote {target}")
    finally:
        catalog.close()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="jupyter-assets", description="An image asset library for Jupyter.")
    commands = top.add_subparsers(dest="command", required=True)

    def with_root(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--root", help="library folder (default: $JUPYTER_ASSETS_ROOT or <jupyter data dir>/assets)")
        sub.add_argument(
            "--catalog-url", help="PostgreSQL catalog of a team library (default: $JUPYTER_ASSETS_CATALOG_URL)"
        )
        return sub

    serve_parser = with_root(commands.add_parser("serve", help="run the HTTP API without Jupyter"))
    serve_parser.add_argument("--port", type=int, default=DEFAULT_STANDALONE_PORT)
    serve_parser.add_argument("--ip", default="127.0.0.1")
    serve_parser.add_argument("--workers", type=int, help="enrichment worker threads (0: queue jobs, run none)")
    serve_parser.set_defaults(handler=cmd_serve)

    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = with_root(key_commands.add_parser("create", help="create a key (printed once)"))
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", type=_scopes, default=ALL_SCOPES, help="space/comma separated")
    create.add_argument("--quiet", action="store_true", help="print only the key")
    create.add_argument("--replace", action="store_true", help="revoke the active keys of this name first")
    listing = with_root(key_commands.add_parser("list", help="list keys (never the keys themselves)"))
    listing.add_argument("--json", action="store_true")
    revoke = with_root(key_commands.add_parser("revoke", help="revoke a key by id or name"))
    revoke.add_argument("key")
    keys.set_defaults(handler=cmd_keys)

    token = with_root(commands.add_parser("token", help="mint a JWT with the configured secret or a private key"))
    token.add_argument("--sub", required=True)
    token.add_argument("--scopes", type=_scopes, default=ALL_SCOPES)
    token.add_argument("--ttl", type=_parse_ttl, default=timedelta(hours=1))
    token.add_argument("--private-key", help="PEM private key file (RS256/ES256) instead of the HS256 secret")
    token.add_argument("--algorithm", choices=["RS256", "ES256"], help="with --private-key (default RS256)")
    token.set_defaults(handler=cmd_token)

    migrate = with_root(commands.add_parser("migrate", help="bring the catalog's schema up to date, and nothing else"))
    migrate.set_defaults(handler=cmd_migrate)

    copy = commands.add_parser(
        "copy-catalog", help="copy a library's catalog into an empty one (a one-server library into a team library)"
    )
    copy.add_argument("--from", dest="source", required=True, help="PostgreSQL URL, catalog.duckdb or library folder")
    copy.add_argument("--to", dest="target", required=True, help="PostgreSQL URL of the team library")
    copy.set_defaults(handler=cmd_copy_catalog)

    export = with_root(commands.add_parser("export", help="write the catalog as Parquet for analytics"))
    export.add_argument("directory")
    export.add_argument("--tables", nargs="*", choices=EXPORTABLE_TABLES)
    export.set_defaults(handler=cmd_export)
    return top


def main(argv: list[str] | None = None) -> None:
    args, rest = parser().parse_known_args(argv)
    unknown = [option for option in rest if not option.startswith("--AssetsApp.")]
    if unknown:
        parser().error(f"unrecognized arguments: {' '.join(unknown)}")
    args.traits = rest
    args.handler(args)


if __name__ == "__main__":
    main()
