"""Words shared by captions and questions: number words, plurals and lists."""
from __future__ import annotations

from typing import Sequence

NUMBER_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five')


def plural(noun: str) -> str:
    """'circles', 'red crosses'."""
    return noun + 'es' if noun.endswith(('s', 'x', 'ch', 'sh')) else noun + 's'


def counted(count: int, noun: str) -> str:
    """'one circle', 'three red stars'."""
    return f'{NUMBER_WORDS[count]} {noun if count == 1 else plural(noun)}'


def join_words(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ', '.join(items[:-1]) + ' and ' + items[-1]
