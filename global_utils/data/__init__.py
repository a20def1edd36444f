"""PostgreSQL: the connection pool, the unit of work, SQL helpers."""
