"""The database: the `Store` interface, SQLite and PostgreSQL behind it, migrations, group
commit, and the state several node instances share."""
