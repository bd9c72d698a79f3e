"""Read callqa's tables with the clients QA managers use (DuckDB, pandas/pyarrow, Polars).

Prints a JSON report for the Rust test to assert on. Usage: read_tables.py OUT_DIR
"""
import json
import sys

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq

out = sys.argv[1]
con = duckdb.connect()
calls = f"read_parquet('{out}/calls/**/*.parquet', hive_partitioning = true)"
utterances = f"read_parquet('{out}/utterances/**/*.parquet', hive_partitioning = true)"
types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {calls})").fetchall())
# A typical notebook query: no casts needed on dates or timestamps.
joined = con.execute(
    f"""SELECT c.call_id, c.call_date, count(u.text) AS n
        FROM {calls} c LEFT JOIN {utterances} u USING (call_id)
        WHERE c.call_date >= DATE '2000-01-01' AND c.processed_at > TIMESTAMPTZ '2000-01-01 00:00:00+00'
        GROUP BY ALL"""
).fetchall()
first_file = next(iter(__import__("glob").glob(f"{out}/calls/*/*.parquet")))
report = {
    "duckdb_calls": con.execute(f"SELECT count(*) FROM {calls}").fetchall()[0][0],
    "duckdb_utterances": con.execute(f"SELECT count(*) FROM {utterances}").fetchall()[0][0],
    "duckdb_call_date_type": types["call_date"],
    "duckdb_processed_at_type": types["processed_at"],
    "duckdb_joined_calls": len(joined),
    "pandas_utterances": len(pd.read_parquet(f"{out}/utterances")),
    "polars_calls": pl.scan_parquet(f"{out}/calls/**/*.parquet", hive_partitioning=True).collect().height,
    "description_of_call_id": pq.read_schema(first_file).field("call_id").metadata[b"description"].decode(),
}
print(json.dumps(report))
