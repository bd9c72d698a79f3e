//! The month's report as one self-contained HTML page: score distribution, agents (with holds
//! and raised voices), agreement with QA per rule, and the calls to coach, where every moment
//! says what happened and plays the recording from there when clicked.
//!
//! Nothing is loaded from the network. Recordings are linked as `file://` URLs with a media
//! fragment (`#t=83.0`): a click seeks the call's audio element (a script of a few lines);
//! without scripts the link opens the recording at that time. `#moment=ID` in the page's URL
//! clicks that moment on load, so a notebook or a ticket can link to one.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use super::{AgentMonth, CallRow, Line, Moment};
use crate::sampling::agreement::RuleAgreement;
use crate::sampling::Selected;

pub struct Page<'a> {
    pub month: &'a str,
    pub calls: &'a [CallRow],
    pub agents: &'a [AgentMonth],
    pub samples: &'a [Selected],
    pub moments: &'a HashMap<String, Vec<Moment>>,
    pub transcripts: &'a HashMap<String, Vec<Line>>,
    pub recordings: &'a HashMap<&'a str, PathBuf>,
    pub rules: &'a [RuleAgreement],
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn clock(seconds: f64) -> String {
    format!("{}:{:04.1}", (seconds / 60.0).floor() as u64, seconds % 60.0)
}

fn pct(x: f64) -> String {
    format!("{:.0}%", 100.0 * x)
}

/// A `file://` URL of a local path.
fn file_url(path: &std::path::Path) -> String {
    let text = path.to_string_lossy();
    let encoded: String = text
        .chars()
        .map(|c| match c {
            '%' => "%25".into(),
            ' ' => "%20".into(),
            '#' => "%23".into(),
            '?' => "%3F".into(),
            '"' => "%22".into(),
            c => c.to_string(),
        })
        .collect();
    if encoded.starts_with('/') {
        format!("file://{encoded}")
    } else {
        encoded
    }
}

/// What a supervisor calls the moment: the rule in words, or the kind of event.
pub fn title(moment: &Moment) -> String {
    let words = |s: &str| s.replace('_', " ");
    if let Some(rule) = moment.rule_id.as_deref() {
        let parts: Vec<&str> = rule.split('.').collect();
        return match parts.as_slice() {
            [_, "forbidden", name] => format!("Banned phrase ({})", words(name)),
            [_, "required", name] => format!("Required phrase missing ({})", words(name)),
            ["scorecard", name] => format!("Scorecard: {}", words(name)),
            _ => words(rule),
        };
    }
    match moment.kind.as_str() {
        "silence" => "Dead air".into(),
        "interruption" => "Talked over the other party".into(),
        "fast_speech" => "Spoke too fast".into(),
        "hold" => "Customer on hold".into(),
        "raised_voice" => "Raised voice".into(),
        "no_rules_for_language" => "Not checked: no rules for the language".into(),
        other => words(other),
    }
}

/// The words spoken around a moment (its speaker's, when it has one), shortened.
fn transcript_line(lines: &[Line], moment: &Moment) -> Option<String> {
    let near: Vec<&str> = lines
        .iter()
        .filter(|(start, end, speaker, _)| {
            *start <= moment.end_s + 1.0
                && *end >= moment.start_s - 1.0
                && moment.speaker.as_deref().is_none_or(|s| s == speaker)
        })
        .map(|(_, _, _, text)| text.trim())
        .collect();
    let text = near.join(" ");
    if text.is_empty() {
        return None;
    }
    let short: String = text.chars().take(140).collect();
    Some(if short.len() < text.len() { format!("{short}…") } else { short })
}

pub fn render(page: &Page) -> String {
    let mut h = String::new();
    let (month, calls, samples) = (page.month, page.calls, page.samples);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"zh\"><head><meta charset=\"utf-8\"><title>QA report {month}</title><style>\
         body{{font-family:sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse;margin:8px 0}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
         .risk{{color:#a00}}#coach td{{text-align:left;vertical-align:top}}#coach li{{margin:3px 0}}h2{{margin-top:28px}}\
         q{{color:#555}}a.seek{{font-family:monospace}}</style></head><body>\
         <h1>QA report {month}</h1><p>{} calls scored automatically; {} selected for human review ({:.1}%).</p>",
        calls.len(),
        samples.len(),
        100.0 * samples.len() as f64 / calls.len().max(1) as f64
    );
    score_distribution(&mut h, calls);
    agents_table(&mut h, page.agents);
    agreement_table(&mut h, page.rules);
    coaching(&mut h, page);
    h.push_str(
        "<p><small>Weights are 1 / inclusion probability: use them for any rate estimated from the reviewed calls. \
         Top-ups (weight -) were chosen to reach a minimum, not drawn by the design: they are left out of the \
         estimates.</small></p>\
         <script>\
         document.addEventListener('click',function(e){var a=e.target.closest('a.seek');if(!a)return;e.preventDefault();\
         var audio=document.getElementById(a.dataset.audio);audio.currentTime=parseFloat(a.dataset.t);\
         audio.play().catch(function(){});document.body.dataset.seeked=a.dataset.audio+'@'+audio.currentTime;});\
         window.addEventListener('load',function(){var m=location.hash.match(/^#moment=(.+)$/);\
         if(m){var a=document.getElementById(decodeURIComponent(m[1]));if(a)a.click();}});\
         </script></body></html>\n",
    );
    h
}

fn score_distribution(h: &mut String, calls: &[CallRow]) {
    let mut bins = [0usize; 10];
    for s in calls.iter().filter_map(|c| c.qa_score) {
        bins[((s / 10.0).floor() as usize).min(9)] += 1;
    }
    let peak = bins.iter().copied().max().unwrap_or(0).max(1);
    h.push_str("<h2>Score distribution</h2><svg id=\"scores\" width=\"520\" height=\"170\" role=\"img\">");
    for (i, &n) in bins.iter().enumerate() {
        let height = 120.0 * n as f64 / peak as f64;
        let _ = write!(
            h,
            "<rect x=\"{}\" y=\"{:.0}\" width=\"44\" height=\"{height:.0}\" fill=\"#4a7\"/><text x=\"{}\" y=\"150\" font-size=\"11\">{}-{}</text><text x=\"{}\" y=\"{:.0}\" font-size=\"11\">{n}</text>",
            10 + i * 50,
            130.0 - height,
            12 + i * 50,
            i * 10,
            i * 10 + 9 + usize::from(i == 9),
            24 + i * 50,
            126.0 - height
        );
    }
    h.push_str("</svg>");
}

/// A 95% interval as text and a small bar.
fn interval(value: f64, low: f64, high: f64, n: usize) -> String {
    format!(
        "{} ({}&ndash;{}, n={n}) <svg width=\"120\" height=\"10\"><rect x=\"0\" y=\"4\" width=\"120\" height=\"2\" fill=\"#ddd\"/><rect x=\"{:.0}\" y=\"1\" width=\"{:.0}\" height=\"8\" fill=\"#69c\"/><rect x=\"{:.0}\" y=\"0\" width=\"2\" height=\"10\" fill=\"#036\"/></svg>",
        pct(value),
        pct(low),
        pct(high),
        120.0 * low,
        (120.0 * (high - low)).max(1.0),
        120.0 * value
    )
}

fn agents_table(h: &mut String, agents: &[AgentMonth]) {
    h.push_str("<h2>Agents</h2><table id=\"agents\"><tr><th>agent</th><th>calls</th><th>sampled</th><th>banned phrase</th><th>required missing</th><th>long dead air</th><th>interrupts</th><th>holds per call</th><th>hold over limit</th><th>agent raised voice</th><th>customer raised voice</th><th>mean score</th><th>human fail rate (95% interval)</th></tr>");
    for a in agents {
        let estimate = a.fail_rate.map_or("no verdicts yet".into(), |e| interval(e.value, e.low, e.high, e.n));
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{estimate}</td></tr>",
            escape(&a.agent_id),
            a.calls,
            a.sampled,
            pct(a.forbidden_rate),
            pct(a.required_missing_rate),
            pct(a.long_silence_rate),
            pct(a.agent_interruption_rate),
            a.holds_per_call,
            pct(a.long_hold_rate),
            pct(a.agent_raised_voice_rate),
            pct(a.customer_raised_voice_rate),
            a.mean_qa_score.map_or("-".into(), |s| format!("{s:.1}"))
        );
    }
    h.push_str("</table>");
}

fn agreement_table(h: &mut String, rules: &[RuleAgreement]) {
    h.push_str("<h2>Agreement with QA</h2>");
    if rules.is_empty() {
        h.push_str("<p id=\"agreement\">No evaluations with per-rule verdicts yet: add columns named by rule id (confirmed / rejected / not_applicable) to the evaluation files, or use <code>callqa evaluate</code>.</p>");
        return;
    }
    h.push_str("<p>How often evaluators confirmed each rule's automatic flag on the sampled calls, weighted by the sample design: the rules QA disagrees with most come first.</p><table id=\"agreement\"><tr><th>rule</th><th>flags evaluated</th><th>confirmed</th><th>rejected</th><th>precision (95% interval)</th><th>missed by the rule</th></tr>");
    for r in rules {
        let precision = r.precision.map_or("-".into(), |e| interval(e.value, e.low, e.high, e.n));
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{precision}</td><td>{}</td></tr>",
            escape(&r.rule_id),
            r.evaluated,
            r.confirmed,
            r.rejected,
            r.missed
        );
    }
    h.push_str("</table>");
}

fn coaching(h: &mut String, page: &Page) {
    h.push_str("<h2>Calls to coach</h2><table id=\"coach\"><tr><th>call</th><th>agent</th><th>stratum</th><th>weight</th><th>why</th><th>moments (click to listen)</th></tr>");
    let mut ordered: Vec<&Selected> = page.samples.iter().collect();
    ordered.sort_by(|a, b| b.stratum.cmp(a.stratum).then(a.call_id.cmp(&b.call_id)));
    let none = Vec::new();
    for (row, s) in ordered.into_iter().enumerate() {
        let audio_id = format!("audio-{row}");
        let url = page.recordings.get(s.call_id.as_str()).map(|p| file_url(p));
        let lines = page.transcripts.get(&s.call_id).unwrap_or(&none);
        let mut cell = String::new();
        if let Some(url) = &url {
            let _ =
                write!(cell, "<audio id=\"{audio_id}\" controls preload=\"none\" src=\"{}\"></audio><ul>", escape(url));
        } else {
            cell.push_str("<ul>");
        }
        let shown = page.moments.get(&s.call_id).map_or(&[][..], Vec::as_slice).iter().filter(|m| {
            // Deductions repeat their moment, music repeats its hold; redactions are no coaching moments.
            !matches!(m.kind.as_str(), "metric_threshold" | "pii" | "music")
        });
        for (k, m) in shown.take(8).enumerate() {
            let at = match &url {
                Some(url) => format!(
                    "<a class=\"seek\" id=\"m-{row}-{k}\" href=\"{}#t={:.1}\" data-audio=\"{audio_id}\" data-t=\"{:.1}\">{}</a>",
                    escape(url),
                    m.start_s,
                    m.start_s,
                    clock(m.start_s)
                ),
                None => clock(m.start_s),
            };
            let said = m.matched_text.as_deref().map_or(String::new(), |t| format!(": &ldquo;{}&rdquo;", escape(t)));
            let who = m.speaker.as_deref().map_or(String::new(), |s| format!("{s}, "));
            let context = transcript_line(lines, m).map_or(String::new(), |l| format!("<br><q>{}</q>", escape(&l)));
            let _ = write!(
                cell,
                "<li>{at} <b>{}</b>{said} <small>({who}{})</small>{context}</li>",
                escape(&title(m)),
                escape(&m.detail)
            );
        }
        cell.push_str("</ul>");
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{cell}</td></tr>",
            escape(&s.call_id),
            escape(&s.agent_id),
            s.stratum,
            s.stratum,
            if s.in_design() { format!("{:.1}", 1.0 / s.inclusion_prob) } else { "-".into() },
            escape(&s.reason)
        );
    }
    h.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moment(kind: &str, rule_id: Option<&str>, speaker: Option<&str>, start_s: f64) -> Moment {
        Moment {
            start_s,
            end_s: start_s + 2.0,
            kind: kind.into(),
            speaker: speaker.map(String::from),
            rule_id: rule_id.map(String::from),
            matched_text: None,
            detail: String::new(),
        }
    }

    #[test]
    fn moments_are_named_in_a_supervisors_words_with_the_words_around_them() {
        let banned = moment("forbidden_phrase", Some("zh.forbidden.not_my_business"), Some("agent"), 10.0);
        assert_eq!(title(&banned), "Banned phrase (not my business)");
        assert_eq!(title(&moment("hold", None, Some("agent"), 0.0)), "Customer on hold");
        assert_eq!(
            title(&moment("required_phrase_missing", Some("en.required.please_hold"), None, 0.0)),
            "Required phrase missing (please hold)"
        );
        let lines: Vec<Line> = vec![
            (0.0, 5.0, "customer".into(), "我的快递到哪了".into()),
            (9.5, 13.0, "agent".into(), "这个不关我的事".into()),
            (30.0, 33.0, "agent".into(), "还有别的吗".into()),
        ];
        assert_eq!(transcript_line(&lines, &banned).as_deref(), Some("这个不关我的事"));
        assert_eq!(file_url(std::path::Path::new("/calls/a b#1.wav")), "file:///calls/a%20b%231.wav");
    }
}
