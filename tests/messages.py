"""Message checks that ask what an error or warning is about, not how it is worded.

A check names the essential words (the key, the bad value, the path, the package to install),
each an exact substring of the message, case aside, in any order and any sentence around them.
The type is checked as `pytest.raises` and `pytest.warns` check it, so a reworded message still
passes and a message that no longer names the key, or an error of another type, still fails.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import pytest


def names(message: str, *words: str) -> str:
    """`message`, after checking it contains each of `words` (case-insensitive substrings)."""
    lowered = message.lower()
    missing = [word for word in words if word.lower() not in lowered]
    assert not missing, f"the message does not name {missing}: {message!r}"
    return message


@contextlib.contextmanager
def raises(kind: type[BaseException], *words: str) -> Iterator[pytest.ExceptionInfo]:
    """`pytest.raises(kind)` whose message must name each of `words`."""
    with pytest.raises(kind) as raised:
        yield raised
    names(str(raised.value), *words)


@contextlib.contextmanager
def warns(kind: type[Warning], *words: str) -> Iterator[list[warnings.WarningMessage]]:
    """`pytest.warns(kind)` where one warning of that kind names each of `words`."""
    with pytest.warns(kind) as record:
        yield record
    texts = [str(w.message) for w in record if issubclass(w.category, kind)]
    lowered = [text.lower() for text in texts]
    assert any(all(word.lower() in text for word in words) for text in lowered), (
        f"no {kind.__name__} names {list(words)}: {texts}"
    )
