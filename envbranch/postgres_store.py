"""The PostgreSQL event store, over TLS when POSTGRES_SSLMODE (and the certificates) say so.

eventsourcing reads the host, port, database, user and password from POSTGRES_*, not
libpq's TLS parameters: this factory adds them to its connection pool before the pool
opens, so the event store connects as the read model and the relay's LISTEN do
(``projections.sql.libpq_tls``).
"""

from __future__ import annotations

from eventsourcing.persistence import InfrastructureFactoryError
from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import Environment, EnvType

from projections.sql import LIBPQ_TLS


class TlsPostgresFactory(PostgresFactory):
    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        tls = {param: self.env.get(name) for name, param in LIBPQ_TLS.items()}
        kwargs = self.datastore.pool.kwargs
        if not isinstance(kwargs, dict):
            raise InfrastructureFactoryError("the connection pool takes no keyword arguments")
        kwargs.update({param: value for param, value in tls.items() if value})
