"""Seeded pools of realistic cell values, in the JSON shape Airtable returns for each field type."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from sandbox.clock import date_from_ms, iso_from_ms, make_id

# Generated data ends here, so a seed always yields the same base whatever the day.
ANCHOR_MS = 1_719_705_600_000  # 2024-06-30T00:00:00.000Z
SPAN_MS = 2 * 365 * 86_400_000

Maker = Callable[[], Any]

_FIRST = ["Ada", "Grace", "Linus", "Margaret", "Alan", "Katherine", "José", "Zoë", "Søren",
          "Aiko", "Olúwaseun", "Ingrid", "Mateo", "Priya", "Noah", "Fatima"]
_LAST = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Johnson", "Müller", "Ødegaard",
         "O'Neil", "Nakamura", "García", "Okafor", "Novák", "Singh", "Smith", "Kowalski"]
_COMPANY = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Tyrell",
            "Cyberdyne", "Soylent", "Vandelay", "Pied Piper", "Aperture", "Oscorp", "Monarch",
            "Dunder Mifflin", "Nakatomi", "Gringotts", "Bluth"]
_SUFFIX = ["Ltd", "GmbH", "Inc.", "& Sons", "SA", "Labs", "Group", "Holdings", "Studio",
           "Partners", "Co-op", "Trading", "Ventures", "Logistics", "AG", "BV"]
_PLACES = ["Berlin", "Lagos", "Lima", "Osaka", "Oslo", "Austin", "Pune", "Porto", "Québec",
           "Zürich", "Nairobi", "Hanoi", "Leeds", "Perth", "Tromsø", "Cork"]
_WORDS = ("invoice follow up call quarterly review renewal contract shipping delay budget "
          "approval onboarding kickoff migration report draft signed pending refund audit "
          "forecast pipeline sprint backlog estimate vendor warehouse").split()
_HOSTILE_TEXT = [
    "Robert'); DROP TABLE students;--", 'He said "hello" and left', "Tab\tseparated\tvalue",
    "Line one\r\nLine two", "emoji 🚀🔥✅", "名前とテキスト", "Ünïcödé ñ ß ø", "   padded   ",
    "back\\slash", "percent % and underscore _", "{curly} [square] <angle>", "null", "NULL",
    "0", "-1", "1e309", "true", "2024-02-30", "x" * 5_000,
]
STATUS_CHOICES = ["Todo", "In progress", "Blocked", "Done", "Archived"]
TAG_CHOICES = ["urgent", "billing", "vip", "legal", "churn risk", "🚀 launch", "Ünïcödé"]
_DOMAINS = ["example.com", "example.org", "acme.test", "globex.example", "müller.example"]
_IMAGE_TYPES = [("photo.jpg", "image/jpeg"), ("diagram.png", "image/png"),
                ("scan.gif", "image/gif")]
_OTHER_TYPES = [("contract.pdf", "application/pdf"), ("export.csv", "text/csv"),
                ("notes.txt", "text/plain"), ("deck.pptx", "application/vnd.openxmlformats-"
                                              "officedocument.presentationml.presentation")]
_CONTENT = "https://v5.airtableusercontent.com/v3/u/29/29/1719705600000"


def _thumb(url: str, width: int, height: int) -> dict[str, Any]:
    return {"url": url, "width": width, "height": height}


class Samples:
    """Pools drawn once per base from a seeded generator; record values are picked from them.

    Values are shared between records (one attachment dict may sit in many records), which
    keeps a 20,000-record table small; the model never changes a stored value in place.
    """

    def __init__(self, rng: random.Random, *, hostile: bool) -> None:
        self.rng = rng
        self.hostile = hostile
        self.people = [
            {"id": make_id("usr", rng), "email": f"{first}.{last}@example.com".lower()
             .replace("'", ""), "name": f"{first} {last}"}
            for first, last in zip(_FIRST, _LAST, strict=True)
        ]
        self.attachments = [self._attachment(i) for i in range(40)]
        self.days = [date_from_ms(ANCHOR_MS - i * 86_400_000 + 180 * 86_400_000)
                     for i in range(900)]
        self.names = [f"{c} {s}" for c in _COMPANY for s in _SUFFIX]
        self.sentences = [" ".join(rng.sample(_WORDS, rng.randint(3, 9))).capitalize() + "."
                          for _ in range(300)]

    def _attachment(self, i: int) -> dict[str, Any]:
        rng = self.rng
        att_id = make_id("att", rng)
        is_image = i % 3 != 2
        filename, mime = (_IMAGE_TYPES if is_image else _OTHER_TYPES)[i % 3 if is_image else i % 4]
        filename = f"{i:02d}-{filename}"
        url = f"{_CONTENT}/{att_id}/{filename}"
        data: dict[str, Any] = {"id": att_id, "url": url, "filename": filename,
                                "size": rng.randint(2_000, 9_000_000), "type": mime}
        if is_image:
            width, height = rng.choice([(800, 600), (1920, 1080), (640, 640), (300, 1200)])
            data.update(width=width, height=height, thumbnails={
                "small": _thumb(url + "?small", 36 * width // height, 36),
                "large": _thumb(url + "?large", min(width, 512), min(height, 512)),
                "full": _thumb(url + "?full", width, height),
            })
        elif mime == "application/pdf":
            data["thumbnails"] = {"small": _thumb(url + "?small", 27, 36),
                                  "large": _thumb(url + "?large", 512, 683)}
        return data

    def _pick(self, pool: list[Any]) -> Maker:
        r, n = self.rng.random, len(pool)
        return lambda: pool[int(r() * n)]

    def _some(self, pool: list[Any], most: int) -> Maker:
        r, n = self.rng.random, len(pool)

        def make() -> list[Any]:
            picked = {int(r() * n) for _ in range(1 + int(r() * most))}
            return [pool[i] for i in sorted(picked)]

        return make

    def _text(self) -> Maker:
        r, sentences, words = self.rng.random, self.sentences, _WORDS
        hostile = _HOSTILE_TEXT if self.hostile else None
        ns, nw = len(sentences), len(words)

        def make() -> str:
            if hostile is not None and r() < 0.05:
                return hostile[int(r() * len(hostile))]
            return f"{words[int(r() * nw)].capitalize()} {words[int(r() * nw)]}" + (
                f" — {sentences[int(r() * ns)]}" if r() < 0.3 else "")

        return make

    def maker(self, kind: str, options: dict[str, Any] | None = None) -> Maker:
        """A function returning one value of an independent field of type ``kind``."""
        r = self.rng.random
        sentences, people = self.sentences, self.people
        ns = len(sentences)
        choices = [c["name"] for c in (options or {}).get("choices", [])]
        makers: dict[str, Maker] = {
            "singleLineText": self._text(),
            "multilineText": lambda: "\n".join(sentences[int(r() * ns)]
                                               for _ in range(1 + int(r() * 3))),
            "richText": lambda: f"**{sentences[int(r() * ns)]}**\n\n- {sentences[int(r() * ns)]}"
                                f"\n- [link](https://example.com/{int(r() * 999)})\n",
            "email": lambda: f"{people[int(r() * 16)]['email'].split('@')[0]}{int(r() * 99)}@"
                             f"{_DOMAINS[int(r() * 5)]}",
            "url": lambda: f"https://{_DOMAINS[int(r() * 5)]}/p/{int(r() * 100_000)}?ref=sandbox",
            "phoneNumber": lambda: f"({200 + int(r() * 700)}) 555-{int(r() * 10_000):04d}",
            "number": lambda: int(r() * 500),
            "currency": lambda: round(r() * 20_000 - 1_000, 2),
            "percent": lambda: round(r(), 2),
            "rating": lambda: 1 + int(r() * 5),
            "duration": lambda: int(r() * 360) * 60,
            "checkbox": lambda: True,
            "date": self._pick(self.days),
            "dateTime": lambda: iso_from_ms(ANCHOR_MS - int(r() * SPAN_MS)),
            "singleSelect": self._pick(choices or STATUS_CHOICES),
            "multipleSelects": self._some(choices or TAG_CHOICES, 3),
            "multipleAttachments": self._some(self.attachments, 3),
            "singleCollaborator": self._pick(people),
            "multipleCollaborators": self._some(people, 3),
            "barcode": lambda: ({"text": f"{int(r() * 10**12):013d}", "type": "ean13"}
                                if r() < 0.7 else {"text": f"SKU-{int(r() * 99_999):05d}"}),
            "formula": self._formula_number(),
        }
        return makers[kind]

    def _formula_number(self) -> Maker:
        r = self.rng.random

        def make() -> Any:
            roll = r()
            if roll < 0.03:
                return {"specialValue": "NaN"}
            if roll < 0.05:
                return {"error": "#ERROR!"}
            if roll < 0.06:
                return {"specialValue": "Infinity"}
            return round(r() * 1000, 3)

        return make

    def mixed(self) -> Maker:
        """Values whose JSON type changes from record to record (a badly typed formula)."""
        r, words = self.rng.random, _WORDS

        def make() -> Any:
            roll = r()
            if roll < 0.5:
                return round(r() * 100, 1)
            if roll < 0.8:
                return words[int(r() * len(words))]
            if roll < 0.95:
                return [int(r() * 10), words[int(r() * len(words))]]
            return {"error": "#ERROR!"}

        return make

    def primary_name(self, place: bool) -> Maker:
        """Company-like names; ``place`` adds a city so that fewer repeat."""
        r, names = self.rng.random, self.names
        n = len(names)
        if not place:
            return lambda: names[int(r() * n)]
        return lambda: f"{names[int(r() * n)]} {_PLACES[int(r() * 16)]}"
