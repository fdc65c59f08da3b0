"""The ``fse`` command: serve, migrate, seed (and more as features arrive)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from fse.config import Settings


def _serve(args: argparse.Namespace) -> int:
    from fse.serve import serve

    for flag, env in (("database_url", "FSE_DATABASE_URL"), ("redis_url", "FSE_REDIS_URL")):
        value = getattr(args, flag)
        if value:
            os.environ[env] = value
    settings = Settings()
    host, port = args.host or settings.host, args.port or settings.port
    workers = args.workers or settings.workers
    print(f"FSE platform on http://{host}:{port}  (FHIR base /fhir, docs /docs)", flush=True)
    print(
        f"database: {_redacted(settings.database_url)}; runtime: "
        f"{'redis' if settings.redis_url else 'in-process'}; workers: {workers}",
        flush=True,
    )
    return serve(host, port, workers, args.quiet)


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _migrate(args: argparse.Namespace) -> int:
    from fse.migrate import upgrade

    settings = Settings(**({"database_url": args.database_url} if args.database_url else {}))
    print(f"migrating {_redacted(settings.database_url)} ...", flush=True)
    upgrade(settings.database_url)
    print("schema up to date", flush=True)
    return 0


def _seed(args: argparse.Namespace) -> int:
    from fse.seed import demo_bundle, guide_bundle, load

    settings = Settings(**({"database_url": args.database_url} if args.database_url else {}))
    sets = [("AMO guide", guide_bundle())]
    if not args.guide_only:
        sets.append(("demo data", demo_bundle()))
    for name, bundle in sets:
        created, existing = asyncio.run(load(settings, bundle))
        print(f"{name}: {created} resources created, {existing} already present", flush=True)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from fse.bench import run

    return run(args.workers, args.clients, args.seconds)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fse", description="AMO electronic care sheet platform")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the platform (HTTP)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="server processes (default FSE_WORKERS or 1)")
    serve.add_argument("--database-url")
    serve.add_argument("--redis-url")
    serve.add_argument("--quiet", action="store_true", help="no access log")
    serve.set_defaults(run=_serve)

    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    migrate.add_argument("--database-url")
    migrate.set_defaults(run=_migrate)

    seed = sub.add_parser("seed", help="load the AMO guide and the demo data set")
    seed.add_argument("--demo", action="store_true", help="the guide and the demo data (default)")
    seed.add_argument("--guide-only", action="store_true", help="only the AMO guide's definitions")
    seed.add_argument("--database-url")
    seed.set_defaults(run=_seed)
    bench = sub.add_parser("bench", help="benchmark the FHIR API on PostgreSQL over HTTP")
    bench.add_argument("--workers", type=int, default=2, help="server processes (default 2)")
    bench.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    bench.add_argument("--seconds", type=float, default=15, help="per operation (default 15)")
    bench.set_defaults(run=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("FSE_DEBUG"):
            raise
        print(f"fse {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        if "no such table" in str(exc) or "does not exist" in str(exc):
            print("hint: run `fse migrate` first (or `make run`)", file=sys.stderr)
        elif "connect" in str(exc).lower():
            print("hint: is the database at FSE_DATABASE_URL running?", file=sys.stderr)
        print("set FSE_DEBUG=1 for the full traceback", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
