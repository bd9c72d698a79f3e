"""Read every callqa table with PySpark in local mode, as a data team's Spark job would.

Prints a JSON report for the Rust test to assert on: per table the row count and the column
types Spark inferred (no casts, no schema given), and whether a filter on call_date prunes
partitions. Usage: read_spark.py OUT_DIR
"""
import json
import os
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

out = sys.argv[1]
spark = (
    SparkSession.builder.master("local[1]")
    .appName("callqa-interop")
    .config("spark.ui.enabled", "false")
    .config("spark.sql.session.timeZone", "UTC")
    .config("spark.driver.memory", "1g")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
report = {"tables": {}}
for table in sorted(os.listdir(out)):
    path = os.path.join(out, table)
    has_parquet = any(f.endswith(".parquet") for _, _, files in os.walk(path) for f in files)
    if table.startswith((".", "_")) or not os.path.isdir(path) or not has_parquet:
        continue
    frame = spark.read.parquet(path)
    report["tables"][table] = {
        "rows": frame.count(),
        "types": {f.name: f.dataType.simpleString() for f in frame.schema.fields},
    }
calls = spark.read.parquet(os.path.join(out, "calls"))
first = calls.select(F.min("call_date")).first()[0]
one_day = calls.filter(F.col("call_date") == F.lit(first))
plan = one_day._jdf.queryExecution().executedPlan().toString()
filters = plan.split("PartitionFilters: [", 1)[1].split("]", 1)[0] if "PartitionFilters: [" in plan else ""
report["pruning"] = {"date": str(first), "rows": one_day.count(), "partition_filters": filters}
spark.stop()
print(json.dumps(report))
