"""A pure-Python copy of the PTB tokenization that the COCO caption evaluation runs before scoring.

The reference evaluation (pycocoevalcap) writes every caption on its own line, pipes the file through Stanford
CoreNLP 3.4.1's ``PTBTokenizer -preserveLines -lowerCase`` (Java), splits each output line on spaces and drops
the punctuation tokens in :data:`PUNCTUATIONS`. Scores are only comparable with published numbers when the
tokens match, so this module re-implements that lexer (``PTBLexer.flex`` of CoreNLP 3.4.1) rule by rule:

* JFlex semantics: at each position every rule is tried and the longest match wins, the earliest rule on a
  tie; a rule's trailing context (``r1/r2``) counts towards the match length but not towards the token, and
  a few rules push characters back (``cannot`` -> ``can`` + ``not``, ``gonna`` -> ``gon`` + ``na``);
* literal strings are case-insensitive but character classes are not (``[A]rk.``, ``Pp?t[ye]s?``);
* ``[:letter:]`` and ``[:digit:]`` are the 2014 JDK's, on 16-bit characters: a character beyond U+FFFF is
  two surrogates, which the lexer deletes unless a rule that accepts any character (an e-mail address, a
  URL) takes it (:mod:`vision2seq.evaluation._java_chars`);
* the escapes and normalisations of the default options: ``(`` -> ``-LRB-``, ``[`` -> ``-LSB-``, ``{`` ->
  ``-LCB-``, LaTeX quotes, ``--`` dashes, ``...``, ``&amp;`` -> ``&``, ``½`` -> ``1/2``, ``£`` -> ``#``;
  spaces inside a token (``1 1/2``, ``(555) 123-4567``) become non-breaking spaces; untokenizable
  characters are deleted.

The Java tool lower-cases *after* escaping, so ``-LRB-`` becomes ``-lrb-``, which the case-sensitive
punctuation filter keeps; a token holding a non-breaking space stays one token for ROUGE-L but is two words
for BLEU and CIDEr-D, which split on any whitespace (see :func:`ptb_words`).

Deliberate differences: each caption is tokenized on its own, as if followed by a line break and nothing
else. In the reference the next line of its file can change a caption's last token (a single letter with a
period before a next caption starting ``A``/``The``/``He`` ..., ``no.`` before one starting with a digit),
the last caption of the file is followed by no line break, and ``\\r``, ``\\x0b``, ``\\x0c``, ``\\u2028``,
``\\u2029`` start new lines there, which shifts every later caption onto the wrong image; here they are
spaces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from vision2seq.evaluation._java_case import java_lower
from vision2seq.evaluation._java_chars import JAVA_DIGIT, JAVA_LETTER

__all__ = ["PUNCTUATIONS", "ptb_tokenize", "ptb_words"]

#: Tokens the COCO evaluation drops after PTB tokenization (compared case-sensitively, after lower-casing).
PUNCTUATIONS: frozenset[str] = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)


def _ci(*words: str) -> str:
    """A JFlex caseless literal (or alternation of them): ASCII letters match either case, nothing else."""

    def one(word: str) -> str:
        return "".join(
            f"[{c.lower()}{c.upper()}]" if c.isascii() and c.isalpha() else re.escape(c) for c in word
        )

    return "(?:" + "|".join(one(w) for w in sorted(words, key=len, reverse=True)) + ")"


def _words(text: str) -> list[str]:
    return text.split()


# --- macros of PTBLexer.flex (Python's alternation is first-match, so longer alternatives come first) ---
_JLETTER = f"[{JAVA_LETTER}]"
_JLETTER_OR_DIGIT = f"[{JAVA_LETTER}{JAVA_DIGIT}]"
_DIGIT = f"[{JAVA_DIGIT}\u07c0-\u07c9]"
_SPLET = rf"&[aeiouAEIOU]{_ci('acute', 'grave', 'uml')};"
_LETTER_EXTRA = (
    "\u00ad\u0237-\u024f\u02c2-\u02c5\u02d2-\u02df\u02e5-\u02ff\u0300-\u036f\u0370-\u037d\u0384\u0385\u03cf"
    "\u03f6\u03fc-\u03ff\u0483-\u0487\u04cf\u04f6-\u04ff\u0510-\u0525\u055a-\u055f\u0591-\u05bd\u05bf\u05c1"
    "\u05c2\u05c4\u05c5\u05c7\u0615-\u061a\u063b-\u063f\u064b-\u065e\u0670\u06d6-\u06ef\u06fa-\u06ff\u070f"
    "\u0711\u0730-\u074f\u0750-\u077f\u07a6-\u07b1\u07ca-\u07f5\u07fa\u0900-\u0903\u093c\u093e-\u094e"
    "\u0951-\u0955\u0962-\u0963\u0981-\u0983\u09bc-\u09c4\u09c7\u09c8\u09cb-\u09cd\u09d7\u09e2\u09e3"
    "\u0a01-\u0a03\u0a3c\u0a3e-\u0a4f\u0a81-\u0a83\u0abc-\u0acf\u0b82\u0bbe-\u0bc2\u0bc6-\u0bc8\u0bca-\u0bcd"
    "\u0c01-\u0c03\u0c3e-\u0c56\u0d3e-\u0d44\u0d46-\u0d48\u0e30-\u0e3a\u0e47-\u0e4e\u0eb1-\u0ebc\u0ec8-\u0ecd"
)
_LETTER = f"(?:[{JAVA_LETTER}{_LETTER_EXTRA}]|{_SPLET})"
_LETTER_OR_DIGIT = f"(?:[{JAVA_LETTER}{JAVA_DIGIT}\u07c0-\u07c9{_LETTER_EXTRA}]|{_SPLET})"
_WORD = rf"{_LETTER}{_LETTER_OR_DIGIT}*(?:[.!?]{_LETTER}{_LETTER_OR_DIGIT}*)*"
_SGML_NAME = r"[A-Za-z][A-Za-z0-9_:.\-]*"
_SGML = (
    rf"<(?:[!?][A-Za-z\-][^>\r\n]*"
    rf"|{_SGML_NAME}(?: +(?:{_SGML_NAME} *= *(?:'[^']*'|\"[^\"]*\")|{_SGML_NAME}))* */?"
    rf"|/{_SGML_NAME}) *>"
)
_SPACE = "[ \t\u00a0\u2000-\u200a\u3000]"
_NEWLINE = "(?:\r?\n|\r|[\u2028\u2029\x0b\x0c\x85])"
_SPACENL = f"(?:{_SPACE}|{_NEWLINE})"
_NUM = rf"(?:{_DIGIT}*(?:[.:,\u00ad\u066b\u066c]{_DIGIT}+)+|{_DIGIT}+)"
_APOS = rf"(?:['\u0092\u2019]|{_ci('&apos;')})"
_APOS_ETC = rf"(?:{_APOS}|[`\u0091\u2018\u201b])"
_HYPHEN = "[-_\u058a\u2010\u2011]"
_THING_PART = rf"(?:[dDoOlL]{_APOS_ETC}{_JLETTER_OR_DIGIT})?{_JLETTER_OR_DIGIT}+"
_THING = rf"{_THING_PART}(?:{_HYPHEN}{_THING_PART})*"
_AMP = _ci("&amp;")
_THINGA = rf"[A-Z]+(?:(?:{_AMP}|[+&])[A-Z]+)+"
_THING3 = r"[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}"
_ACRO_SPECIAL = (
    rf"{_ci('Canada', 'Sino', 'Korean', 'EU', 'Japan', 'non')}-{_ci('U.S')}"
    rf"|{_ci('U.S.-')}{_ci('U.S.S.R', 'U.K')}"
)
_ACRO = rf"(?:{_ACRO_SPECIAL}|[A-Za-z](?:\.[A-Za-z])*)"
_ACRO2 = rf"(?:{_ACRO_SPECIAL}|[A-Za-z](?:\.[A-Za-z])+)"
_HTHING = rf"[A-Za-z0-9][A-Za-z0-9.,\u00ad]*(?:-(?:{_ACRO2}\.|[A-Za-z0-9\u00ad]+))+"
_REDAUX = rf"{_APOS}(?:{_ci('re', 've', 'll')}|[msdMSD])"
_SWORD = "[A-Za-z\u00ad]*[A-MO-Za-mo-z]\u00ad*"
_SREDAUX = rf"{_ci('n')}{_APOS_ETC}{_ci('t')}"
_URL_CHAR = r"[^ \t\n\f\r\"<>|(){}]"
_URL_END = r"[^ \t\n\f\r\"<>|.!?(){},-]"
_URL_PATH = rf"(?:/[^ \t\n\f\r\"<>|()]+{_URL_END})?"
_EMAIL = (
    rf"(?:{_ci('&lt;')}|<)?[a-zA-Z0-9][^ \t\n\f\r\"<>|()\u00a0{{}}]*@(?:[^ \t\n\f\r\"<>|(){{}}.\u00a0]+\.)*"
    rf"[^ \t\n\f\r\"<>|(){{}}.\u00a0]+(?:{_ci('&gt;')}|>)?"
)
_ABMONTH = _ci("Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec")
_ABDAYS = _ci("Mon", "Tue", "Tues", "Wed", "Thu", "Thurs", "Fri")
# A bracketed capital ("[A]rk") is case-sensitive in the original: lower-case "ill." loses its period.
_CAPITAL_STATES = ["Az", "Ark", "Del", "Ill", "La", "Mass", "Miss", "Ore", "Pa", "Tex", "Wash"]
_ABSTATE = "|".join(
    [
        _ci(
            "Ala", "Ariz", "Calif", "Colo", "Conn", "Ct", "Dak", "Fla", "Ga", "Ind", "Kans", "Kan", "Ky", "Md"
        ),
        _ci("Mich", "Minn", "Mo", "Mont", "Neb", "Nev", "Okla", "Penn", "Tenn", "Va", "Vt", "Wisc", "Wis"),
        _ci("Wyo"),
        *(f"{state[0]}{_ci(state[1:])}" for state in _CAPITAL_STATES),
    ]
)
_ABCOMP = f"{_ci('p')}{_ci('p')}?{_ci('t')}[ye]{_ci('s')}?|" + _ci(
    "Inc", "Cos", "Co", "Corp", "Ltd", "Plc", "Rt", "Bancorp", "Bhd", "Assn", "Univ", "Intl", "Sys"
)
_ABBREV1_WORDS = "|".join(
    [
        *(_ABMONTH, _ABDAYS, _ABSTATE, _ABCOMP, _ci("tel", "est", "ext", "sq")),
        _ci("Jr", "Sr", "Bros", "Ed.D", "Ph.D", "Blvd", "Rd", "Esq", "etc", "al", "seq", "Bldg"),
    ]
)
_ABBREV1 = rf"(?:{_ABBREV1_WORDS})\."
_ABTITLE = "|".join(
    [
        f"M{_ci('iss')}",
        f"{_ci('C')}{_ci('o')}?{_ci('mdr')}",
        _ci("Mr", "Mrs", "Ms", "Drs", "Dr", "Profs", "Prof", "Sens", "Sen", "Reps", "Rep", "Attys", "Atty"),
        _ci("Lt", "Col", "Gen", "Messrs", "Govs", "Gov", "Adm", "Rev", "Maj", "Sgt", "Cpl", "Pvt", "Capt"),
        _ci("Ste", "St", "Ave", "Pres", "Lieut", "Hon", "Brig", "Pfc", "Spc", "Supts", "Supt", "Det", "Mt"),
        _ci("Ft", "Adj", "Adv", "Asst", "Assoc", "Ens", "Insp", "Mlle", "Mme", "Msgr", "Sfc"),
    ]
)
_ABCOMP2 = f"{_ci('Invt', 'Elec', 'Natl', 'Dept')}|{_ci('M')}[ft]{_ci('g')}"
# ACRO first: "a.k.a.a.k.a." is one acronym, longer than the literal "a.k.a.".
_ABBREV4 = (
    f"(?:{_ACRO}|{_ABTITLE}|{_ci('vs', 'Alex', 'Wm', 'Jos', 'Cie', 'a.k.a', 'cf', 'TREAS', 'Ph')}|{_ABCOMP2})"
)
_ABBREV3 = rf"{_ci('ca', 'figs', 'fig', 'prop', 'nos', 'no', 'art', 'bldg', 'pp', 'op')}\."
# Words after which the reference takes "I." as a letter and a full stop (first letter case-sensitive).
_SENTENCE_START_WORDS = _words(
    "About According Additionally After An A As At But Earlier He Her Here However If In It Last Many More "
    "Mr. Ms. Now Once One Other Our She Since So Some Such That The Their Then There These They This We When "
    "While What Yet You"
)
_SENTENCE_STARTS = "|".join(
    f"{word[0]}{_ci(word[1:])}" if len(word) > 1 else word
    for word in sorted(_SENTENCE_START_WORDS, key=len, reverse=True)
)
_PHONE = (
    r"(?:(?:\([0-9]{2,3}\)[ \u00a0]?|(?:\+\+?)?(?:[0-9]{2,4}[\- \u00a0])?[0-9]{2,4}[\- \u00a0])[0-9]{3,4}"
    r"[\- \u00a0]?[0-9]{3,5}|(?:(?:\+\+?)?[0-9]{2,4}\.)?[0-9]{2,4}\.[0-9]{3,4}\.[0-9]{3,5})"
)
_FILENAME_EXTENSIONS = _words(
    "bat bmp c class cgi cpp dll doc docx exe gif gz h htm html jar java jpeg jpg mov mp3 pdf php pl png ppt "
    "ps py sql tar txt wav x xml zip"
)
_FILENAME_EXT = _ci(*_FILENAME_EXTENSIONS)
_FILENAME = rf"{_LETTER_OR_DIGIT}+(?:\.{_LETTER_OR_DIGIT}+)*\.{_FILENAME_EXT}"
_INSENTP = "[,;:\u3001]"
_SMILEY = r"[<>]?[:;=][\-o*']?[()DPdpO\\{@|\[\]]"
_ASIANSMILEY = (
    rf"[\^x=~<>]\.\[\^{_ci('x')}=~<>\]|[\-\^x=~<>']_[\-\^x=~<>']|\([\-\^x=~<>'][_.]?[\-\^x=~<>']\)"
    r"|\([\^x=~<>']-[\^x=~<>'`]\)"
)
_MISC_SYMBOL = (
    "[+%&~^|\\\\\u00a6\u00a7\u00a8\u00a9\u00ac\u00ae\u00af\u00b0-\u00ba\u00d7\u00f7\u0387\u05be\u05c0\u05c3"
    "\u05c6\u05f3\u05f4\u0600-\u0603\u0606-\u060a\u060c\u0614\u061b\u061e\u066a\u066d\u0703-\u070d\u07f6-\u07f8"
    "\u0964\u0965\u0e4f\u1fbd\u2016\u2017\u2020-\u2023\u2030-\u2038\u203b\u203e-\u2042\u2044\u207a-\u207f"
    "\u208a-\u208e\u2100-\u214f\u2190-\u21ff\u2200-\u2bff\u3012\u30fb\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40"
    "\uff5b-\uff65]"
)

_FRACTIONS = {"\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4", "\u2153": "1/3", "\u2154": "2/3"}
_CURRENCY = {"\u00a2": "cents", "\u00a3": "#", "\u0080": "$", "\u00a4": "$", "\u20a0": "$", "\u20ac": "$"}
_AMP_RE = re.compile(_AMP)


# --- actions: what a rule's matched text becomes -----------------------------------------------------------
def _keep(tok: str) -> str:
    return tok


def _no_soft_hyphens(tok: str) -> str:
    return tok.replace("\u00ad", "") or "-"  # the reference never makes an empty token


def _amp(tok: str) -> str:
    return _AMP_RE.sub("&", tok)


def _with_nbsp(tok: str) -> str:
    return tok.replace(" ", "\u00a0")  # the tokenizer never emits spaces inside a token


def _parens(tok: str) -> str:
    return tok.replace("(", "-LRB-").replace(")", "-RRB-")


def _quotes(tok: str, probably_left: bool) -> str:
    # PTB "LaTeX quotes": straight quotes read as closing unless a rule says they open something.
    single, double = ("`", "``") if probably_left else ("'", "''")
    tok = re.sub("&apos;|'", single, tok)
    tok = re.sub('"|&quot;', double, tok)
    tok = re.sub("[\u0091\u2018\u201b\u2039]", "`", tok)
    tok = re.sub("[\u0092\u2019\u203a]", "'", tok)
    tok = re.sub("[\u0093\u201c\u00ab]", "``", tok)
    return re.sub("[\u0094\u201d\u00bb]", "''", tok)


def _opening(tok: str) -> str:
    return _quotes(tok, True)


def _closing(tok: str) -> str:
    return _quotes(tok, False)


def _const(value: str) -> Callable[[str], str]:
    return lambda _tok: value


@dataclass(frozen=True)
class _Rule:
    """One lexer rule.

    ``pattern`` has a group ``t``: the text the lexer consumes (what follows it is trailing context, or
    text pushed back for the next token), unless ``pushback`` says otherwise.
    """

    pattern: re.Pattern[str]
    action: Callable[[str], str] | None  # None: the text is skipped (spaces, deleted characters)
    pushback: Callable[[str], tuple[str, int]] | None = None  # ``t`` -> (token, characters consumed)


def _acronym(tok: str) -> tuple[str, int]:
    # "I." before "The ...": the letter alone, the period comes next; "U.S." is returned whole, and its
    # period comes again as the next token (the reference's "reduplication").
    return (tok[:-1], 1) if len(tok) == 2 else (tok, len(tok) - 1)


def _rules() -> list[_Rule]:
    """The rules of PTBLexer.flex, in its order (the order decides ties)."""
    keep, drop = _keep, None
    spec: list[tuple[str, Callable[[str], str] | None] | tuple[str, Callable, Callable]] = [
        (rf"(?P<t>{_ci('c')}\+\+)", keep),
        (rf"(?P<t>{_ci('c', 'f')}#)", keep),
        (rf"(?P<t>{_ci('can')}){_ci('not')}", keep),
        (rf"(?P<t>{_ci(chr(39) + 't')}){_ci('was')}", keep),
        (rf"(?P<t>{_ci(chr(39) + 't')}){_ci('is')}", keep),
        (rf"(?P<t>{_ci('gon', 'wan')}(?={_ci('na')})|{_ci('got')}(?={_ci('ta')}))..", keep),
        (rf"(?P<t>{_ci('lem', 'gim')}){_ci('me')}", keep),
        (rf"(?P<t>{_SGML})", _with_nbsp),
        (rf"(?P<t>&{_ci('MD', 'mdash', 'ndash')};|[\u0096\u0097\u2013\u2014\u2015])", _const("--")),
        (rf"(?P<t>{_AMP})", _amp),
        (rf"(?P<t>&(?:{_ci('HT', 'TL', 'UR', 'LR', 'QC', 'QL', 'QR', 'odq', 'cdq')}|#[0-9]+);)", keep),
        (rf"(?P<t>{_WORD}){_REDAUX}", _no_soft_hyphens),
        (rf"(?P<t>{_SWORD}){_SREDAUX}", _no_soft_hyphens),
        (rf"(?P<t>{_WORD})", _no_soft_hyphens),
        # APOWORD, one alternative per rule so that each finds its longest match.
        (rf"(?P<t>{_APOS}{_ci('n')}{_APOS}?)", keep),
        (rf"(?P<t>[lLdDjJ]{_APOS})", keep),
        (rf"(?P<t>{_ci('Dunkin', 'somethin', 'ol')}{_APOS})", keep),
        (rf"(?P<t>{_APOS}{_ci('em', 'cause', 'till', 'til')})", keep),
        (rf"(?P<t>[A-HJ-XZn]{_APOS_ETC}{_JLETTER}{{2}}{_JLETTER}*)", keep),
        (rf"(?P<t>{_APOS}[2-9]0{_ci('s')})", keep),
        (rf"(?P<t>{_JLETTER}+[aeiouyAEIOUY]{_APOS_ETC}[aeiouA-Z]{_JLETTER}*)", keep),
        (rf"(?P<t>{_ci('cont') + chr(39) + _ci('d')}\.?)", keep),
        (rf"(?P<t>{_ci(*(chr(39).join(p) for p in _APOSTROPHE_WORDS))})", keep),
        (rf"(?P<t>{_ci('O')}{_APOS_ETC}{_ci('o')})", keep),
        (rf"(?P<t>{_ci('y')}{_APOS}){_JLETTER}", keep),
        (rf"(?P<t>{_ci('http')}{_ci('s')}?://{_URL_CHAR}+{_URL_END})", keep),
        (rf"(?P<t>{_ci('www.')}(?:[^ \t\n\f\r\"<>|.!?(){{}},]+\.)+[a-zA-Z]{{2,4}}{_URL_PATH})", keep),
        # ",-_" is a range in the original's class: no digits or capitals before ".com".
        (
            rf"(?P<t>(?:[^ \t\n\f\r\"`'<>|.!?(){{}},-_$]+\.)+{_ci('com', 'net', 'org', 'edu')}{_URL_PATH})",
            keep,
        ),
        (rf"(?P<t>{_EMAIL})", keep),
        (rf"(?P<t>@[a-zA-Z_][a-zA-Z_0-9]*|#{_LETTER}+)", keep),
        (rf"(?P<t>{_REDAUX})[^A-Za-z]", _closing),
        (rf"(?P<t>{_SREDAUX})[^A-Za-z]", _closing),
        (rf"(?P<t>{_DIGIT}{{1,2}}[\-/]{_DIGIT}{{1,2}}[\-/]{_DIGIT}{{2,4}})", keep),
        (rf"(?P<t>[\-+]?{_NUM})", _no_soft_hyphens),
        (
            r"(?P<t>[\u207a\u207b\u208a\u208b]?(?:[\u2070\u00b9\u00b2\u00b3\u2074-\u2079]+|[\u2080-\u2089]+))",
            keep,
        ),
        (rf"(?P<t>(?:{_DIGIT}{{1,4}}[\- \u00a0])?{_DIGIT}{{1,4}}(?:\\?/|\u2044){_DIGIT}{{1,4}})", _with_nbsp),
        ("(?P<t>[\u00bc\u00bd\u00be\u2153-\u215e])", lambda t: _FRACTIONS.get(t, t)),
        (rf"(?P<t>-{_ci('RRB', 'LRB', 'RCB', 'LCB', 'RSB', 'LSB')}-|{_ci('C.D.s', 'pro-', 'anti-')})", _amp),
        (rf"(?P<t>{_ci('S')}(?:{_AMP}|&){_ci('P-500', 'Ls')})", _amp),
        (rf"(?P<t>{_ci('Cap')}{_APOS}{_ci('n')}|{_ci('c')}{_APOS}{_ci('est')})", _amp),
        (rf"(?P<t>{_THING3})", keep),
        (r"(?P<t>[A-Z]*\$|#)", keep),
        (
            "(?P<t>[\u00a2\u00a3\u00a4\u00a5\u0080\u20a0\u20ac\u060b\u0e3f\u20a4\uffe0\uffe1\uffe5\uffe6])",
            lambda t: _CURRENCY.get(t, t),
        ),
        (
            rf"(?P<t>{_ACRO}\.)(?:{_SPACENL})+(?:{_SENTENCE_STARTS}|{_SGML}){_SPACENL}",
            keep,
            _acronym,
        ),
        (rf"(?P<t>{_ABBREV3}){_SPACENL}?{_DIGIT}", keep),
        (rf"(?P<t>(?:{_ci('pt')}[eyEY]|{_ci('co')})\.){_SPACE}{_ci('ltd', 'lim')}", keep),
        # ABBREV1 before an upper-case word (or at the end) is also a sentence end: "etc." then "." again.
        (rf"(?P<t>{_ABBREV1})(?s:..)", keep),
        (rf"(?P<t>{_ABBREV1})", keep),
        (rf"(?P<t>{_ABBREV4}\.)", keep),
        (rf"(?P<t>{_ABBREV4}){_SPACE}", keep),
        (rf"(?P<t>{_ACRO}){_SPACENL}", keep),
        (rf"(?P<t>{_APOS}[0-9][0-9]){_SPACENL}", keep),
        (rf"(?P<t>{_FILENAME})(?:{_SPACENL}|[.?!,])", keep),
        (rf"(?P<t>{_WORD}\.){_INSENTP}", _no_soft_hyphens),
        (rf"(?P<t>{_PHONE})", lambda t: _parens(_with_nbsp(t))),
        (rf"(?P<t>\"|{_ci('&quot;')})[A-Za-z0-9$]", _opening),
        (rf"(?P<t>\"|{_ci('&quot;')})", _closing),
        ("(?P<t>\x7f)", drop),
        (rf"(?P<t><|{_ci('&lt;')})", _const("<")),
        (rf"(?P<t>>|{_ci('&gt;')})", _const(">")),
        (rf"(?P<t>{_SMILEY})[^A-Za-z0-9]", _parens),
        (rf"(?P<t>{_ASIANSMILEY})", _parens),
        (r"(?P<t>\{)", _const("-LCB-")),
        (r"(?P<t>\})", _const("-RCB-")),
        (r"(?P<t>\[)", _const("-LSB-")),
        (r"(?P<t>\])", _const("-RSB-")),
        (r"(?P<t>\()", _const("-LRB-")),
        (r"(?P<t>\))", _const("-RRB-")),
        (r"(?P<t>-+)", lambda t: "--" if 3 <= len(t) <= 4 else t),
        ("(?P<t>\\.{3,5}|(?:\\.[ \u00a0]){2,4}\\.|[\u0085\u2026])", _const("...")),
        (r"(?P<t>@+|#+|_+)", keep),
        (r"(?P<t>\*+|(?:\\\*){1,3})", keep),
        (rf"(?P<t>{_INSENTP})", keep),
        (r"(?P<t>[?!]+)", keep),
        ("(?P<t>[.\u00a1\u00bf\u037e\u0589\u061f\u06d4\u0700-\u0702\u07fa\u3002])", keep),
        (r"(?P<t>=)", keep),
        (r"(?P<t>/)", keep),
        (rf"(?P<t>{_HTHING}\.){_INSENTP}", _no_soft_hyphens),
        (rf"(?P<t>{_HTHING})", _no_soft_hyphens),
        (rf"(?P<t>{_THING}\.){_INSENTP}", keep),
        (rf"(?P<t>{_THING})", keep),
        (rf"(?P<t>{_THINGA}\.){_INSENTP}", _amp),
        (rf"(?P<t>{_THINGA})", _amp),
        (r"(?P<t>')[A-Za-z][^ \t\n\r\u00a0]", _opening),
        (rf"(?P<t>{_REDAUX})", _closing),
        (rf"(?P<t>{_SREDAUX})", _closing),
        (rf"(?P<t>{_APOS})", _closing),  # QUOTES, one alternative per rule
        (r"(?P<t>'')", _closing),
        (
            "(?P<t>[`\u2018\u2019\u201a-\u201d\u0091-\u0094\u201e\u201f\u2039\u203a\u00ab\u00bb]{1,2})",
            _closing,
        ),
        (r"(?P<t><<|>>)", keep),
        (rf"(?P<t>{_MISC_SYMBOL})", keep),
        (f"(?P<t>\x00|{_SPACE}+|[\u200b\u200e\u200f\ufeff])", drop),
        (f"(?P<t>{_NEWLINE})", drop),
        (rf"(?P<t>{_ci('&nbsp;')})", drop),
    ]
    rules = []
    for entry in spec:
        pattern, action = entry[0], entry[1]
        pushback = entry[2] if len(entry) == 3 else None
        rules.append(_Rule(re.compile(pattern), action, pushback))
    return rules


# Words with an inner apostrophe that APOWORD lists literally ("nor'easter", "c'mon", ...).
_APOSTROPHE_WORDS = [("", "twas"), ("nor", "easter"), ("c", "mon"), ("e", "er"), ("s", "mores")]
_APOSTROPHE_WORDS += [("ev", "ry"), ("li", "l"), ("nat", "l")]

_RULES = _rules()
# Most caption words are plain letters followed by a space: no other rule can produce a different token
# there (every competing rule needs a digit, an apostrophe, a period or other punctuation), except the
# words the reference splits ("cannot", "gonna", ...).
_PLAIN_WORD = re.compile(r"[A-Za-z]+(?=[ \n])")
_SPLIT_WORDS = frozenset(["cannot", "gonna", "gotta", "wanna", "lemme", "gimme"])
_SPACES = re.compile("[ \t][ \t\u00a0\u2000-\u200a\u3000]*")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_SURROGATES = re.compile("[\ud800-\udfff]+")


def _utf16(match: re.Match[str]) -> str:
    offset = ord(match.group()) - 0x10000
    return chr(0xD800 + (offset >> 10)) + chr(0xDC00 + (offset & 0x3FF))


def _from_utf16(match: re.Match[str]) -> str:
    # Java writes a surrogate pair as its character and a lone surrogate as "?".
    text = match.group().encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text.replace("\ufffd", "?")


def _lex(text: str) -> Iterator[str]:
    """Yield PTB tokens (before lower-casing and punctuation removal) of ``text``, which ends with ``\\n``."""
    pos, end = 0, len(text)
    while pos < end:
        plain = _PLAIN_WORD.match(text, pos)
        if plain is not None and plain.group().lower() not in _SPLIT_WORDS:
            yield plain.group()
            pos = plain.end()
            continue
        spaces = _SPACES.match(text, pos)
        if spaces is not None:
            pos = spaces.end()
            continue
        best_len, best_rule, best_match = 0, None, None
        for rule in _RULES:
            m = rule.pattern.match(text, pos)
            if m is not None and m.end() - pos > best_len:
                best_len, best_rule, best_match = m.end() - pos, rule, m
        if best_rule is None or best_match is None:
            pos += 1  # an untokenizable character is deleted, as with the default "firstDelete" option
            continue
        token = best_match.group("t")
        if best_rule.pushback is None:
            pos += len(token)
        else:
            token, consumed = best_rule.pushback(token)
            pos += consumed
        if best_rule.action is not None:
            yield best_rule.action(token)


@lru_cache(maxsize=65536)
def _tokenize_cached(text: str) -> tuple[str, ...]:
    # The reference writes one caption per line after replacing "\n" by a space, so every caption is
    # followed by a line break; the other characters it takes as line breaks are spaces here (see above).
    line = re.sub("[\r\n\x0b\x0c\u2028\u2029]", " ", text) + "\n"
    line = _ASTRAL.sub(_utf16, line)  # the reference lexes 16-bit chars: astral characters are two
    tokens = [java_lower(_SURROGATES.sub(_from_utf16, t)) for t in _lex(line)]
    # As pycocoevalcap: the printed line (tokens joined by spaces) is stripped, split on spaces, filtered.
    words = [w for w in " ".join(tokens).rstrip().split(" ") if w not in PUNCTUATIONS]
    return tuple(words) if words != [""] else ()


def ptb_tokenize(text: str) -> list[str]:
    """Tokenize one caption the way the COCO caption evaluation does before scoring.

    Args:
        text: A raw caption.

    Returns:
        Lower-cased PTB tokens without the punctuation tokens in :data:`PUNCTUATIONS`, as the reference
        hands them to ROUGE-L (``" ".join`` of them is the reference's tokenized caption).

    >>> ptb_tokenize("A man's hat doesn't fit, etc.")
    ['a', 'man', "'s", 'hat', 'does', "n't", 'fit', 'etc.']
    """
    return list(_tokenize_cached(text))


def ptb_words(tokens: list[str]) -> list[str]:
    """The words BLEU and CIDEr-D count in a tokenized caption: its tokens split again on any whitespace.

    The reference splits the tokenized caption with Python's ``str.split()``, so a token that holds a
    non-breaking space (``1 1/2``, a phone number) counts as two words there, while ROUGE-L, which splits on
    ``" "`` only, sees one.

    >>> ptb_words(ptb_tokenize("1 1/2 cups"))
    ['1', '1/2', 'cups']
    """
    return " ".join(tokens).split()
