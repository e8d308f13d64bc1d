"""The run dashboard: a local, read-only web app over the run directories under one folder.

Pages are built from the journal and small side records (measured values, LLM calls), never by
loading a run's data; rows are read one shard at a time, only for a row's lineage, examples and
searches. Everything shown from data is escaped; nothing outside the runs folder is served.
Start it with ``prepflow ui RUNS_DIR`` (needs the ``ui`` extra: starlette and uvicorn).
"""
