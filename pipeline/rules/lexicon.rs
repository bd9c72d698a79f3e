//! The default lexicon: the centre's own banned service phrases (服务禁语) and standard
//! service phrases (标准服务用语) from the QA documents in `shared/seeds/` (`002_*`: the banned
//! list and the call etiquette; `001_*`: the QSDD standard phrases), with English equivalents.
//! Every rule is editable in config (`[[phrases]]` replaces this list).

use super::{PhraseRule, RuleKind, SpeakerScope};
use crate::record::Severity;

fn forbidden(id: &str, language: &str, severity: Severity, points: f64, patterns: &[&str]) -> PhraseRule {
    PhraseRule {
        id: id.into(),
        kind: RuleKind::Forbidden,
        speaker: SpeakerScope::Agent,
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
        language: Some(language.into()),
        severity,
        points,
        ..PhraseRule::default()
    }
}

fn required(id: &str, language: &str, points: f64, patterns: &[&str]) -> PhraseRule {
    PhraseRule {
        id: id.into(),
        kind: RuleKind::Required,
        speaker: SpeakerScope::Agent,
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
        language: Some(language.into()),
        severity: Severity::Minor,
        points,
        ..PhraseRule::default()
    }
}

pub fn default_rules() -> Vec<PhraseRule> {
    use Severity::*;
    vec![
        // 服务禁语 (seed 002, section 十四)
        forbidden(
            "zh.forbidden.not_my_business",
            "zh",
            Critical,
            20.0,
            &["不关我的事", "这不是我们的问题", "明明就是你的问题", "又不是我的错"],
        ),
        forbidden("zh.forbidden.ask_who", "zh", Critical, 20.0, &["你问我我问谁", "我怎么知道", "谁告诉你的"]),
        forbidden(
            "zh.forbidden.attitude",
            "zh",
            Critical,
            20.0,
            &[
                "我就这态度",
                "我就这个态度",
                "你想怎样",
                "你要投诉就投诉",
                "有什么了不起的",
                "你到底想怎么样",
                "你有完没完",
                "嘴巴放干净一点",
            ],
        ),
        forbidden("zh.forbidden.hurry", "zh", Major, 10.0, &["急什么", "别催我", "快点说", "你着什么急"]),
        forbidden("zh.forbidden.interrupt", "zh", Major, 10.0, &["让我说完你再讲", "你听我说", "我跟你讲", "我告诉你"]),
        forbidden(
            "zh.forbidden.already_told",
            "zh",
            Major,
            10.0,
            &["我不是跟你说过了吗", "跟你说过了", "刚才不是已经告诉你了吗", "你听不懂我说话吗", "我说了你又不相信"],
        ),
        forbidden(
            "zh.forbidden.refuse",
            "zh",
            Major,
            10.0,
            &["不行就是不行", "没法查", "没办法", "不解释就是这么规定的", "你找领导也没用", "那我也没办法了"],
        ),
        forbidden("zh.forbidden.not_know", "zh", Minor, 5.0, &["我不知道", "我不清楚", "你自己去看"]),
        forbidden("zh.forbidden.hang_up", "zh", Critical, 20.0, &["就这样吧我挂了", "再不说话我就挂了"]),
        forbidden("zh.forbidden.louder", "zh", Minor, 5.0, &["大声点", "根本听不到"]),
        // 标准服务用语 and call etiquette (seeds 001, 002 section 十五.2)
        PhraseRule { within_first_s: Some(20.0), ..required("zh.required.greeting", "zh", 5.0, &["您好", "你好"]) },
        PhraseRule {
            before_hold_within_s: Some(15.0),
            ..required("zh.required.please_wait", "zh", 3.0, &["请稍等", "请您稍等", "稍等一下"])
        },
        PhraseRule {
            after_hold_within_s: Some(15.0),
            ..required(
                "zh.required.thanks_for_waiting",
                "zh",
                3.0,
                &["谢谢您的耐心等待", "感谢您的耐心等待", "让您久等了"],
            )
        },
        PhraseRule {
            within_last_s: Some(60.0),
            ..required(
                "zh.required.anything_else",
                "zh",
                3.0,
                &["请问还有什么可以帮您", "还有什么可以帮您", "还有其他问题吗"],
            )
        },
        PhraseRule {
            within_last_s: Some(30.0),
            ..required(
                "zh.required.thanks_for_calling",
                "zh",
                3.0,
                &["感谢您的来电", "谢谢您的来电", "感谢致电", "感谢来电"],
            )
        },
        // English equivalents
        forbidden(
            "en.forbidden.not_my_problem",
            "en",
            Critical,
            20.0,
            &["not my problem", "not my job", "that's your problem"],
        ),
        forbidden(
            "en.forbidden.attitude",
            "en",
            Critical,
            20.0,
            &["calm down", "what do you want from me", "go ahead and complain"],
        ),
        forbidden(
            "en.forbidden.told_you",
            "en",
            Major,
            10.0,
            &["i already told you", "you're not listening", "how many times"],
        ),
        forbidden("en.forbidden.hurry", "en", Major, 10.0, &["hurry up", "get to the point"]),
        PhraseRule {
            within_first_s: Some(20.0),
            ..required(
                "en.required.greeting",
                "en",
                5.0,
                &["thank you for calling", "how can i help you", "good morning", "good afternoon"],
            )
        },
        PhraseRule {
            before_hold_within_s: Some(15.0),
            ..required("en.required.please_hold", "en", 3.0, &["please hold", "one moment please", "bear with me"])
        },
        PhraseRule {
            after_hold_within_s: Some(15.0),
            ..required(
                "en.required.thanks_for_waiting",
                "en",
                3.0,
                &["thank you for waiting", "thanks for waiting", "thank you for holding"],
            )
        },
        PhraseRule {
            within_last_s: Some(60.0),
            ..required(
                "en.required.anything_else",
                "en",
                3.0,
                &["anything else i can help you with", "is there anything else"],
            )
        },
        PhraseRule {
            within_last_s: Some(30.0),
            ..required("en.required.thanks_for_calling", "en", 3.0, &["thank you for calling", "thanks for calling"])
        },
    ]
}
