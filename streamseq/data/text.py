"""Varied text for TTS from a seeded rng.

``kind="en"``: English templated sentences over a word list (``text/words.txt``), numbers, dates,
times, names, phone numbers and short commands. Other languages read text any voice of that
language can say, named by ``kind`` as parts joined with ``+`` (each piece draws one part):

- ``numbers``: integers, years and digit groups (``"7"``, ``"48213"``, ``"1984"``, ``"07 12 55"``),
- ``numerals``: also clock times, decimals and dates (``"12:30"``, ``"3,14"``, ``"12.5.2023"``);
  the engine expands them into the language's own words,
- ``names``: first names, surnames and cities of ``words.txt`` (for Latin-script languages),
- ``words:<lang>``: one to three entries of ``text/<lang>.txt`` (common words and short phrases).

Lengths are aimed at a speaking duration in seconds using ``WORDS_PER_S`` (about 2.7 spoken
words per second at espeak's default rate); actual durations depend on voice, speed and language.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

__all__ = ["WORDS_PER_S", "number_to_words", "random_text", "text_for_duration", "word_lists", "phrases",
           "phrase_languages"]

WORDS_PER_S = 2.7
_TEXT_DIR = Path(__file__).with_name("text")
_WORDS_FILE = _TEXT_DIR / "words.txt"

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
            "nine": "ninth", "twelve": "twelfth"}
_MONTHS = ("January February March April May June July August September October November "
           "December").split()
_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_COMMANDS = [
    "stop", "start", "next", "go back", "cancel", "yes", "no", "okay", "help", "repeat that",
    "pause", "play", "louder", "quieter", "turn on the lights", "turn off the lights",
    "open the door", "close the window", "what time is it", "what is the weather like",
    "play some music", "skip this song", "volume up", "volume down", "call {first}",
    "set a timer for {small} minutes", "remind me at {time}", "send a message to {first}",
    "show me the {noun}", "find the nearest {noun}", "navigate to {place}", "read my messages",
]
_TEMPLATES = [
    "The {adj} {noun} {past} the {noun2}.",
    "{First} {past} the {adj} {noun} {adv}.",
    "Did you see the {adj} {noun} near the {noun2}?",
    "I think we should {verb} the {noun} before {day}.",
    "Please {verb} the {noun} and {verb2} the {noun2}.",
    "There are {small} {nouns} on the {noun2}.",
    "{First} {Last} will arrive in {place} on {date}.",
    "The meeting with {First} starts at {time}.",
    "You can call me at {phone}.",
    "It costs {money}, which is {adv} {adj}.",
    "My {noun} is {adj}, but your {noun2} is {adj2}.",
    "Why did the {noun} {verb} the {adj} {noun2}?",
    "We {past} {small} {nouns} in {place} last {day}.",
    "On {date}, {First} {past} a {adj} {noun}.",
    "The train to {place} leaves from platform {small} at {time}.",
    "{First} {past} order number {big} {adv}.",
    "Yesterday the {noun} was {adj}, and today it is {adj2}.",
    "If the {noun} is {adj}, {verb} it {adv}.",
    "Room {big} is on the {ordinal} floor.",
    "The temperature in {place} will reach {small} degrees.",
]


@functools.lru_cache(maxsize=1)
def word_lists() -> dict[str, list[str]]:
    """Sections of ``text/words.txt`` as lists of tokens (verbs as "base past" pairs)."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in _WORDS_FILE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        elif current is None:
            raise ValueError(f"{_WORDS_FILE}: expected a [section] header before {line!r}")
        else:
            current.extend(line.split())
    verbs = sections.get("verbs", [])
    sections["verbs"] = [f"{a} {b}" for a, b in zip(verbs[::2], verbs[1::2], strict=False)]
    return sections


def number_to_words(n: int) -> str:
    """Cardinal English words for ``0 <= n < 10**9`` (e.g. 312 -> "three hundred and twelve")."""
    if not 0 <= n < 10**9:
        raise ValueError(f"expected 0 <= n < 1e9, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_to_words(rest))
    for size, word in ((10**6, "million"), (1000, "thousand")):
        if n >= size:
            rest = n % size
            head = number_to_words(n // size) + " " + word
            if rest == 0:
                return head
            return head + (" and " if rest < 100 else " ") + number_to_words(rest)
    raise AssertionError("unreachable")


def _ordinal(n: int) -> str:
    words = number_to_words(n)
    head, _, last = words.rpartition("-" if "-" in words else " ")
    sep = "-" if "-" in words else " "
    if last in _ORDINAL:
        last = _ORDINAL[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return (head + sep if head else "") + last


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x", "ch", "sh")) or noun in ("potato", "tomato"):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return {"child": "children", "woman": "women", "mouse": "mice"}.get(noun, noun + "s")


def _pick(rng: np.random.Generator, items: list[str]) -> str:
    return items[int(rng.integers(len(items)))]


def _number(rng: np.random.Generator, hi: int) -> str:
    n = int(rng.integers(0, hi))
    return number_to_words(n) if rng.random() < 0.5 else str(n)


def _fields(rng: np.random.Generator) -> dict[str, str]:
    w = word_lists()
    verb, past = _pick(rng, w["verbs"]).split()
    verb2 = _pick(rng, w["verbs"]).split()[0]
    year = int(rng.integers(1950, 2040))
    day = int(rng.integers(1, 29))
    date = (f"{_MONTHS[int(rng.integers(12))]} {_ordinal(day) if rng.random() < 0.5 else day}, {year}"
            if rng.random() < 0.6 else f"the {_ordinal(day)} of {_pick(rng, _MONTHS)}")
    hour, minute = int(rng.integers(1, 13)), int(rng.integers(0, 60))
    time = (f"{hour}:{minute:02d}" if rng.random() < 0.5
            else f"{_pick(rng, ['half past', 'quarter past', 'quarter to'])} {number_to_words(hour)}")
    phone = " ".join(str(int(d)) for d in rng.integers(0, 10, size=int(rng.integers(7, 11))))
    money = (f"${int(rng.integers(1, 500))}.{int(rng.integers(0, 100)):02d}" if rng.random() < 0.5
             else f"{number_to_words(int(rng.integers(1, 2000)))} dollars")
    noun = _pick(rng, w["nouns"])
    return {
        "noun": noun, "noun2": _pick(rng, w["nouns"]), "nouns": _plural(_pick(rng, w["nouns"])),
        "adj": _pick(rng, w["adjectives"]), "adj2": _pick(rng, w["adjectives"]),
        "adv": _pick(rng, w["adverbs"]), "verb": verb, "past": past, "verb2": verb2,
        "first": _pick(rng, w["first_names"]), "First": _pick(rng, w["first_names"]),
        "Last": _pick(rng, w["surnames"]), "place": _pick(rng, w["places"]),
        "day": _pick(rng, _DAYS), "date": date, "time": time, "phone": phone, "money": money,
        "small": _number(rng, 30), "big": _number(rng, 100000),
        "ordinal": _ordinal(int(rng.integers(1, 40))),
    }


def _piece(rng: np.random.Generator) -> str:
    """One sentence, command, or bare number/date/name."""
    f = _fields(rng)
    kind = rng.random()
    if kind < 0.65:
        return _pick(rng, _TEMPLATES).format(**f)
    if kind < 0.85:
        text = _pick(rng, _COMMANDS).format(**f)
        return text[0].upper() + text[1:] + ("?" if text.startswith("what") else ".")
    text = _pick(rng, [f["big"], f["date"], f["time"], f["phone"], f"{f['First']} {f['Last']}",
                       f["money"]])
    return text[0].upper() + text[1:] + "."


@functools.cache
def phrases(language: str) -> tuple[str, ...]:
    """Entries of ``text/<language>.txt`` (one word or short phrase a line, ``#`` comments)."""
    path = _TEXT_DIR / f"{language}.txt"
    if language == "words" or not path.is_file():
        raise ValueError(f"no word list for language {language!r}: expected {path}; "
                         f"lists exist for {', '.join(phrase_languages())}")
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def phrase_languages() -> tuple[str, ...]:
    """Languages with a word list in ``text/`` (ISO 639-1 codes), sorted."""
    return tuple(sorted(p.stem for p in _TEXT_DIR.glob("*.txt") if p.stem != "words"))


def _numeral(rng: np.random.Generator, full: bool) -> str:
    k = int(rng.integers(7 if full else 4))
    if k == 0:
        return str(int(rng.integers(0, 100)))
    if k == 1:
        return str(int(rng.integers(100, 100000)))
    if k == 2:
        return str(int(rng.integers(1900, 2040)))
    if k == 3:
        return " ".join(f"{int(d):02d}" for d in rng.integers(0, 100, size=int(rng.integers(2, 5))))
    if k == 4:
        return f"{int(rng.integers(0, 24))}:{int(rng.integers(0, 60)):02d}"
    if k == 5:
        return f"{int(rng.integers(0, 100))}{_pick(rng, ['.', ','])}{int(rng.integers(1, 100))}"
    return f"{int(rng.integers(1, 29))}.{int(rng.integers(1, 13))}.{int(rng.integers(1950, 2040))}"


@functools.cache
def _parts(kind: str) -> tuple[str, ...]:
    parts = tuple(kind.split("+"))
    for part in parts:
        if part.startswith("words:"):
            phrases(part.removeprefix("words:"))  # ValueError when there is no such list
        elif part not in ("numbers", "numerals", "names"):
            raise ValueError(f"text kind {kind!r}: expected 'en' or parts 'numbers', 'numerals', 'names', "
                             f"'words:<lang>' joined by '+', got part {part!r}")
    return parts


def _foreign_piece(rng: np.random.Generator, parts: tuple[str, ...]) -> str:
    """One phrase, name or numeral of a ``kind`` other than English, with closing punctuation."""
    part = parts[int(rng.integers(len(parts)))]
    if part.startswith("words:"):
        items = phrases(part.removeprefix("words:"))
        text = " ".join(items[int(rng.integers(len(items)))] for _ in range(int(rng.integers(1, 4))))
    elif part == "names":
        w = word_lists()
        text = _pick(rng, [_pick(rng, w["first_names"]), f"{_pick(rng, w['first_names'])} {_pick(rng, w['surnames'])}",
                           _pick(rng, w["places"])])
    else:
        text = _numeral(rng, full=part == "numerals")
    return text + _pick(rng, [".", ".", ",", "?"])


def _spoken_words(text: str) -> float:
    """Rough spoken-word count: digits are read one word per digit-ish group."""
    count = 0.0
    for tok in text.split():
        digits = sum(c.isdigit() for c in tok)
        count += 1.0 + (1.5 * (digits - 1) if digits > 1 else 0.0)
    return count


def text_for_duration(rng: np.random.Generator, seconds: float, kind: str = "en") -> str:
    """Concatenate pieces of ``kind`` (see the module doc) until they would take about ``seconds``
    to say (at least one piece)."""
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    parts = None if kind == "en" else _parts(kind)
    target = seconds * WORDS_PER_S
    pieces: list[str] = []
    words = 0.0
    for _ in range(64):
        piece = _piece(rng) if parts is None else _foreign_piece(rng, parts)
        n = _spoken_words(piece)
        if pieces and words + n > target * 1.15:
            break
        pieces.append(piece)
        words += n
        if words >= target * 0.85:
            break
    return " ".join(pieces)


def random_text(rng: np.random.Generator, *, min_s: float = 1.0, max_s: float = 12.0, kind: str = "en") -> str:
    """Text of ``kind`` (see the module doc) aimed at a duration drawn log-uniformly in ``[min_s, max_s]`` s."""
    if not 0 < min_s <= max_s:
        raise ValueError(f"expected 0 < min_s <= max_s, got {min_s}, {max_s}")
    return text_for_duration(rng, float(np.exp(rng.uniform(np.log(min_s), np.log(max_s)))), kind)
