"""provider_days: each provider's accepted NGAP acts per care day, kept as sheets settle

The volume rule (a provider's acts on the sheet's day) and the peers' daily mean counted the
day's settlement lines on every sheet: their cost grew with the provider's day and the nation's.
The settlement now adds its acts to one row per provider and day in its own statement; this
migration fills the rows from the lines already settled, counted as the rule counted them.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_days",
        sa.Column("care_date", sa.Date(), nullable=False),
        sa.Column("provider_ref", sa.String(length=140), nullable=False),
        sa.Column("ngap_acts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("care_date", "provider_ref", name=op.f("pk_provider_days")),
    )
    op.execute(
        "INSERT INTO provider_days (care_date, provider_ref, ngap_acts)"
        " SELECT care_date, provider_ref, count(*) FROM settlement_lines"
        " WHERE kind = 'ngap' AND accepted GROUP BY care_date, provider_ref"
    )


def downgrade() -> None:
    op.drop_table("provider_days")
