"""Alembic's environment for the state store.

The backend runs it through ``rlthf_backend.store.database.migrate`` with an open connection
(in ``config.attributes["connection"]``), under its lock. From the ``alembic`` command line it
connects to the database the settings name (``RLTHF_DATABASE_URL``, else the SQLite file in
``RLTHF_DATA_DIR``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from rlthf_backend.store.schema import metadata


def run(connection: Connection) -> None:
    # SQLite alters a table by copying it ("batch" mode); PostgreSQL alters it in place.
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_from_settings() -> None:
    from rlthf_backend.app.settings import Settings
    from rlthf_backend.store.database import create_engine_for

    engine = create_engine_for(Settings().database_url_resolved())
    try:
        with engine.connect() as connection:
            run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    from rlthf_backend.app.settings import Settings
    from rlthf_backend.store.database import engine_url

    context.configure(url=engine_url(Settings().database_url_resolved()), target_metadata=metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif context.config.attributes.get("connection") is not None:
    run(context.config.attributes["connection"])
else:
    run_from_settings()
