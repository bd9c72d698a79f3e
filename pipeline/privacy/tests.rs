use super::*;
use crate::record::{Event, EventKind, Severity, TimedToken};

fn redacted(text: &str) -> String {
    redact_text(text).0
}

#[test]
fn mainland_numbers_in_every_script() {
    for (text, want) in [
        ("我的手机是13812345678。", "我的手机是[PHONE]。"),
        ("我的手机是１３８１２３４５６７８。", "我的手机是[PHONE]。"),
        ("幺三八，一二三四，五六七八", "[PHONE]"),
        ("一三八 嗯 两三四五 六七八零，对", "[PHONE]，对"),
        ("号码是138-1234-5678", "号码是[PHONE]"),
        ("打400-810-8888就行", "打[PHONE]就行"),
        ("座机是021-6888 8888", "座机是[PHONE]"),
        ("座机电话六八八八八八八八", "座机电话[PHONE]"),
        ("身份证110105194912310021", "身份证[ID]"),
        ("身份证号码是11010519491231002X对吧", "身份证号码是[ID]对吧"),
        // A digit lost by the recogniser: 17 digits, no checksum; the name says what it is.
        ("my ID number is 110105-1980412-0344.", "my ID number is [ID]."),
        ("卡号6222 0212 3456 7890 128", "卡号[CARD]"),
        ("卡号是六二二二零二一二三四五六七八九零一二八", "卡号是[CARD]"),
        ("邮箱是zhang.san@example.com", "邮箱是[EMAIL]"),
        ("邮箱123456789@qq.com谢谢", "邮箱[EMAIL]谢谢"),
        ("邮箱是zhangsan艾特qq点com", "邮箱是[EMAIL]"),
    ] {
        assert_eq!(redacted(text), want, "{text}");
    }
}

#[test]
fn english_digits_and_spelled_out_numbers() {
    for (text, want) in [
        ("my number is five five five, one two one two, thanks", "my number is [PHONE], thanks"),
        ("call me on 415 555 0134", "call me on [PHONE]"),
        ("It's four five three nine, one four eight eight, oh three four three, six four six seven.", "It's [CARD]."),
        ("the card is 4539 1488 0343 6467", "the card is [CARD]"),
        ("it's john dot smith at gmail dot com", "it's [EMAIL]"),
        ("one eight hundred, five five five, twenty one twelve", "[PHONE]"),
        // Misheard digits break a card number; after its name, the pieces are still redacted.
        (
            "The card number is 4 times 3 times, 1488, Nero 343, 6467.",
            "The card number is 4 times 3 times, [CARD], Nero [CARD].",
        ),
        (
            "my phone number is for one time, time time time, 0134",
            "my phone number is for one time, time time time, [PHONE]",
        ),
    ] {
        assert_eq!(redacted(text), want, "{text}");
    }
}

#[test]
fn ordinary_numbers_survive() {
    for text in [
        "这个套餐是三百九十九元一个月",
        "一共299元，两台",
        "2024年3月15日下午三点半",
        "您的订单3月15号已经发货了",
        "我等了二十分钟了",
        "请稍等一下",
        "第一个问题",
        "it costs twenty five dollars and ninety nine cents",
        "I ordered 2 items on March 15th, 2024",
        "room 305, floor 12",
        "it took 45 minutes",
        "你打电话过来说的是三台",
        "信用卡还了2000元",
        "my card expires in 2027",
        "the card cost 1200 dollars",
        "我们的营业时间是早上8点到晚上10点",
    ] {
        assert_eq!(redacted(text), text);
    }
}

fn utterance(speaker: Speaker, start_s: f64, tokens: &[&str]) -> Utterance {
    let tokens: Vec<TimedToken> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| TimedToken { text: t.to_string(), start_s: start_s + i as f64, end_s: start_s + i as f64 + 1.0 })
        .collect();
    let text = tokens.iter().map(|t| t.text.as_str()).collect::<String>().trim().to_string();
    Utterance {
        speaker,
        start_s,
        end_s: tokens.last().unwrap().end_s,
        text,
        avg_logprob: -0.2,
        no_speech_prob: 0.0,
        tokens,
    }
}

fn call(utterances: Vec<Utterance>, events: Vec<Event>) -> ScoredCall {
    ScoredCall { events, ..ScoredCall::of_utterances("c", utterances) }
}

#[test]
fn a_number_split_across_tokens_and_utterances_is_one_redaction_with_token_times() {
    let mut scored = call(
        vec![
            utterance(Speaker::Customer, 10.0, &["我的", "手机", "是", "一三", "八"]),
            utterance(Speaker::Agent, 16.0, &["好的", "您", "说"]),
            utterance(Speaker::Customer, 17.0, &["一二", "三四", "，", "五六", "七八", "。"]),
            utterance(Speaker::Customer, 40.0, &["对", "，", "就是", "这个"]),
        ],
        vec![],
    );
    let spans = redact_call(&mut scored, &PrivacySettings::default());
    assert_eq!(spans, vec![PiiSpan { pii: PiiType::Phone, speaker: Speaker::Customer, start_s: 13.0, end_s: 22.0 }]);
    let texts: Vec<&str> = scored.call.utterances.iter().map(|u| u.text.as_str()).collect();
    assert_eq!(texts, ["我的手机是[PHONE]", "好的您说", "[PHONE]。", "对，就是这个"]);
    assert_eq!(scored.call.utterances[0].tokens.last().unwrap().text, "[PHONE]");
    let pii: Vec<&Event> = scored.events.iter().filter(|e| e.kind == EventKind::Pii).collect();
    assert_eq!(pii.len(), 1);
    assert_eq!((pii[0].start_s, pii[0].end_s, pii[0].match_type), (13.0, 22.0, Some("phone")));
    assert_eq!(pii[0].matched_text.as_deref(), Some("[PHONE]"));
    assert!(!pii[0].detail.chars().any(|c| c.is_ascii_digit()));
}

#[test]
fn the_other_speaker_and_a_long_pause_end_a_number() {
    let mut scored = call(
        vec![
            utterance(Speaker::Customer, 0.0, &["一三八", "一二三四"]),
            utterance(Speaker::Agent, 2.0, &["五六七八"]),
            utterance(Speaker::Customer, 30.0, &["五六七八"]),
        ],
        vec![],
    );
    assert!(redact_call(&mut scored, &PrivacySettings::default()).is_empty());
}

#[test]
fn matched_texts_lose_the_digits_of_an_overlapping_redaction() {
    let rule_hit = Event {
        rule_id: Some("r".into()),
        severity: Some(Severity::Minor),
        matched_text: Some("你问我 一三八".into()),
        ..Event::metric(EventKind::ForbiddenPhrase, Some(Speaker::Customer), 0.0, 2.0, "hit".into())
    };
    let mut scored =
        call(vec![utterance(Speaker::Customer, 0.0, &["你问我", " 一三八", "一二三四", "五六七八"])], vec![rule_hit]);
    redact_call(&mut scored, &PrivacySettings::default());
    let hit = scored.events.iter().find(|e| e.kind == EventKind::ForbiddenPhrase).unwrap();
    assert_eq!(hit.matched_text.as_deref(), Some("你问我 [PHONE]"));
    assert_eq!(scored.call.utterances[0].text, "你问我 [PHONE]");
}

#[test]
fn untimed_utterances_are_redacted_with_their_own_times() {
    let mut scored = call(vec![Utterance::untimed(Speaker::Mixed, 5.0, 9.0, "卡号 4539 1488 0343 6467")], vec![]);
    let spans = redact_call(&mut scored, &PrivacySettings::default());
    assert_eq!((spans[0].start_s, spans[0].end_s, spans[0].pii), (5.0, 9.0, PiiType::Card));
    assert_eq!(scored.call.utterances[0].text, "卡号 [CARD]");
}

#[test]
fn output_access_masks() {
    assert_eq!(0o666 & !OutputAccess::Owner.umask(), 0o600);
    assert_eq!(0o777 & !OutputAccess::Owner.umask(), 0o700);
    assert_eq!(0o666 & !OutputAccess::Group.umask(), 0o640);
    assert_eq!(0o777 & !OutputAccess::Group.umask(), 0o750);
}
