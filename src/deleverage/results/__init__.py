"""Results: the run result, the event log and the DuckDB store."""
