"""notes.done, longer titles (a batch migration: SQLite rebuilds the table)

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade():
    with op.batch_alter_table("notes") as batch:
        batch.add_column(sa.Column("done", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.alter_column("title", type_=sa.String(200))


def downgrade():
    with op.batch_alter_table("notes") as batch:
        batch.drop_column("done")
        batch.alter_column("title", type_=sa.String(100))
