//! Sinks: records -> Parquet tables on disk.
//!
//! [`schema`] defines each table and documents every column; [`parquet`] writes one file per
//! table and `call_date` partition (Hive layout, zstd), through a temporary name and an
//! atomic rename, so a reader never sees half a file.

pub mod parquet;
pub mod schema;
pub mod tables;
