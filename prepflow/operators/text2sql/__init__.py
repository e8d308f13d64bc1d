"""Text-to-SQL operators: SQL and questions generated from a database's schema and verified by
execution on a read-only database, difficulty, chain of thought checked against the gold
result, decontamination, export and execution accuracy. Databases are reached only through
``ctx.database(source, db_id)``; results are compared by :mod:`.compare`."""
