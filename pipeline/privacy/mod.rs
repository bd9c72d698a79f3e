//! Customer data protection: a scored call -> the same call with personal data in its words
//! replaced by typed placeholders, and one `pii` event per redaction.
//!
//! In: a [`ScoredCall`] whose phrase rules have already run on the words as recognised (a
//! rule never needs a phone number, but redacting first would change what fuzzy matching
//! sees). Out: `utterances[].text` and tokens, and `events[].matched_text`, with every
//! phone number, resident ID number, bank card number, e-mail address and long account-like
//! number replaced by `[PHONE]`, `[ID]`, `[CARD]`, `[EMAIL]` or `[NUMBER]`; a `pii` event per
//! redaction with its type (`match_type`), speaker and time from the token times, never the
//! value. [`numbers`] reads digits however they were said; [`mute`] silences the same time
//! ranges in a copy of the recording.
//!
//! Numbers are read per speaker across consecutive utterances (Whisper splits a long number
//! read slowly into several segments), up to `privacy.utterance_gap_s` apart.

pub mod mute;
pub mod numbers;

use std::ops::Range;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::record::{Event, EventKind, ScoredCall, Speaker, TimedToken, Utterance};

/// `[privacy]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacySettings {
    /// Replace personal data in every text column by typed placeholders. Default true.
    /// `false` (or `callqa run --keep-pii`) stores transcripts verbatim, phone and card
    /// numbers included: only for tables nobody but the data owner can read.
    pub redact: bool,
    /// A number may continue into the same speaker's next utterance if it starts within this
    /// many seconds. Default 10.
    pub utterance_gap_s: f64,
    /// Muted audio (`--redacted-audio`) extends each redacted range by this much on both
    /// sides: token times are approximate. Default 0.3.
    pub audio_pad_s: f64,
    /// Who may read what callqa writes (tables, reports, muted audio), whatever the umask:
    /// "owner" (files 0600, folders 0700; the default), "group" (0640 / 0750, for a shared
    /// analytics group) or "everyone" (0644 / 0755).
    pub output_access: OutputAccess,
}

impl Default for PrivacySettings {
    fn default() -> Self {
        PrivacySettings { redact: true, utterance_gap_s: 10.0, audio_pad_s: 0.3, output_access: OutputAccess::Owner }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputAccess {
    #[default]
    Owner,
    Group,
    Everyone,
}

impl OutputAccess {
    /// The process umask that gives files and folders this access: callqa creates files
    /// 0666 and folders 0777 (the defaults) and lets the mask take away the rest.
    pub fn umask(self) -> u32 {
        match self {
            OutputAccess::Owner => 0o077,
            OutputAccess::Group => 0o027,
            OutputAccess::Everyone => 0o022,
        }
    }

    /// Set the process umask (process-wide: every file any thread creates from now on).
    pub fn apply(self) {
        // SAFETY: umask only swaps a process attribute; it cannot fail.
        unsafe { libc::umask(self.umask() as libc::mode_t) };
    }
}

/// What a redacted stretch was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiType {
    Phone,
    Id,
    Card,
    Email,
    /// At least [`numbers::LONG_NUMBER_DIGITS`] digits of no known shape.
    Number,
}

impl PiiType {
    pub const ALL: [PiiType; 5] = [PiiType::Phone, PiiType::Id, PiiType::Card, PiiType::Email, PiiType::Number];

    pub fn as_str(self) -> &'static str {
        match self {
            PiiType::Phone => "phone",
            PiiType::Id => "id",
            PiiType::Card => "card",
            PiiType::Email => "email",
            PiiType::Number => "number",
        }
    }

    pub fn placeholder(self) -> &'static str {
        match self {
            PiiType::Phone => "[PHONE]",
            PiiType::Id => "[ID]",
            PiiType::Card => "[CARD]",
            PiiType::Email => "[EMAIL]",
            PiiType::Number => "[NUMBER]",
        }
    }

    fn in_words(self) -> &'static str {
        match self {
            PiiType::Phone => "a phone number",
            PiiType::Id => "an ID number",
            PiiType::Card => "a bank card number",
            PiiType::Email => "an e-mail address",
            PiiType::Number => "a long number",
        }
    }
}

/// One redacted stretch of speech.
#[derive(Debug, Clone, PartialEq)]
pub struct PiiSpan {
    pub pii: PiiType,
    pub speaker: Speaker,
    pub start_s: f64,
    pub end_s: f64,
}

/// Where a character of a speaker's stream came from: utterance, piece (token) and byte.
#[derive(Debug, Clone, Copy)]
struct Origin {
    utterance: usize,
    piece: usize,
    byte: usize,
}

/// A piece of an utterance's text with its time: a token, or the whole text when the
/// utterance has no token times.
#[derive(Debug, Clone)]
struct Piece {
    text: String,
    start_s: f64,
    end_s: f64,
}

fn pieces(u: &Utterance) -> Vec<Piece> {
    if u.tokens.is_empty() {
        vec![Piece { text: u.text.clone(), start_s: u.start_s, end_s: u.end_s }]
    } else {
        u.tokens.iter().map(|t| Piece { text: t.text.clone(), start_s: t.start_s, end_s: t.end_s }).collect()
    }
}

/// One speaker's consecutive utterances as one character stream. A boundary between
/// utterances is a space with no origin.
struct Stream {
    chars: Vec<char>,
    origins: Vec<Option<Origin>>,
}

impl Stream {
    fn new(utterance_ids: &[usize], pieces: &[Vec<Piece>]) -> Stream {
        let mut stream = Stream { chars: Vec::new(), origins: Vec::new() };
        for &u in utterance_ids {
            if !stream.chars.is_empty() {
                stream.chars.push(' ');
                stream.origins.push(None);
            }
            for (p, piece) in pieces[u].iter().enumerate() {
                for (byte, c) in piece.text.char_indices() {
                    stream.chars.push(c);
                    stream.origins.push(Some(Origin { utterance: u, piece: p, byte }));
                }
            }
        }
        stream
    }
}

/// Written addresses, and spoken ones ("zhang dot san at gmail dot com", "艾特", "点").
static EMAIL: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(concat!(
        r"(?i)[a-z0-9][a-z0-9._%+-]*(?:\s*(?:(?-u:\b)dot(?-u:\b)|点)\s*[a-z0-9_-]+)*",
        r"\s*(?:@|＠|(?-u:\b)at(?-u:\b)|艾特)\s*",
        r"[a-z0-9-]+(?:\s*(?:\.|(?-u:\b)dot(?-u:\b)|点)\s*[a-z0-9-]+)*\s*(?:\.|(?-u:\b)dot(?-u:\b)|点)\s*",
        r"(?:com|net|org|cn|edu|gov|io|co|uk|hk|tw|info|biz)(?-u:\b)",
    ))
    .expect("valid regex")
});

/// Words just before a 7-8 digit number that make it a (local) phone number ...
const PHONE_CONTEXT: [&str; 14] = [
    "电话",
    "手机",
    "座机",
    "联系",
    "分机",
    "号码",
    "phone",
    "cell",
    "mobile",
    "landline",
    "my number",
    "number is",
    "call me",
    "reach me",
];
/// ... unless the number is named as something else.
const OTHER_NUMBER: [&str; 12] =
    ["订单", "单号", "工单", "快递", "运单", "编号", "order", "tracking", "reference", "case", "ticket", "invoice"];
const CONTEXT_CHARS: usize = 16;

fn phone_context(chars: &[char], start: usize) -> bool {
    let before: String = chars[start.saturating_sub(CONTEXT_CHARS)..start].iter().collect::<String>().to_lowercase();
    PHONE_CONTEXT.iter().any(|w| before.contains(w)) && !OTHER_NUMBER.iter().any(|w| before.contains(w))
}

/// Personal data in a character stream: (type, character range).
fn find(chars: &[char]) -> Vec<(PiiType, Range<usize>)> {
    let text: String = chars.iter().collect();
    let char_at: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    let to_char = |byte: usize| char_at.partition_point(|&b| b < byte);
    let mut found: Vec<(PiiType, Range<usize>)> =
        EMAIL.find_iter(&text).map(|m| (PiiType::Email, to_char(m.start())..to_char(m.end()))).collect();
    // Digits inside an address are the address's.
    let mut masked = chars.to_vec();
    for (_, r) in &found {
        masked[r.clone()].iter_mut().for_each(|c| *c = '@');
    }
    for run in numbers::runs(&masked) {
        let context = phone_context(chars, run.groups[0].chars.start);
        for (groups, pii) in numbers::split(&run, context) {
            found.push((pii, run.groups[groups.start].chars.start..run.groups[groups.end - 1].chars.end));
        }
    }
    found.sort_by_key(|(_, r)| r.start);
    found
}

/// Redact personal data in free text (one piece, no times): what [`redact_call`] does to
/// every utterance, for text that has no stream around it.
pub fn redact_text(text: &str) -> (String, Vec<PiiType>) {
    let chars: Vec<char> = text.chars().collect();
    let found = find(&chars);
    let mut out = String::new();
    let mut at = 0;
    for (pii, range) in &found {
        out.extend(&chars[at..range.start]);
        out.push_str(pii.placeholder());
        at = range.end;
    }
    out.extend(&chars[at..]);
    (out, found.into_iter().map(|(p, _)| p).collect())
}

/// Groups of one speaker's utterances close enough in time for a number to run across them.
fn speaker_streams(utterances: &[Utterance], gap_s: f64) -> Vec<(Speaker, Vec<usize>)> {
    let mut order: Vec<usize> = (0..utterances.len()).collect();
    order.sort_by(|&a, &b| {
        utterances[a].speaker.cmp(&utterances[b].speaker).then(utterances[a].start_s.total_cmp(&utterances[b].start_s))
    });
    let mut groups: Vec<(Speaker, Vec<usize>)> = Vec::new();
    for i in order {
        let u = &utterances[i];
        match groups.last_mut() {
            Some((speaker, ids))
                if *speaker == u.speaker && u.start_s - utterances[*ids.last().unwrap()].end_s <= gap_s =>
            {
                ids.push(i)
            }
            _ => groups.push((u.speaker, vec![i])),
        }
    }
    groups
}

/// Replace personal data in a call's utterances (text and tokens) and matched texts; returns
/// what was redacted and adds a `pii` event for each.
pub fn redact_call(call: &mut ScoredCall, settings: &PrivacySettings) -> Vec<PiiSpan> {
    let utterances = &mut call.call.utterances;
    let mut pieces: Vec<Vec<Piece>> = utterances.iter().map(pieces).collect();
    let mut spans = Vec::new();
    // (utterance, piece, byte range in piece, placeholder or nothing): applied back to front.
    let mut edits: Vec<(usize, usize, Range<usize>, &'static str)> = Vec::new();
    for (speaker, ids) in speaker_streams(utterances, settings.utterance_gap_s) {
        let stream = Stream::new(&ids, &pieces);
        for (pii, range) in find(&stream.chars) {
            let covered: Vec<(Origin, usize)> =
                range.clone().filter_map(|i| stream.origins[i].map(|o| (o, stream.chars[i].len_utf8()))).collect();
            let times = covered.iter().map(|(o, _)| &pieces[o.utterance][o.piece]);
            let start_s = times.clone().map(|p| p.start_s).fold(f64::INFINITY, f64::min);
            let end_s = times.map(|p| p.end_s).fold(f64::NEG_INFINITY, f64::max);
            spans.push(PiiSpan { pii, speaker, start_s, end_s });
            // Per piece, the covered bytes; the first piece of each utterance gets the placeholder.
            let mut last_utterance = None;
            let mut per_piece: Vec<(usize, usize, Range<usize>, &'static str)> = Vec::new();
            for (o, len) in covered {
                match per_piece.last_mut() {
                    Some((u, p, r, _)) if *u == o.utterance && *p == o.piece => r.end = o.byte + len,
                    _ => {
                        let mark = if last_utterance == Some(o.utterance) { "" } else { pii.placeholder() };
                        last_utterance = Some(o.utterance);
                        per_piece.push((o.utterance, o.piece, o.byte..o.byte + len, mark));
                    }
                }
            }
            edits.extend(per_piece);
        }
    }
    edits.sort_by(|a, b| (a.0, a.1, a.2.start).cmp(&(b.0, b.1, b.2.start)).reverse());
    for (u, p, bytes, mark) in &edits {
        pieces[*u][*p].text.replace_range(bytes.clone(), mark);
    }
    let touched: std::collections::BTreeSet<usize> = edits.iter().map(|e| e.0).collect();
    for u in touched {
        let utterance = &mut utterances[u];
        if utterance.tokens.is_empty() {
            utterance.text = pieces[u][0].text.trim().to_string();
        } else {
            utterance.tokens = pieces[u]
                .iter()
                .filter(|p| !p.text.is_empty())
                .map(|p| TimedToken { text: p.text.clone(), start_s: p.start_s, end_s: p.end_s })
                .collect();
            utterance.text = utterance.tokens.iter().map(|t| t.text.as_str()).collect::<String>().trim().to_string();
        }
    }
    redact_matched_texts(&mut call.events, &spans);
    call.events.extend(spans.iter().map(|s| Event {
        matched_text: Some(s.pii.placeholder().to_string()),
        match_type: Some(s.pii.as_str()),
        ..Event::metric(
            EventKind::Pii,
            Some(s.speaker),
            s.start_s,
            s.end_s,
            format!("{} gave {}: redacted", s.speaker, s.pii.in_words()),
        )
    }));
    call.events.sort_by(|a, b| a.start_s.total_cmp(&b.start_s).then(a.kind.cmp(&b.kind)));
    spans
}

/// A rule's matched words are cut from the same tokens: redact them on their own, and where
/// they overlap a redacted stretch of the same speaker, hide every digit they hold too.
fn redact_matched_texts(events: &mut [Event], spans: &[PiiSpan]) {
    for event in events.iter_mut() {
        let Some(text) = event.matched_text.as_mut() else { continue };
        let (redacted, _) = redact_text(text);
        *text = redacted;
        let overlapping = spans
            .iter()
            .find(|s| Some(s.speaker) == event.speaker && s.start_s < event.end_s && event.start_s < s.end_s);
        if let Some(span) = overlapping {
            let chars: Vec<char> = text.chars().collect();
            let mut out = String::new();
            let runs = numbers::runs(&chars);
            let mut at = 0;
            for run in &runs {
                let r = run.groups[0].chars.start..run.groups.last().unwrap().chars.end;
                out.extend(&chars[at..r.start]);
                out.push_str(span.pii.placeholder());
                at = r.end;
            }
            out.extend(&chars[at..]);
            *text = out;
        }
    }
}

#[cfg(test)]
mod tests;
