"""What kind of value a question asks for, and which kinds a sentence holds.

The no-LLM answer (engine/extractive.py) quotes note sentences; "When is the launch?" is
answered by the sentence with a date in it, not by the one that repeats "launch" most. Both
sides are small tables of patterns, English and Korean:

- `question_kinds`: when/언제 -> date, where/어디 -> place, who/누구 -> person, how many/몇/얼마
  -> number, why/왜 -> reason; Korean questions also by their head noun ("...작곡한 해는?" ->
  date, "...도피한 곳은?" -> place). what/무엇/어느... with nothing more specific -> thing,
  which has no cue (any sentence may name a thing).
- `value_kinds`: dates (month names, 2026-03-01, 3월 1일, 요일, "next week"), numbers (with a
  unit they count fully, bare half), names (capitalised words; Korean proper nouns are Kiwi's
  NNP tags, which the caller passes in), reasons (because, 때문에).
"""

from __future__ import annotations

import re

DATE, PLACE, PERSON, NUMBER, REASON, THING = "date", "place", "person", "number", "reason", "thing"
KINDS = (DATE, PLACE, PERSON, NUMBER, REASON, THING)

# ----------------------------------------------------------------- questions

_EN_UNITS_DATE = r"(?:time|day|date|year|month|week|century|decade|hour|deadline)s?"
_EN_PLACE = (r"(?:city|country|place|town|state|region|room|building|venue|location|continent"
             r"|address|street|office|site|island|river|folder|channel)")
_EN_PERSON = r"(?:person|people|man|woman|author|owner|member|player|composer|writer|king|president)"

# (pattern on the lower-cased question, kind); every matching row adds its kind.
QUESTION_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), kind) for p, kind in (
        (r"\bwhen\b", DATE),
        (rf"\b(?:what|which)\s+{_EN_UNITS_DATE}\b", DATE),
        (r"\bwhat(?:'s|\s+is|\s+was|\s+are)?\s+the\s+(?:date|time|day|year|deadline)\b", DATE),
        (r"\bhow\s+(?:soon|early|late)\b", DATE),
        (r"\bwhere\b", PLACE),
        (rf"\b(?:what|which)\s+{_EN_PLACE}", PLACE),
        (r"\bwho(?:m|se)?\b", PERSON),
        (rf"\b(?:what|which)\s+{_EN_PERSON}", PERSON),
        (r"\bhow\s+(?:many|much|long|far|big|large|old|often|tall|high|heavy|fast)\b", NUMBER),
        (r"\b(?:what|which)\s+(?:number|amount|percentage|share|price|cost|size|budget)\b", NUMBER),
        (r"\bwhy\b|\bhow come\b|\bwhat\s+(?:caused|causes|was the reason|is the reason)\b", REASON),
        # Korean: question words in any inflection (언제쯤, 어디서, 누구의, 얼마나, 몇 명 ...).
        (r"언제", DATE),
        (r"몇\s*(?:년도|년|월|일|시|요일|세기)", DATE),
        (r"어느\s*(?:해|년도|연도|시기|때|시대|날|요일|달|세기)", DATE),
        (r"어디", PLACE),
        (r"어느\s*(?:나라|국가|도시|지역|곳|장소|대학|학교|섬|산|강|대륙|마을|동네|건물|위치)", PLACE),
        (r"누가|누구|누군", PERSON),
        (r"어느\s*(?:사람|인물|선수|감독|작가|왕|팀원)", PERSON),
        (r"몇|얼마", NUMBER),
        (r"왜|이유|원인|까닭", REASON),
    )
)

# A Korean question often names the value by its last noun: "...설립된 연도는?", "...만난 곳은?".
# Nouns of two or more letters may end a compound (설립연도); one-letter ones (해, 곳, 날, 수)
# must stand alone, or "이해", "교수" would count.
_KO_HEADS = {
    DATE: ("날짜", "일자", "연도", "년도", "시기", "시점", "연대", "세기", "요일", "시각", "해", "날", "때"),
    PLACE: ("장소", "나라", "국가", "도시", "지역", "위치", "지명", "출신지", "고향", "수도", "본사",
            "소재지", "곳"),
    PERSON: ("사람", "인물", "선수", "감독", "작가", "저자", "대통령", "배우", "가수", "화가",
             "작곡가", "창시자", "설립자", "주인공", "왕"),
    NUMBER: ("개수", "횟수", "인원", "금액", "비율", "가격", "거리", "기간", "나이", "높이", "길이",
             "무게", "면적", "인구", "점수", "비용", "액수", "순위", "속도", "수"),
}
_KO_TAIL = r"(?:은|는|이|가)?\s*(?:무엇\S*|어디\S*|언제\S*|누구\S*|얼마\S*|몇\S*)?\s*[?？.]?\s*$"
_KO_HEAD_RULES = tuple(
    (re.compile((rf"{h}" if len(h) > 1 else rf"(?:^|\s){h}") + _KO_TAIL), kind)
    for kind, heads in _KO_HEADS.items() for h in heads
)
_THING = re.compile(r"\b(?:what|which)\b|무엇|무슨|어떤|어느|뭐")


# Words that only name the kind asked for ("the launch *date*", "사람의 *이름*"): the answer's
# sentence need not repeat them, so they are not terms to match.
KIND_WORDS = ("date day time year month place location person name number amount count "
              "날짜 일자 연도 년도 시기 장소 위치 인물 사람 이름 개수 횟수")


def question_kinds(question: str) -> frozenset[str]:
    """The kinds of value `question` asks for (empty when it asks for none in particular)."""
    q = " ".join(question.lower().split())
    kinds = {kind for pattern, kind in QUESTION_RULES if pattern.search(q)}
    kinds |= {kind for pattern, kind in _KO_HEAD_RULES if pattern.search(q)}
    if not kinds and _THING.search(q):
        kinds.add(THING)
    return frozenset(kinds)


# ----------------------------------------------------------------- sentences

_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december"
           "|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_WEEKDAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_DATE = re.compile(
    rf"\b(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?\b"  # March 3, Mar. 3rd
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})\b"  # 3 March
    rf"|\b(?:january|february|march|april|june|july|august|september|october|november|december)\b"
    rf"|\b(?:{_WEEKDAYS})\b"
    r"|\b\d{4}-\d{1,2}(?:-\d{1,2})?\b|\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b"  # 2026-03-01, 3/1/2026
    r"|\b(?:1[0-9]|20)\d{2}s?\b"  # a year
    r"|\b\d{1,2}:\d{2}\b|\b\d{1,2}\s?(?:am|pm|a\.m\.|p\.m\.)"
    r"|\b(?:today|tomorrow|yesterday|tonight|noon|midnight)\b"
    r"|\b(?:next|last|this|coming)\s+(?:week|month|year|quarter|weekend|spring|summer|autumn|fall"
    rf"|winter|{_WEEKDAYS})\b|\bq[1-4]\b"
    r"|\d+\s*(?:년|월|일|시|세기|년대)|[월화수목금토일]요일"
    r"|오늘|내일|어제|모레|그제|올해|작년|내년|재작년|지난해|이번\s?주|다음\s?주|지난\s?주|지난\s?달"
    r"|다음\s?달|이번\s?달|오전|오후|새벽|초순|중순|하순|상반기|하반기|분기",
    re.IGNORECASE,
)
_UNIT = (r"%|percent|per cent|dollars?|usd|eur|euros?|won|yen|\$|€|£|kg|g|mg|km|m|cm|mm|miles?"
         r"|gb|mb|tb|kb|hours?|minutes?|seconds?|days?|weeks?|months?|years?|times|people|persons"
         r"|users|notes|items|pages|points|goals|votes|members|copies|units|chunks|tokens|ms|s"
         r"|원|달러|엔|유로|위안|명|개|번|회|차례|가지|권|곳|마리|대|척|살|세|배|위|골|점|표|층|편|장"
         r"|부|채|그루|건|종|년|개월|주|일|시간|분|초|킬로미터|미터|센티미터|킬로그램|그램|톤|리터"
         r"|평|헥타르|제곱킬로미터|퍼센트|만|억|조|천|백")
_NUMBER_UNIT = re.compile(rf"(?:\$|€|£)\s?\d|\d[\d,.]*\s?(?:{_UNIT})(?![a-z])"
                          r"|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
                          r"|twenty|thirty|forty|fifty|hundred|thousand|million|billion|dozen)\b"
                          r"|(?:한|두|세|네|다섯|여섯|일곱|여덟|아홉|열|스무|수십|수백|수천|수만)\s?"
                          r"(?:개|명|번|차례|가지|권|곳|마리|척|살|배|시간|달|해)", re.IGNORECASE)
_DIGIT = re.compile(r"\d")
_REASON = re.compile(r"\b(?:because|since|due to|owing to|as a result|so that|thanks to|caused by"
                     r"|in order to|the reason|therefore|hence)\b|때문|인해|인하여|위해|위하여|덕분|탓|므로"
                     r"|이유|원인|까닭", re.IGNORECASE)
_CAPITALISED = re.compile(r"(?<![\w'’])[A-Z][a-zA-Z'’-]+")
# Capitalised words that are not names: sentence openers and calendar words.
_NOT_NAMES = frozenset(
    "the a an this that these those there here it its we our you your he she they i if when "
    "where who what which why how and but or so then also after before in on at for to from of "
    "by with as all some every each no not yes note notes see todo done update".split()
) | frozenset(_MONTHS.split("|")) | frozenset(_WEEKDAYS.split("|"))


def has_name(sentence: str) -> bool:
    """A capitalised word that is not a sentence opener or a calendar word: Alex, Seoul, Slack."""
    return any(w.lower().strip("'’") not in _NOT_NAMES for w in _CAPITALISED.findall(sentence))


def value_kinds(sentence: str, *, proper_noun: bool = False) -> dict[str, float]:
    """The kinds of value `sentence` holds, each with a strength in (0, 1]. `proper_noun`: the
    caller's analyser found a proper noun in it (Kiwi's NNP for Korean)."""
    out: dict[str, float] = {}
    if _DATE.search(sentence):
        out[DATE] = 1.0
    if _NUMBER_UNIT.search(sentence):
        out[NUMBER] = 1.0
    elif _DIGIT.search(sentence):
        out[NUMBER] = 0.5
    if proper_noun or has_name(sentence):
        out[PERSON] = out[PLACE] = 1.0
    if _REASON.search(sentence):
        out[REASON] = 1.0
    return out


def type_match(wanted: frozenset[str], held: dict[str, float]) -> float:
    """How well a sentence's values fit what the question wants, 0..1: the share of the wanted
    kinds (those a sentence can show) it holds. 0 when the question wants nothing in particular."""
    cued = [k for k in wanted if k != THING]
    if not cued:
        return 0.0
    return sum(held.get(k, 0.0) for k in cued) / len(cued)
