"""Settings from the environment (prefix ``FSE_``), built by the app factory, never at import."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fse.addresses import trusted_networks

DEFAULT_SQLITE_PATH = Path("var") / "fse.sqlite3"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FSE_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}",
        description="SQLAlchemy async URL; postgresql:// URLs are mapped to asyncpg.",
    )
    redis_url: str | None = Field(default=None, description="Unset: in-process runtime services.")
    redis_namespace: str = "fse"
    redis_timeout_seconds: float = Field(
        default=0.5,
        gt=0,
        description="Longest a Redis operation may take; past it, Redis counts as down.",
    )
    redis_retry_seconds: float = Field(
        default=1.0,
        gt=0,
        description="While Redis is down, how often it is asked again (in the background).",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    base_url: str = Field(
        default="", description="Public base of the FHIR API; empty: from request."
    )
    db_pool_size: int = 20
    max_body_bytes: int = 5 * 1024 * 1024
    body_timeout_seconds: float = 30
    max_bundle_entries: int = 500
    default_page_size: int = 20
    max_page_size: int = 200
    token_ttl_seconds: int = Field(default=300, description="Lifetime of access tokens.")
    token_audience: str = Field(default="urn:fse:fhir", description="iss and aud of our tokens.")
    signing_key_file: Path = Field(
        default=Path("var") / "token-signing-key.pem",
        description="The platform's P-256 key: signs receipts, derives access codes, and signs "
        "access tokens until the first `fse keys rotate`; created (mode 600) if absent.",
    )
    token_keys_file: Path = Field(
        default=Path("var") / "token-keys.json",
        description="The token signing key ring written by `fse keys rotate` (mode 600).",
    )
    token_keys_check_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often a worker looks whether the token key ring file changed.",
    )
    cin_keys: str = Field(
        default="",
        description="CIN encryption keys 'id:base64,id:base64' (first seals); empty: cin_key_file.",
    )
    cin_index_key: str = Field(
        default="", description="Key of the CIN blind index (base64); empty: cin_key_file."
    )
    cin_key_file: Path = Field(
        default=Path("var") / "cin-keys.json",
        description="CIN keys when FSE_CIN_KEYS is unset; created (mode 600) if absent.",
    )
    rate_limit_per_minute: int = Field(
        default=6000, description="Requests per minute per client address; 0 disables."
    )
    rate_limit_per_system_client: int = Field(
        default=6000, description="FHIR requests per minute per system client; 0 disables."
    )
    rate_limit_per_user: int = Field(
        default=600, description="FHIR requests per minute per signed-in user; 0 disables."
    )
    trusted_proxies: str = Field(
        default="",
        description="Proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For/-Proto count.",
    )
    login_failures_per_account: int = Field(
        default=10, description="Failed logins per username per window before refusal; 0 off."
    )
    login_failures_per_address: int = Field(
        default=50, description="Failed logins per client address per window; 0 disables."
    )
    login_failure_window_seconds: int = Field(
        default=900, gt=0, description="Window over which failed logins are counted."
    )
    token_failures_per_client: int = Field(
        default=10, description="Failed /auth/token authentications per client id; 0 disables."
    )
    token_failures_per_address: int = Field(
        default=50, description="Failed /auth/token authentications per address; 0 disables."
    )
    token_failure_window_seconds: int = Field(
        default=900, gt=0, description="Window over which failed token requests are counted."
    )
    payment_cutoffs: str = Field(
        default="11:00,16:00", description="Daily payment cut-offs (HH:MM, comma-separated)."
    )
    payment_timezone: str = Field(default="Africa/Casablanca", description="Zone of the cut-offs.")
    clock_tolerance_seconds: int = Field(
        default=300,
        ge=0,
        description="Clock skew allowed before a date of care, creation or dispense is refused "
        "as in the future (FSE-0034).",
    )
    payment_schedule: bool = Field(
        default=True, description="Run a payment batch at each cut-off inside the server."
    )
    payments_dir: Path = Field(
        default=Path("var") / "payments", description="Where pain.001 transfer files are written."
    )
    audit_seal_seconds: float = Field(
        default=5.0, description="How often the server seals new audit events; 0 disables."
    )
    audit_read_window_seconds: float = Field(
        default=600.0,
        ge=0,
        description="A screen's reads of the same insured by the same person for the same purpose "
        "within this many seconds of the recorded one are one consultation, recorded once; 0 "
        "records every page.",
    )
    outbox_relay_seconds: float = Field(
        default=1.0, description="How often the server relays outbox events; 0 disables."
    )
    outbox_keep_days: float = Field(
        default=7.0,
        description="Days an outbox event is kept once published and dispatched; 0 keeps all.",
    )
    api_audit_flush_seconds: float = Field(
        default=1.0, description="How often API access AuditEvents are written in a batch."
    )
    subscription_worker_in_server: bool = Field(
        default=True,
        description="Deliver Subscriptions from the server; false when `fse worker` runs apart.",
    )
    subscription_poll_seconds: float = Field(
        default=1.0, description="Longest wait between two delivery rounds."
    )
    subscription_lease_seconds: float = Field(
        default=60.0, description="After this, a delivery a dead worker held is posted again."
    )
    subscription_retry_base_seconds: float = Field(
        default=5.0, description="First retry delay after a failed post; doubles each time."
    )
    subscription_retry_max_seconds: float = Field(
        default=3600.0, description="Longest delay between two attempts."
    )
    subscription_max_attempts: int = Field(
        default=12, description="Attempts before a delivery is marked failed in the log."
    )
    subscription_timeout_seconds: float = Field(
        default=10.0, description="How long a receiver has to answer a notification."
    )
    pharmacy_access_code: bool = Field(
        default=False,
        description="Pharmacies must type the care sheet's access code (patient copy) too.",
    )
    pharmacy_lookups_per_hour: int = Field(
        default=120, description="Insured lookups per pharmacist per hour; 0 disables."
    )
    reference_data_dir: Path = Field(
        default=Path("var") / "reference-data",
        description="TNR and medicines versions published by `fse tariffs import`.",
    )
    export_dir: Path = Field(
        default=Path("var") / "exports",
        description="Where bulk $export jobs write their NDJSON files (one folder per job).",
    )
    export_max_lines_per_file: int = Field(
        default=100_000, gt=0, description="A bulk export type's file is split past these lines."
    )
    export_page_size: int = Field(
        default=1000, gt=0, description="Rows read per keyset page while exporting."
    )
    payer_name: str = "Caisse Nationale de Sécurité Sociale"
    payer_iban: str = Field(
        default="MA64007780000000000000012382",
        description="CNSS account debited by transfers; the default is DEMO data, not an account.",
    )

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        return async_database_url(url)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        trusted_networks(value)  # a typo must stop the server, not silently trust nobody
        return value

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")


def async_database_url(url: str) -> str:
    """Accept the URLs people type (postgresql://, sqlite:///) and pick our async drivers."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql+psycopg://", "postgresql+asyncpg://"),
        ("sqlite:///", "sqlite+aiosqlite:///"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url
