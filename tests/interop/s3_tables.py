"""The S3 side of tests/object_storage.rs, against a loopback S3 server (moto).

  s3_tables.py ENDPOINT put BUCKET PREFIX FOLDER   upload FOLDER's files under s3://BUCKET/PREFIX/
  s3_tables.py ENDPOINT get BUCKET PREFIX FOLDER   download s3://BUCKET/PREFIX/ into FOLDER
  s3_tables.py ENDPOINT read BUCKET PREFIX         read the tables where they lie with pyarrow
                                                   and Polars; print rows per table as JSON
  s3_tables.py ENDPOINT keys BUCKET PREFIX         print the keys under the prefix as JSON
"""
import json
import os
import sys

import boto3

endpoint, action, bucket, prefix = sys.argv[1:5]
credentials = dict(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
s3 = boto3.client("s3", endpoint_url=endpoint, **credentials)


def keys():
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


if action == "put":
    if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=bucket)
    folder = sys.argv[5]
    for name in sorted(os.listdir(folder)):
        s3.upload_file(os.path.join(folder, name), bucket, f"{prefix}/{name}")
elif action == "get":
    folder = sys.argv[5]
    for key in keys():
        target = os.path.join(folder, key[len(prefix) + 1 :])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        s3.download_file(bucket, key, target)
elif action == "keys":
    print(json.dumps(keys()))
elif action == "read":
    import polars as pl
    import pyarrow.dataset as ds
    from pyarrow import fs

    host = endpoint.split("://", 1)[1]
    arrow_fs = fs.S3FileSystem(
        access_key="test", secret_key="test", region="us-east-1", endpoint_override=host, scheme="http"
    )
    report = {}
    for table in ["calls", "speech", "events", "failures", "runs"]:
        partitioning = "hive" if table in ("calls", "speech", "events") else None
        data = ds.dataset(f"{bucket}/{prefix}/{table}", filesystem=arrow_fs, format="parquet", partitioning=partitioning)
        report[f"pyarrow_{table}"] = data.count_rows()
    options = {
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "aws_region": "us-east-1",
        "aws_endpoint_url": endpoint,
        "aws_allow_http": "true",
    }
    calls = pl.scan_parquet(f"s3://{bucket}/{prefix}/calls/**/*.parquet", storage_options=options, hive_partitioning=True)
    frame = calls.select(pl.col("call_id"), pl.col("call_date")).collect()
    report["polars_calls"] = frame.height
    report["polars_unique_calls"] = frame["call_id"].n_unique()
    report["polars_call_date_type"] = str(frame.schema["call_date"])
    print(json.dumps(report))
