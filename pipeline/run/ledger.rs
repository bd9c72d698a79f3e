//! What a run finds in the output and decides from it: which calls to skip (the skip key),
//! which failures to retry, and the `failures` table as the writer keeps it.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::record::CallFailure;
use crate::sinks::parquet::CallVersion;
use crate::sinks::tables::FailureRow;

/// Why a call is not processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Its rows are there, computed the way this run would compute them.
    Done,
    /// `--no-asr` over a call that has a transcript: never replaced by fewer results.
    HasTranscript,
    /// Failed in `run.max_attempts` runs with this content; left in `failures`.
    GivenUp,
}

/// What a run already finds in the output, and what it decides from it.
pub struct Ledger {
    versions: HashMap<String, Vec<CallVersion>>,
    failures: BTreeMap<String, FailureRow>,
    model: Option<String>,
    reprocess: bool,
    max_attempts: u32,
}

impl Ledger {
    pub fn new(
        versions: Vec<CallVersion>,
        failures: BTreeMap<String, FailureRow>,
        model: Option<String>,
        reprocess: bool,
        max_attempts: u32,
    ) -> Ledger {
        let mut by_call: HashMap<String, Vec<CallVersion>> = HashMap::new();
        for v in versions {
            by_call.entry(v.call_id.clone()).or_default().push(v);
        }
        Ledger { versions: by_call, failures, model, reprocess, max_attempts }
    }

    /// The skip key is what was computed: content, whether ASR ran, and with which model.
    /// An ASR run transcribes a call that has only acoustic rows; a `--no-asr` run never
    /// replaces a transcript of the same audio, even with `--reprocess`.
    pub fn decide(&self, call_id: &str, content_sha256: &str) -> Option<Skip> {
        let same_audio: Vec<&CallVersion> = self
            .versions
            .get(call_id)
            .map(|v| v.iter().filter(|v| v.content_sha256 == content_sha256).collect())
            .unwrap_or_default();
        match &self.model {
            None if same_audio.iter().any(|v| v.model.is_some()) => return Some(Skip::HasTranscript),
            None if !self.reprocess && !same_audio.is_empty() => return Some(Skip::Done),
            Some(model) if !self.reprocess && same_audio.iter().any(|v| v.model.as_ref() == Some(model)) => {
                return Some(Skip::Done)
            }
            _ => {}
        }
        self.given_up(call_id, Some(content_sha256)).then_some(Skip::GivenUp)
    }

    /// Whether a call has failed `max_attempts` times with this content (`None`: it could not
    /// be read, now or then).
    pub fn given_up(&self, call_id: &str, content_sha256: Option<&str>) -> bool {
        self.failures
            .get(call_id)
            .is_some_and(|f| f.attempts >= self.max_attempts && f.content_sha256.as_deref() == content_sha256)
    }
}

/// The `failures` table as the writer keeps it during a run.
#[derive(Debug, Default)]
pub struct FailureTable {
    rows: BTreeMap<String, FailureRow>,
}

impl FailureTable {
    pub fn new(rows: BTreeMap<String, FailureRow>) -> FailureTable {
        FailureTable { rows }
    }

    pub fn rows(&self) -> &BTreeMap<String, FailureRow> {
        &self.rows
    }

    /// Record a failure: attempts count up while the content stays the same.
    pub fn record(&mut self, failure: &CallFailure, run_id: &str, at: DateTime<Utc>) {
        let previous = self
            .rows
            .get(&failure.call_id)
            .filter(|f| f.content_sha256 == failure.content_sha256)
            .map_or(0, |f| f.attempts);
        self.rows.insert(
            failure.call_id.clone(),
            FailureRow {
                call_id: failure.call_id.clone(),
                source_path: failure.path.display().to_string(),
                content_sha256: failure.content_sha256.clone(),
                stage: failure.stage.as_str().into(),
                error_type: failure.error_type.as_str().into(),
                reason: failure.reason.clone(),
                attempts: previous + 1,
                run_id: run_id.into(),
                failed_at: at,
            },
        );
    }

    /// A call whose rows are committed leaves `failures`; true if it was there.
    pub fn clear(&mut self, call_id: &str) -> bool {
        self.rows.remove(call_id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ErrorType, Stage};

    fn version(call_id: &str, sha: &str, model: Option<&str>) -> CallVersion {
        CallVersion {
            call_id: call_id.into(),
            content_sha256: sha.into(),
            run_id: "r".into(),
            processed_at: 0,
            model: model.map(str::to_string),
            commit: "r_00001".into(),
        }
    }

    fn failure_row(call_id: &str, sha: Option<&str>, attempts: u32) -> FailureRow {
        FailureRow {
            call_id: call_id.into(),
            source_path: "x.wav".into(),
            content_sha256: sha.map(str::to_string),
            stage: "transcribe".into(),
            error_type: "worker_crashed".into(),
            reason: "SIGABRT".into(),
            attempts,
            run_id: "r".into(),
            failed_at: Utc::now(),
        }
    }

    #[test]
    fn the_skip_key_is_what_was_computed() {
        let versions = vec![version("acoustic", "s1", None), version("heard", "s2", Some("ggml-base-q8_0"))];
        let asr = Ledger::new(versions.clone(), BTreeMap::new(), Some("ggml-base-q8_0".into()), false, 2);
        assert_eq!(asr.decide("acoustic", "s1"), None, "an ASR run transcribes calls with only acoustic rows");
        assert_eq!(asr.decide("heard", "s2"), Some(Skip::Done));
        assert_eq!(asr.decide("heard", "changed"), None, "changed audio is processed again");
        let other_model = Ledger::new(versions.clone(), BTreeMap::new(), Some("ggml-small".into()), false, 2);
        assert_eq!(other_model.decide("heard", "s2"), None, "another model is another result");
        let no_asr = Ledger::new(versions.clone(), BTreeMap::new(), None, false, 2);
        assert_eq!(no_asr.decide("acoustic", "s1"), Some(Skip::Done));
        assert_eq!(no_asr.decide("heard", "s2"), Some(Skip::HasTranscript));
        let no_asr_again = Ledger::new(versions, BTreeMap::new(), None, true, 2);
        assert_eq!(
            no_asr_again.decide("heard", "s2"),
            Some(Skip::HasTranscript),
            "--reprocess --no-asr keeps transcripts"
        );
        assert_eq!(no_asr_again.decide("acoustic", "s1"), None);
    }

    #[test]
    fn failures_are_retried_until_max_attempts_with_the_same_content() {
        let failures = BTreeMap::from([
            ("once".to_string(), failure_row("once", Some("s"), 1)),
            ("twice".to_string(), failure_row("twice", Some("s"), 2)),
            ("unreadable".to_string(), failure_row("unreadable", None, 2)),
        ]);
        let ledger = Ledger::new(vec![], failures.clone(), Some("m".into()), false, 2);
        assert_eq!(ledger.decide("once", "s"), None);
        assert_eq!(ledger.decide("twice", "s"), Some(Skip::GivenUp));
        assert_eq!(ledger.decide("twice", "new audio"), None, "changed content gets new attempts");
        assert!(ledger.given_up("unreadable", None));
        let again = CallFailure {
            call_id: "once".into(),
            path: "x.wav".into(),
            content_sha256: Some("s".into()),
            stage: Stage::Transcribe,
            error_type: ErrorType::WorkerCrashed,
            reason: "again".into(),
        };
        let mut table = FailureTable { rows: failures };
        table.record(&again, "r2", Utc::now());
        assert_eq!(table.rows["once"].attempts, 2);
        table.record(&CallFailure { content_sha256: Some("other".into()), ..again }, "r3", Utc::now());
        assert_eq!(table.rows["once"].attempts, 1);
        assert!(table.clear("once"));
        assert!(!table.rows.contains_key("once"));
    }
}
