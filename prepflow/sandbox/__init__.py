"""Isolated execution of untrusted code: programs (coming with the sandbox) and SQL
(:mod:`prepflow.sandbox.sql`). Uses only :mod:`prepflow.core`."""
