"""ViewerMutedKeywordFilter: the post's own text matches a muted keyword.

Matching (homemixer_spec.md §6 #12): case-insensitive; accent-folded ("café" matches "cafe");
punctuation ignored; a multi-word keyword must match a contiguous token sequence; a keyword
without `#`/`@` matches plain, `#word` and `@word` tokens; `#word` (or `@word`) matches only
that hashtag (mention).
"""

from __future__ import annotations

import functools
import re
import unicodedata

import numpy as np

from filters.base import BaseFilter, FilterResult

_TOKEN = re.compile(r"([#@]?)(\w+)")

Token = tuple[str, str]  # (prefix "" / "#" / "@", folded word)


def fold(text: str) -> str:
    """Lower-case and strip accents (NFKD, combining marks removed)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokens(text: str) -> list[Token]:
    """Tokens of a text: words with an optional # or @ prefix; punctuation dropped."""
    return [(m.group(1), m.group(2)) for m in _TOKEN.finditer(fold(text))]


@functools.lru_cache(maxsize=1 << 12)
def _text_tokens(text: str) -> tuple[list[Token], frozenset[str]]:
    """A post text's tokens and its set of words, cached: the same posts reach many viewers.
    Only texts that pass the substring pre-check get here, so a small cache serves them (an
    entry is ~1.5 KB: 65,536 of them held ~90 MB through a large world's run)."""
    toks = tokens(text)
    return toks, frozenset(w for _, w in toks)


def _folded_contains_any(text: str, words: tuple[str, ...]) -> bool:
    """Is any of the (folded) words a substring of the folded text? ASCII text folds to its
    lower case, so only other text pays for the Unicode decomposition."""
    folded = text.lower() if text.isascii() else fold(text)
    return any(w in folded for w in words)


def _token_matches(keyword: Token, token: Token) -> bool:
    return keyword[1] == token[1] and (keyword[0] == "" or keyword[0] == token[0])


def matches(keyword: str, text: str) -> bool:
    """Does the text contain the keyword as a contiguous token sequence?"""
    return _contains(tokens(keyword), tokens(text))


def _contains(kw: list[Token], toks: list[Token]) -> bool:
    if not kw:
        return False
    for i in range(len(toks) - len(kw) + 1):
        if all(_token_matches(k, t) for k, t in zip(kw, toks[i : i + len(kw)], strict=True)):
            return True
    return False


class MutedKeywordFilter(BaseFilter):
    @property
    def name(self) -> str:
        return "ViewerMutedKeywordFilter"

    def enable(self, query) -> bool:
        return bool(query.muted_keywords)

    def filter(self, queries, cands) -> FilterResult:
        texts = cands.get("text")
        hits: dict[int, str] = {}  # row -> the muted keyword it matches
        req = cands.req
        order = np.argsort(req, kind="stable")
        reqs, starts = np.unique(req[order], return_index=True)
        bounds = np.r_[starts, len(order)]
        for j, r in enumerate(reqs.tolist()):
            keywords = [(k, tokens(k)) for k in queries[r].muted_keywords]  # tokenized once
            keywords = [(k, kw) for k, kw in keywords if kw]

            firsts = tuple({kw[0][1] for _, kw in keywords})
            rows = order[bounds[j] : bounds[j + 1]]
            request_texts = [t or "" for t in texts[rows].tolist()]
            # a cheap pre-check first: a keyword's first word is a substring of the folded
            # text (every token is), so a text without any is clear without tokenizing it
            # (a large world's posts do not fit the token cache)
            maybe = np.fromiter((_folded_contains_any(t, firsts) for t in request_texts),
                                bool, len(rows))  # fmt: skip
            for k in np.flatnonzero(maybe).tolist():
                toks, words = _text_tokens(request_texts[k])
                hit = next((kw_text for kw_text, kw in keywords
                            if kw[0][1] in words and _contains(kw, toks)), None)  # fmt: skip
                if hit is not None:
                    hits[int(rows[k])] = hit
        remove = np.zeros(len(cands), bool)
        remove[list(hits)] = True
        return self.partition(remove, lambda rows: [f"muted keyword {hits[i]!r}" for i in rows])
