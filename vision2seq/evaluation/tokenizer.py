"""A pure-Python stand-in for the PTB tokenization that the COCO caption evaluation runs before scoring.

The reference evaluation (coco-caption / pycocoevalcap) pipes every caption through Stanford CoreNLP 3.4.1's
``PTBTokenizer -preserveLines -lowerCase`` (Java) and then drops the punctuation tokens in
:data:`PUNCTUATIONS`. Scores are only comparable with published numbers when the tokens match, so this module
re-implements the parts of that lexer that matter for captions:

* longest-match scanning over an ordered rule list (the first rule wins a tie), where a rule's trailing
  context counts towards the match length but not towards the token, as in JFlex;
* contractions (``man's`` -> ``man 's``, ``doesn't`` -> ``does n't``, ``cannot`` -> ``can not``), words with
  inner hyphens or slashes kept whole (``close-up``, ``refrigerator/freezer``), numbers and times (``1:20``),
  known abbreviations that keep their period (``etc.``, ``st.``, ``rd.``, single letters, ``u.s.``), and a
  word's period kept when a comma, semicolon or colon follows (``bat.,`` -> ``bat.``);
* PTB escapes: quotes become `````` / ``''``, brackets ``-LRB-``/``-RRB-``/``-LCB-``/``-RCB-``, dash runs
  ``--``, dot runs ``...``.

Faithful quirks: the Java tool lower-cases *after* escaping, so ``-LRB-`` becomes ``-lrb-``, which the
case-sensitive punctuation filter does not remove (bracketed captions keep ``-lrb-``/``-rrb-`` tokens, as in
the reference); ``?!`` is one token and is kept. Known simplifications: URL/e-mail detection is approximate,
and SGML entities other than ``&amp;``/``&quot;``/``&apos;``/dashes are left as text. On the 6,005 raw
captions of the coco-caption example all tokenizations match the reference exactly (see the tests).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["PUNCTUATIONS", "ptb_tokenize"]

#: Tokens the COCO evaluation drops after PTB tokenization (compared case-sensitively, after lower-casing).
PUNCTUATIONS: frozenset[str] = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

# --- character classes (JFlex's lexer is caseless for literals but not for character classes) ------------
_LETTER = r"[^\W\d_]"
_LETTER_OR_DIGIT = r"[^\W_]"
_WORD = r"(?:[^\W\d_]|[\u00AD\u0300-\u036F])+"
_APOS = r"(?:['\u0092\u2019]|&apos;)"
_APOS_ETC = r"(?:['\u0091\u0092\u2018\u2019\u201B]|&apos;)"
_REDAUX = rf"{_APOS}(?:[msdMSD]|(?i:re|ve|ll))"
_SPACE = r"[ \t\u00A0\u2000-\u200A\u3000]"
_SPACE_NL = r"[ \t\u00A0\u2000-\u200A\u3000\n]"
_ACRO = r"[A-Za-z](?:\.[A-Za-z])+"
_HYPHEN = r"[-_\u058A\u2010\u2011]"
_THING_PART = rf"(?:[dDoOlL]{_APOS_ETC}{_LETTER_OR_DIGIT})?{_LETTER_OR_DIGIT}+"
_THING = rf"{_THING_PART}(?:{_HYPHEN}{_THING_PART})*"
_HTHING = rf"[A-Za-z0-9][A-Za-z0-9.,\u00AD]*(?:-(?:{_ACRO}\.|[A-Za-z0-9\u00AD]+))+"
_THINGA = r"[A-Z]+(?:(?:[+&]|&amp;)[A-Z]+)+"

# Abbreviations that keep their period. A bracketed capital (``[A]rk``) is case-sensitive in the original
# (character classes ignore the caseless flag), so lower-case "ill." or "wash." still lose their period.
# Longer alternatives come first because Python's alternation is first-match, not longest-match.
_ABBREV1 = (
    r"(?:(?i:ph\.d|ed\.d)|(?i:sept|sep|jan|feb|mar|apr|jun|jul|aug|oct|nov|dec)"
    r"|(?i:tues|tue|thurs|thu|mon|wed|fri)"
    r"|(?i:ariz|ala|calif|colo|conn|dak|del|fla|ga|ind|kans|kan|ky|la|md|mich|minn|mont|mo|neb|nev|okla"
    r"|penn|pa|tenn|tex|va|vt|wisc|wis|wyo)|A(?i:rk)|I(?i:ll)|M(?i:ass)|M(?i:iss)|O(?i:re)|W(?i:ash)"
    r"|(?i:inc|cos|co|corp|pptys|ptys|ppty|pty|ltd|plc|bancorp|dept|bhd|assn|univ|intl|sys)"
    r"|(?i:nos|no|prop|ph|tel|est|ext|sq|ft)|(?i:jr|sr|bros|blvd|rd|esq)|(?i:etc|al|seq))\."
)
_ABBREV4 = (
    rf"(?:{_ACRO}|(?i:a\.k\.a)|(?i:mrs|mr|ms|drs|dr|profs|prof|sens|sen|reps|rep|attys|atty|lt|col|gen"
    r"|messrs|govs|gov|adm|rev|maj|sgt|cpl|pvt|mt|capt|ste|st|ave|pres|lieut|hon|brig|comdr|cmdr|pfc|spc"
    r"|supts|supt|det)|M(?i:iss)|(?i:vs|alex|wm|jos|cie|cf|treas|invt|elec|natl|mfg|mtg)|[A-Za-z])\."
)
_MISC_SYMBOL = (
    "[\u00a6\u00a7\u00a8\u00a9\u00ac\u00ae\u00af\u00b0-\u00ba\u00d7\u00f7\u0387\u05be\u05c0\u05c3\u05c6"
    "\u05f3\u05f4\u0600-\u0603\u0606-\u060a\u060c\u0614\u061b\u061e\u066a\u066d\u0703-\u070d\u07f6-\u07f8"
    "\u0964\u0965\u0e4f\u2020-\u2023\u2032-\u2038\u2044\u207a-\u207f\u208a-\u208e\u2100-\u214f\u2190-\u23ff"
    "\u2600-\u26ff\u3012\u30fb\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]"
)
_URL_END = r"[^\s\"<>|.!?(){},-]"

_FRACTIONS = {"\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4", "\u2153": "1/3"}
_CURRENCY = {"\u00a2": "cents", "\u00a3": "#", "\u0080": "$", "\u00a4": "$", "\u20a0": "$", "\u20ac": "$"}


def _keep(tok: str) -> str:
    return tok.replace("\u00ad", "")  # soft hyphens never survive into a token


def _closing_quote(tok: str) -> str:
    # PTB "LaTeX quotes": straight quotes read as closing unless a rule says they open something.
    tok = tok.replace("&apos;", "'").replace("&quot;", '"').replace('"', "''")
    tok = re.sub("[\u0091\u2018\u201b\u2039]", "`", tok)
    tok = re.sub("[\u0092\u2019\u203a]", "'", tok)
    tok = re.sub("[\u0093\u201c\u00ab]", "``", tok)
    return re.sub("[\u0094\u201d\u00bb]", "''", tok)


def _opening_quote(tok: str) -> str:
    return _closing_quote(
        tok.replace("&apos;", "`").replace("'", "`").replace("&quot;", "``").replace('"', "``")
    )


def _hyphens(tok: str) -> str:
    return "--" if 3 <= len(tok) <= 4 else tok


def _with_nbsp(tok: str) -> str:
    # The tokenizer never emits spaces inside a token; it swaps them for non-breaking spaces.
    return tok.replace(" ", "\u00a0")


def _phone(tok: str) -> str:
    return _with_nbsp(tok).replace("(", "-LRB-").replace(")", "-RRB-")


def _const(value: str) -> Callable[[str], str]:
    return lambda _tok: value


@dataclass(frozen=True)
class _Rule:
    """One lexer rule: ``pattern`` has a group ``t`` (the token); text after it is trailing context."""

    pattern: re.Pattern[str]
    action: Callable[[str], str] | None  # None: the text is skipped (whitespace, deleted characters)


def _rules() -> list[_Rule]:
    keep, drop = _keep, None
    spec: list[tuple[str, Callable[[str], str] | None]] = [
        (r"(?P<t>(?i:can))(?i:not)", keep),  # "cannot" -> "can" + "not"
        (r"(?P<t></?[A-Za-z!][^>]*>)", keep),
        (r"(?P<t>&(?i:md|mdash|ndash);|[\u0096\u0097\u2013\u2014\u2015])", _const("--")),
        (r"(?P<t>&(?i:amp);)", _const("&")),
        (r"(?P<t>&(?i:ht|tl|ur|lr|qc|ql|qr|odq|cdq|#[0-9]+);)", keep),
        (rf"(?P<t>{_WORD}){_REDAUX}", keep),
        (rf"(?P<t>[A-Za-z\u00AD]*[A-MO-Za-mo-z]\u00AD*)(?i:n){_APOS_ETC}(?i:t)", keep),
        (rf"(?P<t>{_WORD})", keep),
        # Words that keep an apostrophe inside ("o'clock", "'90s", "'em", "y'all"...).
        (rf"(?P<t>{_APOS}(?i:n){_APOS}?)", keep),
        (rf"(?P<t>[lLdDjJ]{_APOS})", keep),
        (rf"(?P<t>(?i:dunkin|somethin|ol){_APOS})", keep),
        (rf"(?P<t>{_APOS}(?i:em|cause|till|til))", keep),
        (rf"(?P<t>[A-HJ-XZn]{_APOS_ETC}{_LETTER}{{2}}{_LETTER}*)", keep),
        (rf"(?P<t>{_APOS}[2-9]0(?i:s))", keep),
        (rf"(?P<t>{_LETTER}+[aeiouyAEIOUY]{_APOS_ETC}[aeiouA-Z]{_LETTER}*)", keep),
        (r"(?P<t>(?i:cont'd\.?|'twas|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l))", keep),
        (rf"(?P<t>[yY]{_APOS}){_LETTER}", keep),
        (rf"(?P<t>https?://[^\s\"<>|()]+{_URL_END})", keep),
        (rf"(?P<t>www\.(?:[^\s\"<>|.!?(){{}},]+\.)+[a-zA-Z]{{2,4}}(?:/[^\s\"<>|()]+{_URL_END})?)", keep),
        (rf"(?P<t>(?:[A-Za-z0-9][A-Za-z0-9-]*\.)+(?i:com|net|org|edu)(?:/[^\s\"<>|()]+{_URL_END})?)", keep),
        (r"(?P<t>[a-zA-Z0-9][^\s\"<>|()\u00A0]*@(?:[^\s\"<>|().\u00A0]+\.)+[a-zA-Z]{2,4})", keep),
        (rf"(?P<t>{_REDAUX})[^A-Za-z]", _closing_quote),
        (rf"(?P<t>(?i:n){_APOS_ETC}(?i:t))", _closing_quote),
        (r"(?P<t>\d{1,2}[-/]\d{1,2}[-/]\d{2,4})", keep),
        (r"(?P<t>[-+]?(?:\d*(?:[.:,\u00AD\u066B\u066C]\d+)+|\d+))", keep),
        (
            r"(?P<t>[\u207A\u207B\u208A\u208B]?(?:[\u2070\u00B9\u00B2\u00B3\u2074-\u2079]+|[\u2080-\u2089]+))",
            keep,
        ),
        (r"(?P<t>(?:\d{1,4}[- \u00A0])?\d{1,4}(?:\\?/|\u2044)\d{1,4})", _with_nbsp),
        (r"(?P<t>[\u00BC\u00BD\u00BE\u2153-\u215E])", lambda t: _FRACTIONS.get(t, t)),
        (r"(?P<t>(?i:-(?:rrb|lrb|rcb|lcb|rsb|lsb)-|c\.d\.s|pro-|anti-|s&p-500|s&ls))", keep),
        (r"(?P<t>(?i:s&amp;p-500|s&amp;ls))", lambda t: t.replace("&amp;", "&")),
        (rf"(?P<t>(?i:cap){_APOS}(?i:n)|(?i:c){_APOS}(?i:est))", keep),
        (r"(?P<t>[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2})", keep),
        (r"(?P<t>[A-Z]*\$|#)", keep),
        (
            r"(?P<t>[\u00A2-\u00A5\u0080\u20A0\u20AC\u060B\u0E3F\u20A4\uFFE0\uFFE1\uFFE5\uFFE6])",
            lambda t: _CURRENCY.get(t, t),
        ),
        (rf"(?P<t>{_ABBREV1})", keep),
        (rf"(?P<t>{_ABBREV4})", keep),
        (rf"(?P<t>{_ACRO}){_SPACE_NL}", keep),
        (rf"(?P<t>{_APOS}\d\d){_SPACE_NL}", keep),
        (rf"(?P<t>{_WORD}\.)[,;:]", keep),
        (r"(?P<t>(?:\(\d{3}\)[ \u00A0]?|\d{3}[- \u00A0.])\d{3}[- \u00A0.]\d{4})", _phone),
        (r"(?P<t>\"|&quot;)[A-Za-z0-9$]", _opening_quote),
        (r"(?P<t>\"|&quot;)", _closing_quote),
        (r"(?P<t>[+%&\u2030\u2031~^])", keep),
        (r"(?P<t>[|\\\x7f])", drop),
        (r"(?P<t>[<\[]|&lt;)", _const("-LRB-")),
        (r"(?P<t>[>\]]|&gt;)", _const("-RRB-")),
        (r"(?P<t>\{)", _const("-LCB-")),
        (r"(?P<t>\})", _const("-RCB-")),
        (r"(?P<t>\()", _const("-LRB-")),
        (r"(?P<t>\))", _const("-RRB-")),
        (r"(?P<t>-+)", _hyphens),
        (r"(?P<t>\.{3,5}|[\u0085\u2026])", _const("...")),
        (r"(?P<t>(?:\.[ \u00A0]){2,4}\.)", _const("...")),
        (r"(?P<t>@+|#+|_+|\*+|(?:\\\*){1,3})", keep),
        (r"(?P<t>[,;:]|[?!]+|[.\u00A1\u00BF\u037E\u0589\u061F\u06D4\u0700-\u0702\u07FA]|=|/)", keep),
        (rf"(?P<t>{_HTHING}\.)[,;:]", keep),
        (rf"(?P<t>{_HTHING})", keep),
        (rf"(?P<t>{_THING}\.)[,;:]", keep),
        (rf"(?P<t>{_THING})", keep),
        (rf"(?P<t>{_THINGA}\.)[,;:]", lambda t: t.replace("&amp;", "&")),
        (rf"(?P<t>{_THINGA})", lambda t: t.replace("&amp;", "&")),
        (r"(?P<t>')[A-Za-z][^ \t\n\r\u00A0]", _opening_quote),
        (rf"(?P<t>{_REDAUX})", _closing_quote),
        (
            rf"(?P<t>''|{_APOS}|[`\u2018\u2019\u201A\u201B\u201C\u201D\u0091-\u0094\u201E\u201F\u2039\u203A"
            r"\u00AB\u00BB]{1,2})",
            _closing_quote,
        ),
        (rf"(?P<t>{_MISC_SYMBOL})", keep),
        (r"(?P<t>(?:[ \t\u00A0\u2000-\u200A\u3000\n\r\x0b\x0c\u0085\u2028\u2029]|&nbsp;)+)", drop),
        (r"(?P<t>[\u200B\u200E\u200F\uFEFF\x00])", drop),
    ]
    return [_Rule(re.compile(pattern), action) for pattern, action in spec]


_RULES = _rules()
# Most caption words are plain letters followed by a space: no other rule can produce a different token
# there (every competing rule needs a digit, an apostrophe, a period or other punctuation), except "cannot".
_PLAIN_WORD = re.compile(r"[A-Za-z]+(?=[ \n])")
_SPACES = re.compile(r" +")


def _lex(text: str) -> Iterator[str]:
    """Yield PTB tokens (before lower-casing and punctuation removal) of ``text``, which ends with ``\\n``."""
    pos, end = 0, len(text)
    while pos < end:
        plain = _PLAIN_WORD.match(text, pos)
        if plain is not None and plain.group().lower() != "cannot":
            yield plain.group()
            pos = plain.end()
            continue
        spaces = _SPACES.match(text, pos)
        if spaces is not None:
            pos = spaces.end()
            continue
        best_len, best_rule, best_tok = 0, None, ""
        for rule in _RULES:
            m = rule.pattern.match(text, pos)
            if m is not None and m.end() - pos > best_len:
                best_len, best_rule, best_tok = m.end() - pos, rule, m.group("t")
        if best_rule is None:
            pos += 1  # an untokenizable character is deleted, as with the default "firstDelete" option
            continue
        pos += len(best_tok)
        if best_rule.action is not None:
            yield best_rule.action(best_tok)


@lru_cache(maxsize=65536)
def _tokenize_cached(text: str) -> tuple[str, ...]:
    # The reference writes one caption per line after replacing "\n" by a space, so every caption is
    # followed by a line break; other line-break characters would split a caption there, so they are
    # treated as spaces too.
    line = re.sub(r"[\r\n\x0b\x0c\u0085\u2028\u2029]", " ", text) + "\n"
    return tuple(tok for tok in (t.lower() for t in _lex(line)) if tok not in PUNCTUATIONS)


def ptb_tokenize(text: str) -> list[str]:
    """Tokenize one caption the way the COCO caption evaluation does before scoring.

    Args:
        text: A raw caption.

    Returns:
        Lower-cased PTB tokens without the punctuation tokens in :data:`PUNCTUATIONS`.

    >>> ptb_tokenize("A man's hat doesn't fit, etc.")
    ['a', 'man', "'s", 'hat', 'does', "n't", 'fit', 'etc.']
    """
    return list(_tokenize_cached(text))
