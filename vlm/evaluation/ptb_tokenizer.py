"""The Stanford PTBTokenizer of the COCO caption evaluation, in Python (no Java).

The COCO caption evaluation (`pycocoevalcap.eval.COCOEvalCap`) tokenises every reference and candidate with the
Stanford PTBTokenizer (CoreNLP 3.4.1, run with `-preserveLines -lowerCase` through Java) and then drops the tokens
in `pycocoevalcap.tokenizer.ptbtokenizer.PUNCTUATIONS`. `ptb_tokenize` does the same in pure Python, so no Java is
needed; the scorers (`Bleu(4)`, `Cider()`, `Rouge()`) are pycocoevalcap's, called exactly as COCOEvalCap calls
them. METEOR and SPICE (Java programs) are not computed.

What `ptb_tokenize` reproduces of PTBTokenizer 3.4.1 (checked token for token against the jar that pycocoevalcap
ships, see tests/evaluation/test_caption_vqa_metrics.py):

- lower-casing; runs of whitespace (and newlines, as COCOEvalCap replaces them) separate tokens;
- punctuation split off words: `, ; : . ? !`, quotes, brackets, `$ % & * = + # < > | ~ ^`; a sentence-final or
  mid-sentence period is its own token unless the word is an acronym or single letter (`u.s.`, `p.m.`, `e.g.`,
  `c.`) or one of PTBTokenizer's abbreviations (`mr. st. dr. etc. jan. inc. ...`; `mass. ill. ...` only
  capitalised; `no. fig. ...` only before a number) — the table below was read off the 3.4.1 jar;
- clitics: `don't -> do n't`, `can't -> ca n't`, `dog's -> dog 's`, `'re 've 'll 'd 'm`; `cannot -> can not`,
  `gonna -> gon na` (also gotta, wanna, gimme, lemme); `'em 'til 'cause 'n' '90s` kept whole, as are
  `o'clock`, `ma'am`, `c'mon` and the other apostrophe words of 3.4.1's APOWORD rule;
- words joined by `-`, `.`, `/`, `@` (`black-and-white`, `t-shirt`, `1/2`, `3.5`), numbers with `,` or `:`
  between digits (`1,000`, `12:30`), a leading sign or point on a number (`-5`, `.5`);
- a period before `,` `;` `:` stays on its word (`dog.,`); `2 1/2` is one token (with a no-break space);
  `AT&T` is one token, `at&t` three;
- unicode quotes, dashes and the ellipsis normalised as PTBTokenizer does (`“ ” ‘ ’ — – …`);
- brackets become `-lrb- -rrb- -lsb- -rsb- -lcb- -rcb-`. Note these stay in the output: COCOEvalCap's removal list
  has them in upper case (`-LRB-`) but the tokenizer has already lower-cased them, so the official pipeline keeps
  them, and so does this one. Likewise `!!!`, `??` and `!?` (one token each, not in the list) stay.

Known differences (rare in captions): URLs and e-mail addresses with `:` or `//`, emoticons (`:)` is one token
`:-rrb-` in PTBTokenizer, `-rrb-` here), SGML/XML tags with spaces, numbers glued to letters after a decimal point
(`v1.2`, `x.5`), apostrophes inside words other than those listed above (`fo'c'sle`), abbreviations 3.4.1 knows
that are not in the table below, and characters Java and Python lower-case differently. One difference comes
from COCOEvalCap itself: it tokenises all captions as one text, so a `no.` (or `fig.`, ...) ending one caption
keeps its period there when the next caption starts with a digit; here each caption is tokenised on its own.
"""
from __future__ import annotations

import re
from typing import List, Optional

from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

_REMOVED = frozenset(PUNCTUATIONS)

# --- PTBTokenizer 3.4.1 (-preserveLines -lowerCase) in Python -----------------------------------------------------

# Words after which a period stays attached ("st." stays one token), whatever the case and what follows.
_ABBREVIATIONS = frozenset('''
    jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thurs fri
    ala ariz calif colo conn ct dak fla ga ind kan kans ky md mich minn mo mont neb nev okla penn tenn va vt
    wis wisc wyo inc co cos corp ltd plc rt bancorp bhd assn univ intl sys tel est ext sq jr sr bros esq etc al
    seq bldg mr mrs ms dr drs prof profs sen sens rep reps atty attys lt col gen messrs gov govs adm rev maj sgt
    cpl pvt capt st ste ave pres lieut hon brig cmdr comdr pfc spc supt supts det mt ft adj adv asst assoc ens
    insp mlle mme msgr sfc invt elec natl mfg mtg dept blvd rd v wm jos cie cf treas ph vs ph.d ed.d
'''.split())
# ... only when capitalised ("Mass." but not "mass.")
_CAPITALISED_ABBREVIATIONS = frozenset('az ark del ill la mass miss ore pa tex wash'.split())
# ... only with a lower-case t ("Pty." and "pty." but not "PTY.")
_LOWER_T_ABBREVIATIONS = frozenset('pty ptys pte ptes'.split())
# ... only before a number ("no. 5" but "says no.")
_NUMBER_ABBREVIATIONS = frozenset('ca fig figs prop no nos art pp op'.split())
_ACRONYM = re.compile(r'[^\W\d_](?:\.[^\W\d_])*\Z')  # u.s, p.m, e.g, c (the final period is looked at separately)

# Whole words PTBTokenizer splits in two.
_ASSIMILATIONS = {'cannot': ('can', 'not'), 'gonna': ('gon', 'na'), 'gotta': ('got', 'ta'),
                  'wanna': ('wan', 'na'), 'gimme': ('gim', 'me'), 'lemme': ('lem', 'me')}
_APOSTROPHE_WORDS = frozenset("c'mon e'er s'mores ev'ry li'l nat'l nor'easter".split())
_BRACKETS = {'(': '-LRB-', ')': '-RRB-', '[': '-LSB-', ']': '-RSB-', '{': '-LCB-', '}': '-RCB-'}
_NORMALISE = str.maketrans({'\u2019': "'", '\u2018': '`', '\u201c': '"', '\u201d': '"', '\u201e': '"',
                            '\u2013': ' -- ', '\u2014': ' -- ', '\u2026': ' ... '})

_WORD = re.compile(r'\w+(?:(?:[-./@]|(?<=\d)[,:](?=\d))\w+)*')
_SIGNED_NUMBER = re.compile(r'(?:[-+]\.?|\.)\d+(?:[.,]\d+)*')  # -5, +3, .5, -1,000 (then -5th -> -5 th)
_CAPS_AMPERSAND = re.compile(r'[A-Z]+&[A-Z]+(?!\w)')  # AT&T, B&W (but at & t, b & w)
_FRACTION = re.compile(r'\d{1,4} \d{1,4}/\d{1,4}(?![\w/])')  # "2 1/2": one token, joined by a no-break space
_DECIMAL_THEN_LETTERS = re.compile(r'(\d+(?:[.,]\d+)*[.,]\d+)([^\W\d_]\w*)\Z')  # 3.5mm -> 3.5 mm
_CLITIC = re.compile(r"'(?:s|d|m|re|ve|ll)(?!\w)", re.IGNORECASE)
_NOT = re.compile(r"n't(?!\w)", re.IGNORECASE)
_APOSTROPHE_LED = re.compile(r"'(?:n'|n(?!\w)|(?:em|cause|till?|[2-9]0s)(?!\w)|\d\d(?!\S)|t(?=(?:is|was)(?!\w)))",
                             re.IGNORECASE)
_REST_OF_WORD = re.compile(r'[^\W\d_]+')
_OTHER = re.compile(r'\.\.\.+|--+|[?!]+|``|\'\'|[#@][^\W\d_]\w*|<[A-Za-z/][^<>\s]*>|\S')


def _apostrophe_kind(word: str, rest: str) -> Optional[str]:
    """How PTBTokenizer 3.4.1 treats `word'rest` (`rest`: the letters after the apostrophe): 'join' keeps it one
    token (its APOWORD rule: o'clock, d'oh, O'Brien, ma'am), 'prefix' splits after the apostrophe (y'know ->
    y' know), None splits the apostrophe off as a quote."""
    if len(word) == 1 and len(rest) >= 2 and (word in 'nodl' or word in 'ABCDEFGHJKLMNOPQRSTUVWXZ'):
        return 'join'
    if word in ('y', 'Y', 'j') and rest[0] not in 'sS':
        return 'prefix'
    if len(word) >= 2 and word.isalpha() and word[-1] in 'aeiouyAEIOUY' and (rest[0] in 'aeiou' or rest[0].isupper()):
        return 'join'
    return None


def _period_stays(word: str, text: str, end: int) -> bool:
    """Whether the period at text[end] belongs to `word` (an abbreviation) rather than being its own token."""
    lower = word.lower()
    if text[end + 1:end + 2] in (',', ';', ':'):  # "dog.," : a period before a comma ends no sentence
        return True
    if _ACRONYM.match(word) or lower in _ABBREVIATIONS:
        return True
    if lower in _CAPITALISED_ABBREVIATIONS:
        return word[0].isupper()
    if lower in _LOWER_T_ABBREVIATIONS:
        return word[1] == 't'
    if lower in _NUMBER_ABBREVIATIONS:
        return re.match(r'\s*\d', text[end + 1:]) is not None
    return False


def _ptb_tokens(text: str) -> List[str]:
    """PTBTokenizer's tokens of one line, before lower-casing and punctuation removal."""
    text = text.translate(_NORMALISE)
    tokens: List[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        led = _APOSTROPHE_LED.match(text, i) if text[i] == "'" else None
        if led:
            tokens.append(led.group())
            i = led.end()
            continue
        clitic = _CLITIC.match(text, i) if text[i] == "'" else None
        if clitic:
            tokens.append(clitic.group())
            i = clitic.end()
            continue
        number = _SIGNED_NUMBER.match(text, i) or _CAPS_AMPERSAND.match(text, i) or _FRACTION.match(text, i)
        if number:
            tokens.append(number.group().replace(' ', '\u00a0'))
            i = number.end()
            continue
        match = _WORD.match(text, i)
        if not match:
            other = _OTHER.match(text, i)
            token = other.group()
            if token.startswith(('--', '...')):
                token = token[:3] if token[0] == '.' else '--'
            tokens.append(_BRACKETS.get(token, "''" if token == '"' else token))
            i = other.end()
            continue
        word, end = match.group(), match.end()
        if word.lower() in _ASSIMILATIONS and not _CLITIC.match(text, end):  # cannot's stays
            tokens.extend(_ASSIMILATIONS[word.lower()])
            i = end
            continue
        if end < n and text[end] == "'":
            if word[-1] in 'nN' and _NOT.match(text, end - 1):  # don't -> do n't
                tokens += ([word[:-1]] if len(word) > 1 else []) + [text[end - 1:end + 2]]
                i = end + 2
                continue
            rest = _REST_OF_WORD.match(text, end + 1)
            if rest and not _CLITIC.match(text, end) and not _APOSTROPHE_LED.match(text, end):
                joined = word + "'" + rest.group()
                kind = 'join' if joined.lower() in _APOSTROPHE_WORDS else _apostrophe_kind(word, rest.group())
                if kind == 'join':
                    tokens.append(joined)
                    i = rest.end()
                    continue
                if kind == 'prefix':
                    tokens.append(word + "'")
                    i = end + 1
                    continue
        if end < n and text[end] == '.' and _period_stays(word, text, end):
            word, end = word + '.', end + 1
        split = _DECIMAL_THEN_LETTERS.match(word)
        tokens += list(split.groups()) if split else [word]
        i = end
        if (end < n and text[end] == "'" and text[end + 1:end + 2] != "'" and not _CLITIC.match(text, end)
                and not _APOSTROPHE_LED.match(text, end)):
            tokens.append('`' if _REST_OF_WORD.match(text, end + 1) else "'")  # a quote, not an apostrophe
            i = end + 1
    return tokens


def ptb_tokenize(caption: str) -> str:
    """One caption as COCOEvalCap passes it to the scorers: PTB-tokenised, lower-cased, punctuation tokens
    removed, joined by single spaces ('' when nothing is left)."""
    tokens = (token.lower() for token in _ptb_tokens(caption.replace('\n', ' ')))
    # the removal list is compared after lower-casing, as in COCOEvalCap (so '-lrb-' is not removed)
    return ' '.join(token for token in tokens if token not in _REMOVED)
