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

    def filter(self, query, candidates: list) -> FilterResult:
        keywords = [(k, tokens(k)) for k in query.muted_keywords]  # tokenized once
        keywords = [(k, kw) for k, kw in keywords if kw]

        @functools.cache
        def hit(text: str) -> str | None:
            toks = tokens(text)
            words = {w for _, w in toks}  # a cheap pre-check before the sequence match
            return next((k for k, kw in keywords if kw[0][1] in words and _contains(kw, toks)),
                        None)  # fmt: skip

        def why(c) -> str | None:
            k = hit(c.text or "")
            return f"muted keyword {k!r}" if k is not None else None

        return self.partition(candidates, why)
