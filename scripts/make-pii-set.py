#!/usr/bin/env python3
"""Labelled PII set for callqa's redaction: conversations in the shapes Whisper writes.

Usage: scripts/make-pii-set.py --seed N [--cases K] > set.jsonl

One JSON object per case (a stretch of one call):
  {"id": "zh-0007", "language": "zh", "utterances": [
      {"speaker": "customer", "segments": [{"text": "我的手机是"}, {"text": "138 1234", "pii": "phone", "item": 0}]},
      {"speaker": "customer", "segments": [{"text": "5678", "pii": "phone", "item": 0}, {"text": "。"}]}]}
Segments with "pii" hold personal data (an item may run across utterances); every other
segment must survive redaction, including the ordinary numbers planted in them (prices,
dates, times, quantities, short order numbers, ages, floors).

The fixture fixtures/pii/labelled.jsonl is seed 1 (the development set); the test also
generates a set with a seed nobody tuned on.
"""
import argparse
import json
import random

ZH_DIGITS = "零一二三四五六七八九"
FULL = "０１２３４５６７８９"
EN_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def luhn_digit(body):
    total = 0
    for i, d in enumerate(reversed(body)):
        d = int(d)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def id_check(first17):
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return "10X98765432"[sum(int(d) * x for d, x in zip(first17, w)) % 11]


def digits(r, n):
    return "".join(r.choice("0123456789") for _ in range(n))


def mobile(r):
    return "1" + r.choice("3456789") + digits(r, 9), [3, 4, 4]


def landline(r):
    area = r.choice(["010", "021", "020", "0755", "0571", "028", "027", "0512"])
    local = r.choice("2345678") + digits(r, 7 if len(area) == 3 else r.choice([6, 7]))
    return area + local, [len(area), len(local)]


def hotline(r):
    return r.choice(["400", "800"]) + digits(r, 7), [3, 3, 4]


def resident_id(r):
    region = r.choice(["110105", "310104", "440305", "330106", "510107", "420102", "320583"])
    birth = "%04d%02d%02d" % (r.randint(1950, 2005), r.randint(1, 12), r.randint(1, 28))
    body = region + birth + digits(r, 3)
    return body + id_check(body), [6, 8, 4]


def card(r):
    prefix = r.choice(["622202", "621700", "622848", "4", "51", "55"])
    length = r.choice([16, 19]) if prefix.startswith("62") else 16
    body = prefix + digits(r, length - len(prefix) - 1)
    n = body + luhn_digit(body)
    return n, [4] * (length // 4) + ([length % 4] if length % 4 else [])


def us_phone(r):
    return r.choice("23456789") + digits(r, 2) + r.choice("23456789") + digits(r, 6), [3, 3, 4]


def grouped(n, sizes):
    out, at = [], 0
    for s in sizes:
        out.append(n[at:at + s])
        at += s
    if at < len(n):
        out[-1] += n[at:]
    return [g for g in out if g]


def zh_numeral(r, d):
    if d == "X":
        return "X"
    if d == "1" and r.random() < 0.3:
        return "幺"
    if d == "2" and r.random() < 0.15:
        return "两"
    return ZH_DIGITS[int(d)]


def render_groups_zh(r, groups):
    style = r.choice(["arabic", "arabic", "arabic", "chinese", "chinese", "full", "mixed"])
    out = []
    for g in groups:
        s = style if style != "mixed" else r.choice(["arabic", "chinese"])
        if s == "arabic":
            out.append(g)
        elif s == "full":
            out.append("".join(FULL[int(c)] if c.isdigit() else c for c in g))
        else:
            out.append("".join(zh_numeral(r, c) for c in g))
    return out


def render_groups_en(r, groups):
    style = r.choice(["arabic", "arabic", "words", "words", "words"])
    if style == "arabic":
        return groups
    out = []
    for g in groups:
        words, i = [], 0
        while i < len(g):
            if i + 1 < len(g) and g[i] == g[i + 1] and r.random() < 0.3:
                words.append("double " + EN_DIGITS[int(g[i])])
                i += 2
                continue
            words.append("oh" if g[i] == "0" and r.random() < 0.4 else EN_DIGITS[int(g[i])])
            i += 1
        out.append(" ".join(words))
    return out


def join_groups(r, parts, language):
    sep = r.choice([" ", "-", "，", "、", "", ", "] if language == "zh" else [" ", "-", ", ", ", "])
    if r.random() < 0.1 and language == "zh":
        # Read digit by digit with a pause after every digit.
        return [("，" if language == "zh" else ", ").join(list("".join(parts)))]
    return [p + sep for p in parts[:-1]] + [parts[-1]]


ZH_BEFORE = {
    "phone": ["我的手机号是", "您记一下，", "电话是", "你打这个号码", "我手机", "联系电话", "我的号码是", ""],
    "landline": ["座机是", "我们公司电话是", "办公室电话", "家里座机"],
    "hotline": ["您可以拨打", "客服热线是", "打"],
    "id": ["身份证号码是", "我的身份证是", "证件号", "身份证号"],
    "card": ["卡号是", "我的银行卡号", "那张卡是", "卡号"],
    "email": ["我的邮箱是", "发到我邮箱", "邮箱"],
}
EN_BEFORE = {
    "phone": ["my number is ", "you can reach me at ", "call me on ", "it's ", "my phone number is ", "my cell is "],
    "card": ["the card number is ", "my card is ", "it's ", "card number "],
    "email": ["my email is ", "send it to ", "it's "],
}
ZH_AFTER = ["。", "，对", "，你记一下", "，谢谢", "", "。嗯", "，没错"]
EN_AFTER = [".", ", thanks", ", yes", "", ". That's right"]

ZH_ORDINARY = [
    "这个套餐是三百九十九元一个月", "一共299元，两台", "2024年3月15日下午三点半", "您的订单3月15号已经发货了",
    "我等了二十分钟了", "请稍等一下", "第一个问题是宽带", "月租58元，流量10个G", "我今年35岁", "我住18楼",
    "营业时间是早上8点到晚上10点", "百分之二十的折扣", "订单尾号是5678", "我买了三个，退两个", "一百兆的宽带",
    "上个月扣了一千二百块", "12.5元一个", "我们是5G套餐", "一九年办的卡", "两千零二十四年", "差不多一个小时",
    "今天是二十号", "退款三到五个工作日", "第二次打电话了", "您稍等两分钟", "工单编号12345", "我家有三口人",
    "下午两点以后", "这台手机用了三年", "积分还有2400分", "2024年3月15日14:30下的单", "我1998年就用你们的卡了",
    "一共12000元", "1,299元那款", "版本是10.2.3", "第3季度", "两万五千块", "打九五折", "3、4、5月都多扣了钱",
    "是2023-11-05那天", "晚上10:45打过来的", "一百二十八元的套餐", "每个月15号扣款",
]
EN_ORDINARY = [
    "it costs twenty five dollars and ninety nine cents", "I ordered 2 items on March 15th, 2024", "room 305, floor 12",
    "it took 45 minutes", "the plan is $19.99 a month", "I've been a customer since 2015", "call back after three o'clock",
    "order number 4421", "about one hundred and twenty dollars", "I waited for twenty minutes", "three or four times",
    "the second time this week", "between nine and five", "I'm 35 years old", "it was on the 21st", "give me 2 minutes",
    "that's 50 percent off", "we have 3 lines on the account", "the last four digits are 6467", "version 2.5",
    "it was $1,299.99", "on 03/15/2024 at 2:30", "twelve thousand dollars", "nineteen ninety eight", "2,500 dollars",
    "flight 302 at 10:15", "about 15% more",
]


def item(r, kind, language):
    if kind == "email":
        user = r.choice(["zhang.san", "li_wei88", "wangfang", "john.smith", "mary", "chen.jie", "sales2019"])
        if language == "zh" and r.random() < 0.3:
            user = digits(r, r.choice([6, 8, 9]))
        domain = r.choice(["qq.com", "163.com", "gmail.com", "example.com", "126.com", "outlook.com"])
        if language == "en" and r.random() < 0.5:
            return [user.replace(".", " dot ") + " at " + domain.replace(".", " dot ")], "email"
        if language == "zh" and r.random() < 0.3:
            return [user + "艾特" + domain.replace(".", "点")], "email"
        return [user + "@" + domain], "email"
    maker = {"phone": mobile if language == "zh" else us_phone, "landline": landline, "hotline": hotline,
             "id": resident_id, "card": card}[kind]
    number, sizes = maker(r)
    groups = grouped(number, sizes)
    parts = render_groups_zh(r, groups) if language == "zh" else render_groups_en(r, groups)
    label = {"landline": "phone", "hotline": "phone"}.get(kind, kind)
    return join_groups(r, parts, language), label


def case(r, index, language):
    kinds = ["phone", "landline", "hotline", "id", "card", "email"] if language == "zh" else ["phone", "card", "email"]
    ordinary = ZH_ORDINARY if language == "zh" else EN_ORDINARY
    speaker = r.choice(["customer", "customer", "agent"])
    utterances = []
    if r.random() < 0.35:
        # No personal data at all: ordinary numbers only.
        for _ in range(r.choice([1, 2])):
            utterances.append({"speaker": speaker, "segments": [{"text": r.choice(ordinary)}]})
        return {"id": f"{language}-{index:04d}", "language": language, "utterances": utterances}
    kind = r.choice(kinds)
    parts, label = item(r, kind, language)
    before = r.choice((ZH_BEFORE if language == "zh" else EN_BEFORE)[kind if kind in (ZH_BEFORE if language == "zh" else EN_BEFORE) else "phone"])
    after = r.choice(ZH_AFTER if language == "zh" else EN_AFTER)
    if r.random() < 0.3:
        after += ("，" if language == "zh" else ", ") + r.choice(ordinary)
    # Split the number across utterances (Whisper segments a number read slowly) in 40%.
    cuts = 1
    if len(parts) > 1 and r.random() < 0.4:
        cuts = r.choice([2, 3]) if len(parts) > 2 else 2
    bounds = sorted(r.sample(range(1, len(parts)), cuts - 1)) if cuts > 1 else []
    pieces = [parts[a:b] for a, b in zip([0] + bounds, bounds + [len(parts)])]
    for i, piece in enumerate(pieces):
        segments = []
        if i == 0 and before:
            segments.append({"text": before})
        segments.append({"text": "".join(piece).rstrip(" ,，、-") if i < len(pieces) - 1 else "".join(piece),
                         "pii": label, "item": 0})
        if i == len(pieces) - 1 and after:
            segments.append({"text": after})
        utterances.append({"speaker": speaker, "segments": segments})
        if i < len(pieces) - 1 and r.random() < 0.4:
            other = "agent" if speaker == "customer" else "customer"
            utterances.append({"speaker": other, "segments": [{"text": r.choice(["嗯", "好的", "您说"] if language == "zh" else ["uh huh", "okay", "go on"])}]})
    return {"id": f"{language}-{index:04d}", "language": language, "utterances": utterances}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--cases", type=int, default=240, help="cases (about 1.4 utterances each); 60%% Mandarin")
    a = p.parse_args()
    r = random.Random(a.seed)
    for i in range(a.cases):
        language = "zh" if i % 5 < 3 else "en"
        print(json.dumps(case(r, i, language), ensure_ascii=False))


if __name__ == "__main__":
    main()
