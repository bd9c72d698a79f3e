//! The tables callqa writes, with a description on every column (stored in the Parquet
//! field metadata under `description`, and printed by `callqa schema`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub const PIPELINE_VERSION: &str = env!("CARGO_PKG_VERSION");

fn col(name: &str, data_type: DataType, nullable: bool, description: &str) -> Field {
    Field::new(name, data_type, nullable)
        .with_metadata(HashMap::from([("description".to_string(), description.to_string())]))
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// A table: its folder name under the output directory and its schema.
pub struct Table {
    pub name: &'static str,
    pub description: &'static str,
    /// The Hive partition column (`call_date` or `month`).
    pub partition: &'static str,
    pub schema: SchemaRef,
}

pub fn calls() -> Table {
    Table {
        name: "calls",
        description: "One row per processed call: source, audio facts, metrics, scorecard and run provenance.",
        partition: "call_date",
        schema: Arc::new(Schema::new(vec![
            col("call_id", DataType::Utf8, false, "Call identifier: the manifest's call_id, else the file stem."),
            col("source_path", DataType::Utf8, false, "Path of the recording as given to callqa run."),
            col("content_sha256", DataType::Utf8, false, "SHA-256 of the recording's bytes (hex)."),
            col("call_date", DataType::Date32, false, "Date of the call (UTC): from started_at, else the file's modification time. Also the partition key."),
            col("started_at", utc(), true, "Call start (UTC) from the manifest; null when not given."),
            col("agent_id", DataType::Utf8, true, "Agent identifier from the manifest; null when not given."),
            col("duration_s", DataType::Float64, false, "Recording length in seconds."),
            col("sample_rate_hz", DataType::Int32, false, "Sample rate of the recording as stored."),
            col("channels", DataType::Int32, false, "Channels in the recording: 2 = agent/customer, 1 = mixed."),
            col("codec", DataType::Utf8, false, "Sample encoding as stored: pcm_u8, pcm_s16, pcm_s24, pcm_s32, pcm_f32, mulaw or alaw."),
            col("language", DataType::Utf8, true, "Language transcribed: the configured one, or the one Whisper detected on most speech; null without ASR."),
            col("agent_language", DataType::Utf8, true, "Language of the agent channel's speech (detected on most of it); null on mono, without ASR or without agent speech."),
            col("customer_language", DataType::Utf8, true, "Language of the customer channel's speech; null on mono, without ASR or without customer speech."),
            col("model", DataType::Utf8, true, "Whisper model file stem used; null without ASR."),
            col("utterances", DataType::Int32, false, "Utterance rows written for this call."),
            col("agent_loudness_lufs", DataType::Float64, true, "EBU R128 integrated loudness of the agent channel (LUFS, gated); null on mono or a silent channel."),
            col("customer_loudness_lufs", DataType::Float64, true, "EBU R128 integrated loudness of the customer channel (LUFS); null on mono or a silent channel."),
            col("agent_loudness_range_lu", DataType::Float64, true, "EBU R128 loudness range of the agent channel (LU): how much the level varies; null on mono or when too short."),
            col("customer_loudness_range_lu", DataType::Float64, true, "EBU R128 loudness range of the customer channel (LU); null on mono or when too short."),
            col("dropped_utterances", DataType::Int32, false, "Whisper segments dropped as non-speech (hallucinated credits, repetition loops, text on silence)."),
            col("agent_talk_s", DataType::Float64, true, "Seconds the agent spoke (detected speech, crosstalk removed); null on mono."),
            col("customer_talk_s", DataType::Float64, true, "Seconds the customer spoke; null on mono."),
            col("overlap_s", DataType::Float64, true, "Seconds both spoke at once; null on mono."),
            col("speech_s", DataType::Float64, false, "Seconds anyone spoke (union of all channels)."),
            col("interruptions_by_agent", DataType::Int32, true, "Times the agent talked over the customer (see README: interruption); null on mono."),
            col("interruptions_by_customer", DataType::Int32, true, "Times the customer talked over the agent; null on mono."),
            col("silence_s", DataType::Float64, false, "Total dead air: gaps of at least silence.min_s between the first and last speech that are not holds."),
            col("silence_events", DataType::Int32, false, "Number of dead-air gaps of at least silence.min_s."),
            col("silence_max_s", DataType::Float64, false, "Longest dead-air gap (0 when none)."),
            col("hold_count", DataType::Int32, false, "Holds: agent silences of at least hold.min_s after a hold phrase or with music or a tone (see README: holds)."),
            col("hold_s", DataType::Float64, false, "Total seconds on hold."),
            col("hold_max_s", DataType::Float64, false, "Longest hold in seconds (0 when none)."),
            col("first_agent_speech_s", DataType::Float64, true, "Seconds from the start of the recording to the agent's first speech; null on mono or if the agent never spoke."),
            col("agent_rate", DataType::Float64, true, "Agent speaking rate in rate_unit over the agent's speech time; null on mono or without ASR."),
            col("customer_rate", DataType::Float64, true, "Customer speaking rate in rate_unit; null on mono or without ASR."),
            col("overall_rate", DataType::Float64, true, "Speaking rate of all speech in the call (the rate of mono recordings); null without ASR."),
            col("rate_unit", DataType::Utf8, true, "'cpm' (Chinese characters per minute) or 'wpm' (words per minute); null without ASR."),
            col("forbidden_hits", DataType::Int32, true, "Banned-phrase hits (events of kind forbidden_phrase); null without ASR."),
            col("required_missing", DataType::Int32, true, "Required phrases missing where required (events of kind required_phrase_missing); null without ASR."),
            col("qa_score", DataType::Float64, true, "100 minus the points of every events row of the call, floored at 0; null without ASR, and when the call's or the agent's language has no phrase rules (see events kind no_rules_for_language)."),
            col("pipeline_version", DataType::Utf8, false, "callqa version that produced the row."),
            col("run_id", DataType::Utf8, false, "Identifier of the callqa run that produced the row."),
            col("processed_at", utc(), false, "When the row was produced (UTC)."),
        ])),
    }
}

pub fn utterances() -> Table {
    Table {
        name: "utterances",
        description: "One row per transcribed utterance (Whisper segment) of one speaker.",
        partition: "call_date",
        schema: Arc::new(Schema::new(vec![
            col("call_id", DataType::Utf8, false, "Call identifier (joins calls.call_id)."),
            col("call_date", DataType::Date32, false, "Date of the call (UTC); also the partition key."),
            col("speaker", DataType::Utf8, false, "'agent', 'customer', or 'mixed' for mono recordings."),
            col("start_s", DataType::Float64, false, "Start, seconds from the start of the recording."),
            col("end_s", DataType::Float64, false, "End, seconds from the start of the recording."),
            col("text", DataType::Utf8, false, "Transcript; Chinese normalised to Simplified characters; personal data replaced by [PHONE], [ID], [CARD], [EMAIL] or [NUMBER] unless privacy.redact = false."),
            col("avg_logprob", DataType::Float32, false, "Mean token log-probability (closer to 0 = more confident)."),
            col("no_speech_prob", DataType::Float32, false, "Whisper's probability that the segment holds no speech."),
            col("tokens", DataType::List(Arc::new(Field::new("item", token_type(), true))), false, "The utterance's tokens in order: text (as in text, redacted alike) and start_s / end_s from the recording's start (DTW timing). What phrase rules point at; read by callqa rescore."),
        ])),
    }
}

/// One timed token of an utterance.
pub fn token_type() -> DataType {
    DataType::Struct(
        vec![
            Field::new("text", DataType::Utf8, false),
            Field::new("start_s", DataType::Float64, false),
            Field::new("end_s", DataType::Float64, false),
        ]
        .into(),
    )
}

pub fn speech() -> Table {
    Table {
        name: "speech",
        description: "One row per interval of detected speech on one channel: what the talk-time, silence and interruption metrics were measured on (and what callqa rescore measures again).",
        partition: "call_date",
        schema: Arc::new(Schema::new(vec![
            col("call_id", DataType::Utf8, false, "Call identifier (joins calls.call_id)."),
            col("call_date", DataType::Date32, false, "Date of the call (UTC); also the partition key."),
            col("speaker", DataType::Utf8, false, "'agent', 'customer', or 'mixed' for mono recordings."),
            col("start_s", DataType::Float64, false, "Start, seconds from the start of the recording."),
            col("end_s", DataType::Float64, false, "End, seconds from the start of the recording."),
        ])),
    }
}

pub fn events() -> Table {
    Table {
        name: "events",
        description: "One row per moment worth a listen: dead air, interruptions, fast speech, phrase rule hits, deductions.",
        partition: "call_date",
        schema: Arc::new(Schema::new(vec![
            col("call_id", DataType::Utf8, false, "Call identifier (joins calls.call_id)."),
            col("call_date", DataType::Date32, false, "Date of the call (UTC); also the partition key."),
            col("kind", DataType::Utf8, false, "'silence', 'interruption', 'fast_speech', 'forbidden_phrase', 'required_phrase_missing', 'metric_threshold', 'pii' (personal data redacted from the transcript here), 'raised_voice' (a speaker well above their own usual loudness), 'hold' (the customer on hold), 'music' (music or a tone on the agent's line) or 'no_rules_for_language' (the call's or a channel's language has no phrase rules; qa_score is null unless only the customer's channel is affected)."),
            col("speaker", DataType::Utf8, true, "Who did it: the interrupter, the fast speaker, who said the phrase or gave the personal data; null for silence."),
            col("start_s", DataType::Float64, false, "Start, seconds from the start of the recording."),
            col("end_s", DataType::Float64, false, "End, seconds from the start of the recording."),
            col("duration_s", DataType::Float64, false, "end_s - start_s."),
            col("rule_id", DataType::Utf8, true, "Phrase rule or scorecard rule that produced the event; null for plain metrics."),
            col("severity", DataType::Utf8, true, "'minor', 'major' or 'critical' for rule events; null for plain metrics."),
            col("detail", DataType::Utf8, false, "What happened, in words (e.g. who was interrupted, measured rate, matched text)."),
            col("matched_text", DataType::Utf8, true, "forbidden_phrase: the words as recognised, personal data redacted; pii: the placeholder that replaced the data ([PHONE], [ID], [CARD], [EMAIL], [NUMBER]), never the value; null otherwise."),
            col("match_type", DataType::Utf8, true, "forbidden_phrase: 'exact' (same characters/words) or 'fuzzy' (same sound, or within the edit budget); pii: the type of data ('phone', 'id', 'card', 'email', 'number')."),
            col("similarity", DataType::Float64, true, "forbidden_phrase: 1 - edits / phrase length, by sound (1.0 for homophones)."),
            col("points", DataType::Float64, true, "Points this row deducts from calls.qa_score (a rule deducts once per call; later hits carry 0)."),
        ])),
    }
}

pub fn samples() -> Table {
    Table {
        name: "samples",
        description:
            "Calls selected for human review in a month (`callqa sample`), with their inclusion probabilities.",
        partition: "month",
        schema: Arc::new(Schema::new(vec![
            col("call_id", DataType::Utf8, false, "Selected call (joins calls.call_id)."),
            col("agent_id", DataType::Utf8, false, "Agent of the call ('(unknown)' when the manifest gave none)."),
            col("month", DataType::Utf8, false, "YYYY-MM sampled; also the partition key."),
            col("stratum", DataType::Utf8, false, "'risk' (flagged by the pipeline) or 'random' (unflagged)."),
            col(
                "inclusion_prob",
                DataType::Float64,
                false,
                "Probability the design gave this call of being selected; weight = 1 / inclusion_prob. Only for calls the design drew (reason ending in 'sampled'): top-ups and calls kept from an earlier run were chosen otherwise, so leave them out of weighted estimates.",
            ),
            col(
                "reason",
                DataType::Utf8,
                false,
                "Flags that made the call risky, and how it was selected (sampled, top-up, kept from an earlier run).",
            ),
            col("seed", DataType::Int64, false, "Seed of the permanent random numbers."),
            col(
                "created_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
                "When the sample was drawn (UTC).",
            ),
        ])),
    }
}

pub fn agent_month() -> Table {
    Table {
        name: "agent_month",
        description: "Per agent and month (`callqa report`): automated violation rates, mean score, weighted human-review estimate.",
        partition: "month",
        schema: Arc::new(Schema::new(vec![
            col("month", DataType::Utf8, false, "YYYY-MM; also the partition key."),

        col("agent_id", DataType::Utf8, false, "Agent; 'ALL' is the whole month."),
        col("calls", DataType::Int32, false, "Calls processed this month."),
        col("sampled", DataType::Int32, false, "Calls selected for human review."),
        col("forbidden_rate", DataType::Float64, false, "Share of calls with a banned phrase."),
        col("required_missing_rate", DataType::Float64, false, "Share of calls missing a required phrase."),
        col("long_silence_rate", DataType::Float64, false, "Share of calls with dead air of 30 s or more."),
        col("agent_interruption_rate", DataType::Float64, false, "Share of calls where the agent interrupted the customer."),
        col("holds_per_call", DataType::Float64, false, "Mean number of holds per call."),
        col("long_hold_rate", DataType::Float64, false, "Share of calls with a hold of scorecard.long_hold_s (120 s) or more."),
        col("agent_raised_voice_rate", DataType::Float64, false, "Share of calls with a raised_voice event of the agent (a coaching moment)."),
        col("customer_raised_voice_rate", DataType::Float64, false, "Share of calls with a raised_voice event of the customer (an escalation signal)."),
        col("mean_qa_score", DataType::Float64, true, "Mean qa_score (null when nothing was transcribed)."),
        col("evaluated", DataType::Int32, false, "Sampled calls with a human verdict."),
        col("fail_rate_est", DataType::Float64, true, "Weighted (Hajek) estimate of the share of calls failing human review."),
        col("fail_rate_low", DataType::Float64, true, "Lower end of its 95% interval."),
        col("fail_rate_high", DataType::Float64, true, "Upper end of its 95% interval."),
        ])),
    }
}

pub fn evaluations() -> Table {
    let rules = || DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    Table {
        name: "evaluations",
        description: "One row per human evaluation of a call, from the CSV files in OUT/evaluations/_drop/ (rewritten whole by `callqa evaluate` and `callqa report`). Not partitioned.",
        partition: "",
        schema: Arc::new(Schema::new(vec![
            col("call_id", DataType::Utf8, false, "The call evaluated."),
            col("evaluator", DataType::Utf8, false, "Who evaluated it ('' when the file did not say)."),
            col("evaluated_at", utc(), true, "When (UTC); null when the file did not say. The latest evaluation of a call counts."),
            col("passed", DataType::Boolean, false, "The evaluator's overall verdict."),
            col("confirmed", rules(), false, "Rule ids (phrase rules, scorecard.*) the evaluator confirmed on this call."),
            col("rejected", rules(), false, "Rule ids whose automatic flag the evaluator rejected."),
            col("not_applicable", rules(), false, "Rule ids the evaluator marked not applicable."),
        ])),
    }
}

pub fn rule_agreement() -> Table {
    Table {
        name: "rule_agreement",
        description: "Per rule and month (`callqa report`): how often human evaluators confirm the rule's automatic flags on the sampled calls, weighted by inclusion probability.",
        partition: "month",
        schema: Arc::new(Schema::new(vec![
            col("month", DataType::Utf8, false, "YYYY-MM; also the partition key."),
            col("rule_id", DataType::Utf8, false, "Phrase rule id or scorecard.* threshold."),
            col("evaluated", DataType::Int32, false, "Flags of the rule on evaluated calls of the sample design with a confirmed or rejected verdict."),
            col("confirmed", DataType::Int32, false, "Of those, confirmed."),
            col("rejected", DataType::Int32, false, "Of those, rejected."),
            col("precision_est", DataType::Float64, true, "Weighted (Hajek) share of the rule's flags confirmed: the month's precision of the rule; null when none evaluated."),
            col("precision_low", DataType::Float64, true, "Lower end of its 95% interval (Wilson, effective sample size)."),
            col("precision_high", DataType::Float64, true, "Upper end of its 95% interval."),
            col("missed", DataType::Int32, false, "Evaluated calls where a human confirmed the rule but it had not fired (unweighted)."),
        ])),
    }
}

pub fn failures() -> Table {
    Table {
        name: "failures",
        description: "One row per call that could not be processed (the current state: a call that later succeeds leaves it). Not partitioned.",
        partition: "",
        schema: Arc::new(Schema::new(vec![
            col("call_id", DataType::Utf8, false, "Call identifier (the file stem, the manifest's call_id, or 'line N' for a bad manifest row)."),
            col("source_path", DataType::Utf8, false, "Path of the recording (or the manifest) as given to callqa run."),
            col("content_sha256", DataType::Utf8, true, "SHA-256 of the recording's bytes; null when it could not be read."),
            col("stage", DataType::Utf8, false, "Where it failed: ingest, read, decode, resample, vad, transcribe, score, redact (the muted copy of the recording) or internal."),
            col("error_type", DataType::Utf8, false, "Fixed vocabulary (README, Failures): not_found, not_regular_file, symlink_loop, permission_denied, io_error, too_large, empty, not_wav, unsupported_format, corrupt, invalid_samples, too_long, manifest_row, implausible_date, duplicate_call_id, worker_crashed, time_budget_exceeded, whisper_error, panic."),
            col("reason", DataType::Utf8, false, "The error in words, naming what to do where possible."),
            col("attempts", DataType::Int32, false, "Runs that tried this call (with this content) and failed; at run.max_attempts it is left alone."),
            col("run_id", DataType::Utf8, false, "Run of the latest attempt."),
            col("failed_at", utc(), false, "When the latest attempt failed (UTC)."),
        ])),
    }
}

pub fn runs() -> Table {
    Table {
        name: "runs",
        description: "One row per callqa run, written when it starts and again when it ends (a run killed on the way keeps finished_at and exit_status null). Not partitioned.",
        partition: "",
        schema: Arc::new(Schema::new(vec![
            col("run_id", DataType::Utf8, false, "Run identifier (rows of calls carry it)."),
            col("started_at", utc(), false, "When the run started (UTC)."),
            col("finished_at", utc(), true, "When it ended; null while running or if it was killed."),
            col("host", DataType::Utf8, false, "Host name of the machine."),
            col("command_line", DataType::Utf8, false, "The command line, arguments joined by spaces."),
            col("config_sha256", DataType::Utf8, false, "SHA-256 of the effective configuration as printed by `callqa config`."),
            col("model", DataType::Utf8, true, "Whisper model file stem; null with --no-asr."),
            col("shard", DataType::Utf8, true, "K/N when the run was shard K (from 0) of N (--shard, or the scheduler's variables); null when unsharded."),
            col("pipeline_version", DataType::Utf8, false, "callqa version."),
            col("ok", DataType::Int32, true, "Calls processed and committed by this run."),
            col("failed", DataType::Int32, true, "Calls that failed in this run."),
            col("skipped", DataType::Int32, true, "Calls skipped: already in the tables, or left after run.max_attempts failures."),
            col("audio_s", DataType::Float64, true, "Seconds of audio processed."),
            col("wall_s", DataType::Float64, true, "Seconds the run took."),
            col("exit_status", DataType::Int32, true, "0 all good, 1 some calls failed, 2 stopped by an error that dooms every call (e.g. the output became unwritable); null while running or if killed."),
        ])),
    }
}

pub fn all_tables() -> Vec<Table> {
    vec![
        calls(),
        utterances(),
        speech(),
        events(),
        failures(),
        runs(),
        samples(),
        agent_month(),
        evaluations(),
        rule_agreement(),
    ]
}

/// Human-readable description of every table, for `callqa schema`.
pub fn describe() -> String {
    let mut out = String::new();
    for table in all_tables() {
        let files = if table.partition.is_empty() {
            format!("{}/*.parquet", table.name)
        } else {
            format!("{}/{}=.../*.parquet", table.name, table.partition)
        };
        out.push_str(&format!("{}  ({files})\n  {}\n", table.name, table.description));
        for field in table.schema.fields() {
            let nullable = match (field.name().as_str(), field.is_nullable()) {
                (name, _) if name == table.partition => "partition",
                (_, true) => "null",
                (_, false) => "not null",
            };
            let description = field.metadata().get("description").map_or("", String::as_str);
            out.push_str(&format!(
                "  {:<20} {:<28} {:<9} {}\n",
                field.name(),
                field.data_type().to_string(),
                nullable,
                description
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_is_described() {
        for table in all_tables() {
            for field in table.schema.fields() {
                assert!(
                    field.metadata().get("description").is_some_and(|d| d.len() > 10),
                    "{}.{}",
                    table.name,
                    field.name()
                );
            }
            assert!(
                table.partition.is_empty() || table.schema.field_with_name(table.partition).is_ok(),
                "{} lacks its partition column",
                table.name
            );
        }
        assert!(
            describe().contains("no_speech_prob")
                && describe().contains("inclusion_prob")
                && describe().contains("fail_rate_est")
        );
    }
}
