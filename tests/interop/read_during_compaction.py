"""Query callqa's tables over and over while `callqa compact` runs, as a notebook would.

Every round reads each table with pyarrow and with DuckDB and compares the rows per call with
the expected counts. A read that fails because a file it listed was swapped away is counted
as a retry (the query is simply run again); a read that succeeds with other counts is a
mismatch. Writes STOP_FILE.ready once its imports are done; stops when STOP_FILE exists, then
prints a JSON report.

Usage: read_during_compaction.py OUT_DIR EXPECTED_JSON STOP_FILE
EXPECTED_JSON: {"table": {"call_id": rows, ...}, ...}
"""
import collections
import json
import os
import sys

import duckdb
import pyarrow.dataset as ds

out, expected_path, stop_file = sys.argv[1:4]
expected = json.load(open(expected_path))
report = {"rounds": 0, "reads": 0, "retries": 0, "mismatches": []}
con = duckdb.connect()
# Imported and connected: the caller may start the compaction now.
open(f"{stop_file}.ready", "w").close()


def pyarrow_counts(table):
    data = ds.dataset(f"{out}/{table}", format="parquet", partitioning="hive").to_table(columns=["call_id"])
    return collections.Counter(data.column("call_id").to_pylist())


def duckdb_counts(table):
    rows = con.execute(
        f"SELECT call_id, count(*) FROM read_parquet('{out}/{table}/**/*.parquet', hive_partitioning = true) GROUP BY call_id"
    ).fetchall()
    return collections.Counter(dict(rows))


while True:
    last = os.path.exists(stop_file)
    for table, counts in expected.items():
        for client, read in (("pyarrow", pyarrow_counts), ("duckdb", duckdb_counts)):
            try:
                found = read(table)
            except (OSError, duckdb.Error) as e:
                report["retries"] += 1
                continue
            report["reads"] += 1
            if dict(found) != counts:
                diff = {k: (counts.get(k, 0), found.get(k, 0)) for k in set(counts) | set(found) if counts.get(k, 0) != found.get(k, 0)}
                report["mismatches"].append({"table": table, "client": client, "diff": dict(list(diff.items())[:5])})
    report["rounds"] += 1
    if last:
        break
print(json.dumps(report))
