//! Rule evaluation: speaker scope, windows, deductions and the score.

use super::scorecard::{self, ScorecardSettings};
use super::*;
use crate::metrics::CallMetrics;
use crate::record::TimedToken;

/// An utterance whose tokens are its characters (Chinese) or words, evenly spread.
fn utt(speaker: Speaker, start_s: f64, end_s: f64, text: &str) -> Utterance {
    let pieces: Vec<String> = if text.is_ascii() {
        text.split(' ').map(|w| format!(" {w}")).collect()
    } else {
        text.chars().map(String::from).collect()
    };
    let step = (end_s - start_s) / pieces.len() as f64;
    let tokens = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| TimedToken {
            text: p.clone(),
            start_s: start_s + i as f64 * step,
            end_s: start_s + (i + 1) as f64 * step,
        })
        .collect();
    Utterance { speaker, start_s, end_s, text: text.into(), avg_logprob: -0.2, no_speech_prob: 0.01, tokens }
}

fn speech_of(utterances: &[Utterance]) -> Vec<(Speaker, Vec<SpeechInterval>)> {
    [Speaker::Agent, Speaker::Customer]
        .into_iter()
        .map(|s| {
            (
                s,
                utterances
                    .iter()
                    .filter(|u| u.speaker == s)
                    .map(|u| SpeechInterval { start_s: u.start_s, end_s: u.end_s })
                    .collect(),
            )
        })
        .collect()
}

fn run(rules: &[PhraseRule], utterances: &[Utterance], duration_s: f64) -> Vec<Event> {
    run_with_holds(rules, utterances, duration_s, &[])
}

fn run_with_holds(
    rules: &[PhraseRule],
    utterances: &[Utterance],
    duration_s: f64,
    holds: &[SpeechInterval],
) -> Vec<Event> {
    let speech = speech_of(utterances);
    let call = CallText { utterances, speech: &speech, duration_s, language: "zh", holds };
    evaluate(rules, &MatchSettings::default(), &call)
}

fn rule(kind: RuleKind, speaker: SpeakerScope, patterns: &[&str]) -> PhraseRule {
    PhraseRule {
        id: "r".into(),
        kind,
        speaker,
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
        severity: Severity::Major,
        points: 10.0,
        ..Default::default()
    }
}

#[test]
fn forbidden_hits_carry_word_times_match_type_and_points_once() {
    let u = [utt(Speaker::Agent, 10.0, 20.0, "这个不管我的事你问别人吧不关我的事")];
    let events = run(&[rule(RuleKind::Forbidden, SpeakerScope::Agent, &["不关我的事"])], &u, 60.0);
    assert_eq!(events.len(), 2);
    // The homophone (chars 2-6) comes before the exact hit (chars 12-16).
    let (fuzzy, exact) = (&events[0], &events[1]);
    assert_eq!(fuzzy.match_type, Some("fuzzy"));
    assert_eq!(fuzzy.matched_text.as_deref(), Some("不管我的事"));
    assert!((fuzzy.start_s - (10.0 + 2.0 * 10.0 / 17.0)).abs() < 1e-9, "{}", fuzzy.start_s);
    assert!((fuzzy.end_s - (10.0 + 7.0 * 10.0 / 17.0)).abs() < 1e-9);
    assert_eq!(exact.match_type, Some("exact"));
    assert_eq!((fuzzy.points, exact.points), (Some(10.0), Some(0.0)), "a rule deducts once per call");
}

/// An utterance from explicit (text, start_s, end_s) tokens.
fn tokenised(speaker: Speaker, tokens: &[(&str, f64, f64)]) -> Utterance {
    let tokens: Vec<TimedToken> =
        tokens.iter().map(|&(text, start_s, end_s)| TimedToken { text: text.into(), start_s, end_s }).collect();
    let text = tokens.iter().map(|t| t.text.as_str()).collect::<String>().trim().to_string();
    let (start_s, end_s) = (tokens[0].start_s, tokens[tokens.len() - 1].end_s);
    Utterance { speaker, start_s, end_s, text, avg_logprob: -0.2, no_speech_prob: 0.01, tokens }
}

#[test]
fn phrases_match_across_sub_word_and_number_tokens_with_the_words_times() {
    let english = tokenised(
        Speaker::Agent,
        &[(" Thank", 1.0, 1.2), (" you", 1.2, 1.4), (" for", 1.4, 1.6), (" wait", 1.6, 1.9), ("ing", 1.9, 2.1)],
    );
    let events = run(&[rule(RuleKind::Forbidden, SpeakerScope::Agent, &["thank you for waiting"])], &[english], 10.0);
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].start_s, events[0].end_s), (1.0, 2.1));
    assert_eq!(events[0].match_type, Some("exact"));
    // "三百" + "零五" is 305 however the rule writes it, and only the number's tokens are hit.
    let chinese = tokenised(
        Speaker::Agent,
        &[("退", 3.0, 3.2), ("款", 3.2, 3.4), ("三百", 3.4, 3.8), ("零五", 3.8, 4.2), ("元", 4.2, 4.4)],
    );
    for pattern in ["305", "三百零五", "三零五"] {
        let events = run(&[rule(RuleKind::Forbidden, SpeakerScope::Agent, &[pattern])], &[chinese.clone()], 10.0);
        assert_eq!(events.len(), 1, "{pattern}");
        assert_eq!(
            (events[0].start_s, events[0].end_s, events[0].matched_text.as_deref()),
            (3.4, 4.2, Some("三百零五"))
        );
    }
}

#[test]
fn speaker_scope_keeps_customer_words_out_of_agent_rules() {
    let u = [utt(Speaker::Customer, 5.0, 8.0, "不关我的事"), utt(Speaker::Agent, 9.0, 12.0, "您好请问")];
    assert!(run(&[rule(RuleKind::Forbidden, SpeakerScope::Agent, &["不关我的事"])], &u, 30.0).is_empty());
    assert_eq!(run(&[rule(RuleKind::Forbidden, SpeakerScope::Customer, &["不关我的事"])], &u, 30.0).len(), 1);
    assert_eq!(run(&[rule(RuleKind::Forbidden, SpeakerScope::Any, &["不关我的事"])], &u, 30.0).len(), 1);
    // Mono: the mixed channel is in every scope.
    let mono = [utt(Speaker::Mixed, 5.0, 8.0, "不关我的事")];
    assert_eq!(run(&[rule(RuleKind::Forbidden, SpeakerScope::Agent, &["不关我的事"])], &mono, 30.0).len(), 1);
}

#[test]
fn required_phrases_respect_first_and_last_windows() {
    let greeting =
        PhraseRule { within_first_s: Some(10.0), ..rule(RuleKind::Required, SpeakerScope::Agent, &["您好"]) };
    let closing = PhraseRule {
        within_last_s: Some(15.0),
        ..rule(RuleKind::Required, SpeakerScope::Agent, &["感谢您的来电"])
    };
    let on_time = [utt(Speaker::Agent, 1.0, 3.0, "您好"), utt(Speaker::Agent, 50.0, 54.0, "感谢您的来电")];
    assert!(run(&[greeting.clone(), closing.clone()], &on_time, 60.0).is_empty());
    let late = [utt(Speaker::Agent, 20.0, 22.0, "您好"), utt(Speaker::Agent, 30.0, 34.0, "感谢您的来电")];
    let events = run(&[greeting, closing], &late, 60.0);
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.kind == EventKind::RequiredPhraseMissing && e.points == Some(10.0)));
    assert_eq!((events[0].start_s, events[0].end_s), (0.0, 10.0));
    assert_eq!((events[1].start_s, events[1].end_s), (45.0, 60.0));
}

#[test]
fn thanks_for_waiting_is_required_after_each_hold() {
    let rule = PhraseRule {
        after_silence_min_s: Some(10.0),
        after_silence_within_s: Some(8.0),
        ..rule(RuleKind::Required, SpeakerScope::Agent, &["谢谢您的耐心等待"])
    };
    let u = [
        utt(Speaker::Agent, 0.0, 3.0, "请稍等"),
        utt(Speaker::Agent, 15.0, 19.0, "谢谢您的耐心等待"), // after a 12 s hold: fine
        utt(Speaker::Customer, 20.0, 22.0, "好的"),
        utt(Speaker::Agent, 40.0, 43.0, "查到了"), // after an 18 s hold: missing
        utt(Speaker::Agent, 45.0, 46.0, "好"),     // a 2 s pause is no hold
    ];
    let events = run(&[rule.clone()], &u, 50.0);
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].start_s, events[0].end_s), (40.0, 48.0));
    // No hold at all: nothing required.
    assert!(run(&[rule], &u[..1], 10.0).is_empty());
}

#[test]
fn default_etiquette_is_keyed_on_holds_not_on_any_silence() {
    let etiquette: Vec<PhraseRule> = lexicon::default_rules()
        .into_iter()
        .filter(|r| ["zh.required.please_wait", "zh.required.thanks_for_waiting"].contains(&r.id.as_str()))
        .collect();
    assert_eq!(etiquette.len(), 2);
    let u = [
        utt(Speaker::Agent, 0.0, 4.0, "请您稍等我帮您查一下"),
        // hold 4-30 (phrase)
        utt(Speaker::Agent, 30.0, 35.0, "谢谢您的耐心等待"),
        utt(Speaker::Customer, 36.0, 38.0, "好的"),
        utt(Speaker::Agent, 40.0, 42.0, "我看一下"),
        // hold 42-80 (music, no phrase, nothing said after it)
        utt(Speaker::Agent, 80.0, 84.0, "查到了您的订单"),
        // 84-110: dead air, not a hold: no etiquette required
        utt(Speaker::Agent, 110.0, 112.0, "还有别的吗"),
    ];
    let holds = [SpeechInterval { start_s: 4.0, end_s: 30.0 }, SpeechInterval { start_s: 42.0, end_s: 80.0 }];
    let events = run_with_holds(&etiquette, &u, 120.0, &holds);
    let missing: Vec<(&str, f64, f64)> =
        events.iter().map(|e| (e.rule_id.as_deref().unwrap(), e.start_s, e.end_s)).collect();
    assert_eq!(
        missing,
        vec![("zh.required.please_wait", 27.0, 42.0), ("zh.required.thanks_for_waiting", 80.0, 95.0)],
        "{events:?}"
    );
    assert!(run_with_holds(&etiquette, &u, 120.0, &[]).is_empty(), "no holds, nothing required");
}

#[test]
fn language_scoped_rules_skip_other_languages() {
    let english = PhraseRule {
        language: Some("en".into()),
        ..rule(RuleKind::Required, SpeakerScope::Agent, &["thank you for calling"])
    };
    assert!(run(&[english], &[utt(Speaker::Agent, 0.0, 2.0, "您好")], 10.0).is_empty());
}

#[test]
fn exact_only_matching_misses_homophones() {
    let u = [utt(Speaker::Agent, 0.0, 5.0, "不管我的事")];
    let speech = speech_of(&u);
    let call = CallText { utterances: &u, speech: &speech, duration_s: 10.0, language: "zh", holds: &[] };
    let r = [rule(RuleKind::Forbidden, SpeakerScope::Agent, &["不关我的事"])];
    assert!(evaluate(&r, &MatchSettings { fuzzy: false, ..Default::default() }, &call).is_empty());
    assert_eq!(evaluate(&r, &MatchSettings::default(), &call).len(), 1);
}

#[test]
fn score_arithmetic_traces_every_point_to_an_event() {
    let silence = Event::metric(EventKind::Silence, None, 10.0, 45.0, "35 s".into());
    let interruptions: Vec<Event> = (0..3)
        .map(|i| {
            Event::metric(
                EventKind::Interruption,
                Some(Speaker::Agent),
                50.0 + i as f64,
                51.0 + i as f64,
                String::new(),
            )
        })
        .collect();
    let fast = Event::metric(EventKind::FastSpeech, Some(Speaker::Agent), 70.0, 74.0, "320 cpm".into());
    let mut events = vec![silence, fast];
    events.extend(interruptions);
    let metrics = CallMetrics { interruptions_by_agent: Some(3), ..Default::default() };
    let deductions = scorecard::metric_deductions(&metrics, &events, &ScorecardSettings::default());
    let ids: Vec<&str> = deductions.iter().map(|e| e.rule_id.as_deref().unwrap()).collect();
    assert_eq!(ids, vec!["scorecard.long_silence", "scorecard.agent_interruptions", "scorecard.fast_speech"]);
    assert_eq!(deductions[1].start_s, 52.0, "anchored at the interruption that crossed the limit");
    let mut all = deductions;
    all.push(Event {
        points: Some(20.0),
        ..Event::metric(EventKind::ForbiddenPhrase, Some(Speaker::Agent), 1.0, 2.0, String::new())
    });
    all.push(Event {
        points: Some(0.0),
        ..Event::metric(EventKind::ForbiddenPhrase, Some(Speaker::Agent), 3.0, 4.0, String::new())
    });
    assert_eq!(scorecard::qa_score(&all), 100.0 - 10.0 - 5.0 - 3.0 - 20.0);
    let floor: Vec<Event> = (0..6)
        .map(|_| Event {
            points: Some(20.0),
            ..Event::metric(EventKind::ForbiddenPhrase, None, 0.0, 1.0, String::new())
        })
        .collect();
    assert_eq!(scorecard::qa_score(&floor), 0.0);
    // Two interruptions are within the limit.
    let fine = CallMetrics { interruptions_by_agent: Some(2), ..Default::default() };
    assert!(scorecard::metric_deductions(&fine, &events[..1], &ScorecardSettings::default())
        .iter()
        .all(|e| e.rule_id.as_deref() != Some("scorecard.agent_interruptions")));
}

#[test]
fn long_and_many_holds_deduct_once_each() {
    let hold = |start_s: f64, seconds: f64| {
        Event::metric(EventKind::Hold, Some(Speaker::Agent), start_s, start_s + seconds, String::new())
    };
    let holds = vec![hold(10.0, 30.0), hold(60.0, 130.0), hold(200.0, 125.0), hold(400.0, 20.0)];
    let metrics = CallMetrics { hold_count: 4, ..Default::default() };
    let deductions = scorecard::metric_deductions(&metrics, &holds, &ScorecardSettings::default());
    let found: Vec<(&str, f64)> = deductions.iter().map(|e| (e.rule_id.as_deref().unwrap(), e.start_s)).collect();
    // The longest hold over 120 s; the fourth hold crosses the limit of 3.
    assert_eq!(found, vec![("scorecard.long_hold", 60.0), ("scorecard.many_holds", 400.0)]);
    let three = CallMetrics { hold_count: 3, ..Default::default() };
    assert!(scorecard::metric_deductions(
        &three,
        &holds[..3],
        &ScorecardSettings { long_hold_points: 0.0, ..Default::default() }
    )
    .is_empty());
}

#[test]
fn default_lexicon_comes_from_the_seed_documents() {
    let rules = lexicon::default_rules();
    let all: Vec<&str> = rules.iter().flat_map(|r| r.patterns.iter().map(String::as_str)).collect();
    for phrase in
        ["不关我的事", "你问我我问谁", "我就这态度", "请稍等", "谢谢您的耐心等待", "请问还有什么可以帮您", "感谢致电"]
    {
        assert!(all.contains(&phrase), "{phrase}");
    }
    let mut ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), rules.len(), "rule ids are unique");
}
