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
    /// sides: token times are approximate. Default 0.5 (at 0.3 s, 7% of a phone number read
    /// out stayed audible in the end-to-end test).
    pub audio_pad_s: f64,
    /// Who may read what callqa writes (tables, reports, muted audio), whatever the umask:
    /// "owner" (files 0600, folders 0700; the default), "group" (0640 / 0750, for a shared
    /// analytics group) or "everyone" (0644 / 0755).
    pub output_access: OutputAccess,
}

impl Default for PrivacySettings {
    fn default() -> Self {
        PrivacySettings { redact: true, utterance_gap_s: 10.0, audio_pad_s: 0.5, output_access: OutputAccess::Owner }
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
    /// At least [`LONG_NUMBER_DIGITS`] digits of no known shape.
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

static PLACEHOLDER: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"\[(?:PHONE|ID|CARD|EMAIL|NUMBER)\]").expect("valid regex"));

/// Words that name the number about to be said, strongest first: ID, card, phone. A
/// number after its name needs no checksum or full length to be redacted: Whisper mishears
/// digits ("five" as "time"), and the rest of a card number is still a card number.
const NAMES: [(PiiType, &[&str]); 3] = [
    (PiiType::Id, &["身份证", "证件", "护照", "passport", "social security", "id number"]),
    (PiiType::Card, &["卡号", "银行卡", "信用卡", "储蓄卡", "借记卡", "账号", "账户", "card", "account"]),
    (
        PiiType::Phone,
        &[
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
        ],
    ),
];
/// ... unless it is named as something else.
const OTHER_NUMBER: [&str; 17] = [
    "订单",
    "单号",
    "工单",
    "快递",
    "运单",
    "编号",
    "有效期",
    "到期",
    "order",
    "tracking",
    "reference",
    "case",
    "ticket",
    "invoice",
    "expire",
    "expiry",
    "valid",
];
/// A name reaches this many characters ahead, and on over each number it named to the next
/// within the same distance (a number read in pieces).
const NAME_REACH: usize = 24;
/// Digits after a name that are redacted even without a known shape.
const NAMED_MIN_DIGITS: usize = 4;
/// Runs longer than any personal number are still long strings of someone's digits
/// (accounts, memberships): at least this many digits with no known shape are `[NUMBER]`.
pub const LONG_NUMBER_DIGITS: usize = 11;

/// What the words before a number say it is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Naming {
    Named(PiiType),
    /// Named as something that is not personal (an order, an expiry date).
    Other,
    Unnamed,
}

fn naming(chars: &[char], from: usize, to: usize) -> Naming {
    let before: String = chars[from.max(to.saturating_sub(NAME_REACH))..to].iter().collect::<String>().to_lowercase();
    if OTHER_NUMBER.iter().any(|w| before.contains(w)) {
        return Naming::Other;
    }
    NAMES
        .iter()
        .find(|(_, words)| words.iter().any(|w| before.contains(w)))
        .map_or(Naming::Unnamed, |(p, _)| Naming::Named(*p))
}

/// What Whisper writes for a digit it mishears ("five" as "time", "zero" as "Nero").
const MISHEARD_DIGITS: [&str; 12] =
    ["time", "times", "nero", "for", "to", "too", "free", "tree", "ate", "won", "fife", "sex"];

/// Words between two runs (Latin words and Chinese characters; fillers and misheard digits
/// aside): a name carries over a word or two ("1488, and 343"), not over a new sentence.
fn words_between(chars: &[char]) -> usize {
    let latin = chars
        .split(|c| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .filter(|w| !MISHEARD_DIGITS.contains(&w.iter().collect::<String>().to_ascii_lowercase().as_str()))
        .count();
    let han = chars.iter().filter(|c| crate::textnorm::is_han(**c) && !matches!(c, '嗯' | '呃' | '啊' | '额')).count();
    latin + han
}

/// Amounts, times, dates and years, whatever named them: a unit after, a currency sign
/// before, the shape of a date (2023-11-05), or four digits from 1900 to 2099.
fn not_personal(chars: &[char], groups: &[numbers::Item]) -> bool {
    let (start, end) = (groups[0].chars.start, groups.last().expect("a run has digits").chars.end);
    let after: String = chars[end..(end + 10).min(chars.len())].iter().collect::<String>().to_lowercase();
    let after = after.trim_start();
    let unit = [
        "元", "块", "美元", "分钟", "年", "月", "日", "号", "点", "岁", "天", "dollar", "buck", "percent", "minute",
        "year",
    ]
    .iter()
    .any(|u| after.starts_with(u));
    let currency = chars[..start].iter().rev().find(|c| !c.is_whitespace()).is_some_and(|c| "$¥￥€£".contains(*c));
    let lengths: Vec<usize> = groups.iter().map(|g| g.digits.len()).collect();
    let date = lengths.len() == 3
        && lengths[0] == 4
        && (1..=2).contains(&lengths[1])
        && (1..=2).contains(&lengths[2])
        && (groups[0].digits.starts_with("19") || groups[0].digits.starts_with("20"));
    let digits: String = groups.iter().map(|g| g.digits.as_str()).collect();
    let year = digits.len() == 4 && digits.parse::<u32>().is_ok_and(|y| (1900..=2099).contains(&y));
    unit || currency || date || year
}

/// Personal data in a character stream: (type, character range).
fn find(chars: &[char]) -> Vec<(PiiType, Range<usize>)> {
    let text: String = chars.iter().collect();
    let char_at: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    let to_char = |byte: usize| char_at.partition_point(|&b| b < byte);
    // A placeholder right after a domain stands for the digits it replaced, which would have
    // run on into the domain's last label ("co8888"): no address ends there.
    let mut found: Vec<(PiiType, Range<usize>)> = EMAIL
        .find_iter(&text)
        .filter(|m| PLACEHOLDER.find_at(&text, m.end()).is_none_or(|p| p.start() != m.end()))
        .map(|m| (PiiType::Email, to_char(m.start())..to_char(m.end())))
        .collect();
    // Digits inside an address are the address's; its words name no number.
    let mut masked = chars.to_vec();
    let mut plain = chars.to_vec();
    for (_, r) in &found {
        masked[r.clone()].iter_mut().for_each(|c| *c = '@');
        plain[r.clone()].iter_mut().for_each(|c| *c = ' ');
    }
    // Addresses and placeholders from an earlier redaction end a name's reach like a number
    // (placeholders of numbers carry their type on); their letters name nothing. So
    // redacting twice changes nothing.
    let mut handled: Vec<(usize, Option<PiiType>)> = found.iter().map(|(_, r)| (r.end, None)).collect();
    for m in PLACEHOLDER.find_iter(&text) {
        let (start, end) = (to_char(m.start()), to_char(m.end()));
        plain[start..end].iter_mut().for_each(|c| *c = ' ');
        let pii = PiiType::ALL.into_iter().find(|p| p.placeholder() == m.as_str()).expect("a placeholder");
        handled.push((end, Some(pii).filter(|p| *p != PiiType::Email)));
    }
    handled.sort_by_key(|(end, _)| *end);
    let mut handled = handled.into_iter().peekable();
    // The end of the last number and the type it went by, which the next run may carry on.
    let mut previous: Option<(usize, Option<PiiType>)> = None;
    for run in numbers::runs(&masked) {
        let (start, end) = (run.groups[0].chars.start, run.groups.last().expect("a run has digits").chars.end);
        while let Some(boundary) = handled.next_if(|(ph_end, _)| *ph_end <= start) {
            previous = Some(boundary);
        }
        let from = previous.map_or(0, |(end, _)| end);
        let name = match naming(&plain, from, start) {
            Naming::Named(pii) => Some(pii),
            Naming::Other => None,
            Naming::Unnamed => previous.and_then(|(end, name)| {
                name.filter(|_| start - end <= NAME_REACH && words_between(&plain[end..start]) <= 2)
            }),
        };
        // A number names the digits read after it, as the words before a number do.
        let mut last = name;
        let shape_name = name.filter(|_| !not_personal(chars, &run.groups));
        for (groups, kind) in numbers::split(&run, shape_name) {
            let part = &run.groups[groups];
            let number: String = part.iter().map(|g| g.digits.as_str()).collect();
            let pii = match kind {
                // 13-19 digits that fail Luhn are a card by length only: what the words
                // before called it decides (an ID number with a digit misheard).
                Some(PiiType::Card) if !numbers::luhn_valid(&number) => name.or(kind),
                Some(kind) => Some(kind),
                None => match last.filter(|_| !not_personal(chars, part)) {
                    Some(named) if number.len() >= NAMED_MIN_DIGITS => Some(named),
                    _ => (number.len() >= LONG_NUMBER_DIGITS).then_some(PiiType::Number),
                },
            };
            if let Some(pii) = pii {
                last = Some(pii);
                found.push((pii, part[0].chars.start..part[part.len() - 1].chars.end));
            }
        }
        previous = Some((end, last));
    }
    found.sort_by_key(|(_, r)| r.start);
    found
}

/// Redact personal data in free text (one piece, no times): what [`redact_call`] does to
/// every utterance, for text that has no stream around it.
pub fn redact_text(text: &str) -> (String, Vec<PiiType>) {
    let chars: Vec<char> = text.chars().collect();
    let found = find(&chars);
    (replace(&chars, &found), found.into_iter().map(|(p, _)| p).collect())
}

/// `chars` with each (type, range) replaced by the type's placeholder; ranges in order.
fn replace(chars: &[char], found: &[(PiiType, Range<usize>)]) -> String {
    let mut out = String::new();
    let mut at = 0;
    for (pii, range) in found {
        out.extend(&chars[at..range.start]);
        out.push_str(pii.placeholder());
        at = range.end;
    }
    out.extend(&chars[at..]);
    out
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
            let (first, last) = (covered[0].0, covered[covered.len() - 1].0);
            spans.push(PiiSpan {
                pii,
                speaker,
                start_s: span_start(&utterances[first.utterance], &pieces[first.utterance], first.piece),
                end_s: span_end(&utterances[last.utterance], &pieces[last.utterance], last.piece),
            });
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

/// A redaction starts where the word before it ended (or its utterance started) and ends
/// where the word after it starts: token onsets by alignment run late by a few tenths of a
/// second, and the first digit must not stay audible in the muted copy.
fn span_start(utterance: &Utterance, pieces: &[Piece], piece: usize) -> f64 {
    let before = if piece == 0 { utterance.start_s } else { pieces[piece - 1].end_s };
    before.min(pieces[piece].start_s)
}

fn span_end(utterance: &Utterance, pieces: &[Piece], piece: usize) -> f64 {
    let after = pieces.get(piece + 1).map_or(utterance.end_s, |p| p.start_s);
    after.max(pieces[piece].end_s)
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
            let digits: Vec<(PiiType, Range<usize>)> = numbers::runs(&chars)
                .iter()
                .map(|run| (span.pii, run.groups[0].chars.start..run.groups[run.groups.len() - 1].chars.end))
                .collect();
            *text = replace(&chars, &digits);
        }
    }
}

#[cfg(test)]
mod tests;
