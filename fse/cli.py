"""The ``fse`` command: serve, migrate, seed (and more as features arrive)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fse.config import Settings


def _serve(args: argparse.Namespace) -> int:
    from fse.serve import PortUnavailable, port_problem, serve

    for flag, env in (("database_url", "FSE_DATABASE_URL"), ("redis_url", "FSE_REDIS_URL")):
        value = getattr(args, flag)
        if value:
            os.environ[env] = value
    settings = Settings()
    host, port = args.host or settings.host, args.port or settings.port
    workers = args.workers or settings.workers
    problem = port_problem(host, port)
    if problem is not None:
        print(problem, file=sys.stderr, flush=True)
        return 1
    print(f"FSE platform on http://{host}:{port}  (FHIR base /fhir, docs /docs)", flush=True)
    print(
        f"database: {_redacted(settings.database_url)}; runtime: "
        f"{'redis' if settings.redis_url else 'in-process'}; workers: {workers}",
        flush=True,
    )
    try:
        return serve(host, port, workers, args.quiet)
    except PortUnavailable as unavailable:
        print(unavailable, file=sys.stderr, flush=True)
        return 1


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _synthetic(settings: Settings, args: argparse.Namespace) -> int:
    from fse.seed.synthetic import AlreadyLoaded, default_jobs, load_synthetic_in_parallel

    def progress(done: int, stored: int, seconds: float) -> None:
        rate = stored / seconds if seconds else 0.0
        eta = (args.synthetic - done) * seconds / done if done else 0.0
        print(
            f"\rsynthetic: {done:,}/{args.synthetic:,} insured "
            f"({100 * done / args.synthetic:.0f}%), "
            f"{stored:,} resources, {rate:,.0f}/s, ETA {eta:,.0f} s ",
            end="",
            file=sys.stderr,
            flush=True,
        )

    began = time.monotonic()
    try:
        stored = load_synthetic_in_parallel(
            settings,
            args.synthetic,
            args.random_seed,
            args.start,
            jobs=args.jobs or default_jobs(settings),
            progress=progress,
        )
    except AlreadyLoaded as exc:
        print(file=sys.stderr)
        print(
            f"fse seed: synthetic {exc}; load more with --start N (past the last loaded family)",
            file=sys.stderr,
        )
        return 1
    print(file=sys.stderr)
    print(
        f"synthetic: {stored:,} resources for {args.synthetic:,} insured in "
        f"{time.monotonic() - began:,.1f} s",
        flush=True,
    )
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with --database-url taking precedence."""
    return Settings(**({"database_url": args.database_url} if args.database_url else {}))


def _migrate(args: argparse.Namespace) -> int:
    from fse.migrate import upgrade

    settings = _settings(args)
    print(f"migrating {_redacted(settings.database_url)} ...", flush=True)
    upgrade(settings.database_url)
    print("schema up to date", flush=True)
    return 0


def _seed(args: argparse.Namespace) -> int:
    from fse.seed import demo_bundle, guide_bundle, load, load_demo_accounts

    settings = _settings(args)
    if args.synthetic:
        return _synthetic(settings, args)
    sets = [("AMO guide", guide_bundle())]
    if not args.guide_only:
        sets.append(("demo data", demo_bundle()))
    for name, bundle in sets:
        created, existing = asyncio.run(load(settings, bundle))
        print(f"{name}: {created} resources created, {existing} already present", flush=True)
    if not args.guide_only:
        created, existing = asyncio.run(load_demo_accounts(settings))
        print(f"demo accounts: {created} created, {existing} already present", flush=True)
    return 0


def _client(args: argparse.Namespace) -> int:
    from fse.db import create_engine
    from fse.security import clients
    from fse.security.auth import REVOCATION_DELAY

    settings = _settings(args)

    async def run() -> int:
        engine = create_engine(settings.database_url)
        try:
            if args.action == "create":
                client, secret = await clients.create_client(engine, args.name, args.scopes)
                print(f"client:        {client.name}")
                print(f"client_id:     {client.client_id}")
                print(f"client_secret: {secret}")
                print(f"scopes:        {client.scopes}")
                print("Keep the secret now: it is stored hashed and cannot be shown again.")
                return 0
            if args.action == "revoke":
                revoked = await clients.revoke_client(engine, args.name)
                if revoked is None:
                    print(f"no active client named {args.name!r}", file=sys.stderr)
                    return 1
                print(
                    f"revoked {revoked.name} ({revoked.client_id}); its tokens stop working "
                    f"within {REVOCATION_DELAY} s"
                )
                return 0
            for client in await clients.list_clients(engine):
                state = "revoked" if client.revoked else "active"
                print(f"{client.name}\t{client.client_id}\t{state}\t{client.scopes}")
            return 0
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _user(args: argparse.Namespace) -> int:
    import getpass

    from fse.accounts import create_account
    from fse.fhir_api.interactions import standalone_service
    from fse.security.users import Role

    settings = _settings(args)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.username}: ")
        if getpass.getpass("again: ") != password:
            print("the two passwords differ", file=sys.stderr)
            return 1

    async def run() -> int:
        async with standalone_service(settings) as service:
            user = await create_account(
                service, args.username, password, Role(args.role), args.name, args.practitioner
            )
        print(f"user {user.username} ({user.role_label}) created")
        if user.signing_jwk:
            print(f"signing key {user.signing_jwk['kid']} sealed under the password", end="")
            print(f"; public key on {user.practitioner}" if user.practitioner else "")
        return 0

    return asyncio.run(run())


def _pay(args: argparse.Namespace) -> int:
    from reimbursement.cli import pay

    return pay(_settings(args))


def _tariffs(args: argparse.Namespace) -> int:
    from reimbursement.cli import tariffs_import

    return tariffs_import(
        _settings(args),
        Path(args.file),
        args.dry_run,
        valid_from=args.valid_from,
        version_id=args.version_id,
    )


def _ledger(args: argparse.Namespace) -> int:
    from reimbursement.cli import ledger_check

    return ledger_check(_settings(args))


def _audit(args: argparse.Namespace) -> int:
    from fse.api_audit import ApiAudit
    from fse.audit_chain import seal, verify
    from fse.db import create_engine
    from fse.fhir_api.interactions import standalone_service

    def progress(links: int) -> None:
        print(f"\raudit: {links:,} links verified ", end="", file=sys.stderr, flush=True)

    async def run() -> int:
        settings = _settings(args)
        if args.action == "seal":  # rows a stopped server left in the access log come first
            async with standalone_service(settings) as fhir:
                converted = await ApiAudit(fhir, settings.payment_timezone).flush()
            if converted:
                print(f"audit: {converted:,} access-log record(s) stored as AuditEvents")
        engine = create_engine(settings.database_url)
        try:
            if args.action == "seal":
                sealed = await seal(engine)
                head = f"head {sealed.head_seq}: {sealed.head}"
                print(f"audit: {sealed.count:,} event(s) sealed; {head}")
                return 0
            report = await verify(engine, progress=progress)
        finally:
            await engine.dispose()
        print(file=sys.stderr)
        if report.ok:
            print(
                f"audit chain intact: {report.links:,} links, head {report.head}; "
                f"{report.unsealed:,} event(s) not sealed yet (fse audit seal)"
            )
            return 0
        print(f"audit chain BROKEN ({len(report.problems)} problem(s)):")
        for problem in report.problems:
            print(f"  {problem}")
        return 1

    return asyncio.run(run())


def _worker(args: argparse.Namespace) -> int:
    from fse.db import create_engine
    from fse.runtime import runtime_for
    from fse.subscriptions.delivery import Round, http_client
    from fse.subscriptions.worker import Worker

    settings = _settings(args)

    def progress(done: Round) -> None:
        print(
            f"worker: {done.delivered} delivered, {done.retrying} to retry, {done.failed} failed",
            flush=True,
        )

    async def run() -> int:
        engine = create_engine(settings.database_url)
        runtime = runtime_for(settings)
        worker = Worker(engine, runtime.events, settings, relays=True, report=progress)
        try:
            if args.once:
                async with http_client(worker.policy) as http:
                    await worker.round(http)
                return 0
            where = "Redis stream" if settings.redis_url else "database polling"
            print(f"worker: delivering Subscriptions ({where}); Ctrl-C stops", flush=True)
            await worker.run()
            return 0
        finally:
            await runtime.close()
            await engine.dispose()

    return asyncio.run(run())


def _sheet(args: argparse.Namespace) -> int:
    from fse.fhir_api.interactions import standalone_service
    from prescriber.verify import verify_sheet

    async def run() -> int:
        async with standalone_service(_settings(args)) as fhir:
            verdict = await verify_sheet(fhir, args.number)
        print(verdict.message)
        return 0 if verdict.valid else 1

    return asyncio.run(run())


def _export(args: argparse.Namespace) -> int:
    import getpass
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from fse.audit import export_event
    from fse.export.ndjson import OutputFile, write_export
    from fse.export.scope import PATIENT, PATIENT_COMPARTMENT, SYSTEM, ExportScope
    from fse.fhir_api.interactions import standalone_service
    from fse.store.dates import date_range
    from fse.store.search_params import SUPPORTED_TYPES

    settings = _settings(args)
    level = PATIENT if args.patient else SYSTEM
    allowed = tuple(PATIENT_COMPARTMENT) if args.patient else SUPPORTED_TYPES
    types = tuple(dict.fromkeys(t.strip() for t in args.type.split(","))) if args.type else allowed
    wrong = [t for t in types if t not in allowed]
    if wrong:
        print(f"fse export: --type: not exportable here: {', '.join(wrong)}", file=sys.stderr)
        return 2
    try:
        since = date_range(args.since)[0] if args.since else None
    except ValueError:
        print(f"fse export: --since: {args.since!r} is not a FHIR instant", file=sys.stderr)
        return 2
    scope = ExportScope(types, since, level, args.patient)
    began = time.monotonic()

    async def progress(rtype: str, lines: int) -> None:
        print(f"\rexport: {rtype} : {lines:,} lignes ", end="", file=sys.stderr, flush=True)

    async def run() -> list[OutputFile]:
        async with standalone_service(settings) as fhir:
            operator = getpass.getuser()
            described = ", ".join(types) + (f" (modifiés depuis le {args.since})" if since else "")
            event = export_event(
                [{"who": {"display": f"{operator} (fse export)"}, "requestor": True}],
                f"l'opérateur {operator} (fse export)",
                described,
                "fse export " + " ".join(sys.argv[2:]),
                args.patient,
                datetime.now(UTC),
                ZoneInfo(settings.payment_timezone),
            )
            async with fhir.store.transaction() as conn:
                if args.patient:
                    await fhir.store.read(conn, "Patient", args.patient)
                await fhir.create(conn, "AuditEvent", event)
            return await write_export(
                fhir.store,
                scope,
                Path(args.out),
                settings.export_max_lines_per_file,
                settings.export_page_size,
                progress,
            )

    outputs = asyncio.run(run())
    seconds = time.monotonic() - began
    print(file=sys.stderr)
    for output in outputs:
        print(f"{Path(args.out) / output.name}\t{output.type}\t{output.count}")
    total = sum(o.count for o in outputs)
    rate = total / seconds if seconds else 0.0
    print(f"export: {total:,} resources in {len(outputs)} file(s), {seconds:,.1f} s, {rate:,.0f}/s")
    return 0


def _cin(args: argparse.Namespace) -> int:
    from fse.crypto.cin import new_key_line, vault_for

    if args.action == "new-key":
        print(new_key_line())
        return 0
    from fse.db import create_engine
    from fse.store.cin_rotation import rotate_cin
    from fse.store.repository import ResourceStore

    settings = _settings(args)
    vault = vault_for(settings)

    def progress(table: str, examined: int, rewritten: int) -> None:
        line = f"\rcin rotate: {table}: {examined:,} rows examined, {rewritten:,} rewritten "
        print(line, end="", file=sys.stderr, flush=True)

    async def run() -> int:
        engine = create_engine(settings.database_url)
        try:
            store = ResourceStore(engine, vault)
            rotation = await rotate_cin(store, args.batch, progress)
        finally:
            await engine.dispose()
        print(file=sys.stderr)
        for table, examined in rotation.examined.items():
            print(f"{table}: {examined:,} examined, {rotation.rewritten[table]:,} rewritten")
        print(f"every stored CIN is sealed under key '{vault.current}'")
        return 0

    return asyncio.run(run())


def _keys(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from fse.crypto.key_ring import read_ring, rotate
    from fse.crypto.tokens import load_or_create_key

    settings = Settings()

    def when(epoch: float) -> str:
        return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")

    if args.action == "rotate":
        try:
            rotation = rotate(
                settings.token_keys_file,
                settings.signing_key_file,
                settings.token_ttl_seconds,
                settings.token_keys_check_seconds,
                revoke=args.revoke,
            )
        except OSError as exc:
            print(
                f"fse keys rotate: nothing changed: {exc}. Run it as the user the servers run "
                "as, from their folder, with their FSE_TOKEN_KEYS_FILE and FSE_SIGNING_KEY_FILE",
                file=sys.stderr,
            )
            return 1
        ring = rotation.ring
        print(f"new token signing key: {ring.current.kid} (signs every new token)")
        for old in ring.previous:
            if args.revoke:
                print(f"previous key {old.key.kid}: revoked, its tokens are refused now")
            else:
                print(f"previous key {old.key.kid}: tokens accepted until {when(old.retires_at)}")
        for kid in rotation.dropped:
            print(f"retired key {kid}: removed from the ring")
        print(
            f"written to {settings.token_keys_file.resolve()}; every worker uses it within "
            f"{settings.token_keys_check_seconds:g} s, without a restart (copy the file to "
            "servers that do not share this folder)"
        )
        return 0
    platform = load_or_create_key(settings.signing_key_file)
    ring = read_ring(settings.token_keys_file, platform)
    now = time.time()
    print(f"current {ring.current.kid}: signs new tokens")
    for old in ring.previous:
        state = "accepted until" if old.retires_at > now else "retired since"
        print(f"previous {old.key.kid}: {state} {when(old.retires_at)}")
    if ring.current.kid != platform.kid:
        print(f"platform key {platform.kid}: signs receipts (published, signs no token)")
    return 0


def _access(_args: argparse.Namespace) -> int:
    from fse.security.access import markdown_table

    print(markdown_table(), end="")
    return 0


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
    seed.add_argument("--synthetic", type=int, metavar="N", help="N synthetic insured and families")
    seed.add_argument("--start", type=int, default=0, help="first synthetic family (to add more)")
    seed.add_argument("--random-seed", type=int, default=2026, help="seed of the generator")
    seed.add_argument(
        "--jobs",
        type=int,
        help="synthetic loader processes (default: one per core on PostgreSQL, 1 on SQLite)",
    )
    seed.add_argument("--database-url")
    seed.set_defaults(run=_seed)
    client = sub.add_parser("client", help="CNSS system clients (OAuth2 client credentials)")
    client_sub = client.add_subparsers(dest="action", required=True)
    create = client_sub.add_parser("create", help="register a client; prints its secret once")
    create.add_argument("name")
    create.add_argument("--scopes", required=True, help='e.g. "system/Claim.rs system/Patient.rs"')
    revoke = client_sub.add_parser("revoke", help="revoke a client")
    revoke.add_argument("name")
    client_sub.add_parser("list", help="list clients")
    client.add_argument("--database-url")
    client.set_defaults(run=_client)

    user = sub.add_parser("user", help="people who log in to the web UI")
    user_sub = user.add_subparsers(dest="action", required=True)
    user_create = user_sub.add_parser("create", help="create a user (password prompted)")
    user_create.add_argument("username")
    user_create.add_argument(
        "--role", required=True, choices=["prescriber", "pharmacist", "lab", "cnss_agent"]
    )
    user_create.add_argument("--name", required=True, help="display name, e.g. 'Dr Karim Benali'")
    user_create.add_argument("--practitioner", help="Practitioner/<id> of a professional")
    user_create.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    user.add_argument("--database-url")
    user.set_defaults(run=_user)

    pay = sub.add_parser("pay", help="pay approved benefits now: batch, pain.001 file, ledger")
    pay.add_argument("--database-url")
    pay.set_defaults(run=_pay)

    ledger = sub.add_parser("ledger", help="the reimbursement ledger")
    ledger_sub = ledger.add_subparsers(dest="action", required=True)
    check = ledger_sub.add_parser("check", help="prove it balances and that nothing was paid twice")
    check.add_argument("--database-url", default=argparse.SUPPRESS)
    ledger.add_argument("--database-url")
    ledger.set_defaults(run=_ledger)

    audit = sub.add_parser("audit", help="the hash-chained audit trail")
    audit_sub = audit.add_subparsers(dest="action", required=True)
    audit_sub.add_parser(
        "seal",
        help="store what the access log still holds as AuditEvents, then chain the audit "
        "events written since the last seal",
    )
    audit_sub.add_parser("verify", help="prove no audit event was altered or removed")
    audit.add_argument("--database-url")
    audit.set_defaults(run=_audit)

    tariffs = sub.add_parser("tariffs", help="reference tariffs (TNR) and medicines list")
    tariffs_sub = tariffs.add_subparsers(dest="action", required=True)
    imported = tariffs_sub.add_parser(
        "import",
        help="publish a new dated version (TNR or medicines list) from a JSON file, or the "
        "CNOPS medicines list from its published CSV",
    )
    imported.add_argument(
        "file", help="a version in the format of reimbursement/data/, or the CNOPS list's CSV"
    )
    imported.add_argument("--dry-run", action="store_true", help="report the changes only")
    imported.add_argument(
        "--valid-from", help="CSV only: first day of care priced on it (AAAA-MM-JJ)"
    )
    imported.add_argument(
        "--id", dest="version_id", help="CSV only: the version's id (default cnops-YYYYMMDD)"
    )
    imported.add_argument("--database-url", default=argparse.SUPPRESS)
    tariffs.add_argument("--database-url")
    tariffs.set_defaults(run=_tariffs)

    worker = sub.add_parser(
        "worker", help="relay the outbox and deliver FHIR Subscriptions (rest-hook)"
    )
    worker.add_argument("--once", action="store_true", help="one round, then exit")
    worker.add_argument("--database-url")
    worker.set_defaults(run=_worker)

    sheet = sub.add_parser("sheet", help="care sheets")
    sheet_sub = sheet.add_subparsers(dest="action", required=True)
    verify = sheet_sub.add_parser("verify", help="check a sheet's signature with the public key")
    verify.add_argument("number", help="care-sheet number, e.g. FSE-2026-000000001-44")
    verify.add_argument("--database-url", default=argparse.SUPPRESS)
    sheet.add_argument("--database-url")
    sheet.set_defaults(run=_sheet)

    export = sub.add_parser("export", help="bulk export to NDJSON files (as $export does)")
    export.add_argument("--out", required=True, help="folder of the NDJSON files")
    export.add_argument("--type", help="comma-separated resource types (default: every type)")
    export.add_argument("--since", help="only resources changed after this FHIR instant")
    export.add_argument("--patient", help="one insured's compartment (Patient id)")
    export.add_argument("--database-url")
    export.set_defaults(run=_export)

    cin = sub.add_parser("cin", help="the insured's CIN, sealed at rest (docs/security.md)")
    cin_sub = cin.add_subparsers(dest="action", required=True)
    rotate = cin_sub.add_parser(
        "rotate", help="seal every stored CIN under the current key (first of FSE_CIN_KEYS)"
    )
    rotate.add_argument("--batch", type=int, default=500, help="rows per transaction")
    rotate.add_argument("--database-url", default=argparse.SUPPRESS)
    cin_sub.add_parser("new-key", help="print a new id:base64 key for FSE_CIN_KEYS")
    cin.add_argument("--database-url")
    cin.set_defaults(run=_cin)

    keys = sub.add_parser("keys", help="the access tokens' signing keys (docs/operations.md)")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    keys_rotate = keys_sub.add_parser(
        "rotate", help="a new key signs tokens; the old one verifies until its tokens expire"
    )
    keys_rotate.add_argument(
        "--revoke",
        action="store_true",
        help="the old key leaked: refuse it and its tokens now (clients ask for a new token)",
    )
    keys_sub.add_parser("list", help="the keys of the ring and until when each is accepted")
    keys.set_defaults(run=_keys)

    access = sub.add_parser(
        "access", help="print the access model: who may do what, through each door"
    )
    access.set_defaults(run=_access)

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
