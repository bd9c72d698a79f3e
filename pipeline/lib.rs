//! callqa: call recordings in, quality-assurance tables out.
//!
//! The flow, one module per stage:
//! - [`ingest`]: a folder or CSV manifest, on disk or on an object store -> [`record::CallSource`]s.
//! - [`audio`]: WAV bytes -> per-channel buffers -> 16 kHz speaker channels.
//! - [`vad`]: a channel -> speech intervals.
//! - [`loudness`]: a channel and its speech -> EBU R128 loudness and raised-voice events.
//! - [`asr`]: speech of a channel -> utterances (whisper.cpp through whisper-rs).
//! - [`metrics`]: speech intervals and utterances -> talk time, silence, interruptions, rate, events.
//! - [`rules`]: utterances + metrics -> phrase-rule events and the QA score.
//! - [`privacy`]: scored call -> the same call with personal data in its words redacted.
//! - [`sinks`]: records -> Parquet tables (and muted copies of recordings).
//! - [`sampling`]: a month of scored calls -> calls for human review, and weighted estimates.
//!
//! [`review`] draws the monthly human-review sample and writes the agent report.
//! [`rescore`] scores stored transcripts again under a new config, without audio or model.
//! [`record`] holds the plain records that pass between stages (source -> voiced ->
//! transcribed -> scored call). [`run`] schedules the stages over a batch: CPU stages on a
//! rayon pool, transcription in supervised worker processes, commits as it goes;
//! [`config`] holds every setting; [`storage`] is where files live (a folder, or an object
//! store through `object_store` on tokio), for ingest and the sinks alone.
//! - [`model`]: Whisper weights (CTranslate2 -> GGML conversion, registry).
pub mod asr;
pub mod assemble;
pub mod audio;
pub mod config;
pub mod ingest;
pub mod loudness;
pub mod metrics;
pub mod model;
pub mod privacy;
pub mod record;
pub mod rescore;
pub mod review;
pub mod rules;
pub mod run;
pub mod sampling;
pub mod sinks;
pub mod storage;
pub mod textnorm;
pub mod vad;
