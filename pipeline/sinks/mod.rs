//! Sinks: records -> Parquet tables on disk.
//!
//! [`schema`] defines each table and documents every column; [`tables`] turns records into
//! Arrow batches; [`parquet`] writes one file per table and `call_date` partition (Hive
//! layout, zstd), through a temporary name and an atomic rename, so a reader never sees half
//! a file; [`commit`] orders those writes so a set of calls lands in every table or in none,
//! and recovers an output folder after a kill.

pub mod commit;
pub mod parquet;
pub mod schema;
pub mod tables;
