//! Sinks: records -> Parquet tables in a folder or on an object store
//! ([`crate::storage`]), and muted copies of recordings ([`audio`]).
//!
//! [`schema`] defines each table and documents every column; [`tables`] turns records into
//! Arrow batches; [`parquet`] writes one file per table and `call_date` partition (Hive
//! layout, zstd), whole or not at all (a temporary and an atomic rename, or one PUT), so a
//! reader never sees half a file; [`commit`] orders those writes so a set of calls lands in
//! every table or in none, and recovers an output folder after a kill; [`compact`] merges a
//! partition's part files.

pub mod audio;
pub mod commit;
pub mod compact;
pub mod parquet;
pub mod schema;
pub mod tables;

/// Test builds only: `CALLQA_TEST_IO_PAUSE_MS=N` sleeps N ms before every rename and delete
/// of a table file, so that the durability test's random kills land inside commits and
/// recoveries, not only between them. A no-op otherwise.
#[inline]
pub(crate) fn test_pause() {
    #[cfg(feature = "test-hooks")]
    {
        static PAUSE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let ms = *PAUSE
            .get_or_init(|| std::env::var("CALLQA_TEST_IO_PAUSE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0));
        if ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }
}
