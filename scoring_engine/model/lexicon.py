"""The ten grooming characteristics of SPEC §3 and the phrases that signal them.

The stages come from grooming research: O'Connell's cyber-grooming stages, Gupta et al.
(2012, the Perverted-Justice stage analysis) and Lorenzo-Dus et al. (2016, the
"luring communication" model). Phrases are written in the normalised vocabulary of
:mod:`scoring_engine.model.text` (one or two words) and hashed into the same feature
space as the model's text features, so rating a characteristic costs one sparse
product per batch. Weights are in (0, 1]: 1 for phrases that name the characteristic
outright, less for phrases that only suggest it.

``age_disclosure_gap`` is not a phrase list: it compares the ages participants state
(``i'm 13``, ``14/f``, ``asl`` answers) or that the input declares
(``participants.u1.declared_age``), see :func:`stated_ages`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

CHARACTERISTICS: tuple[str, ...] = (
    "personal_information",
    "trust_building",
    "isolation",
    "secrecy",
    "exclusivity",
    "sexual_content",
    "meeting_arrangement",
    "platform_migration",
    "gifts_and_favours",
    "age_disclosure_gap",
)
PHRASE_CHARACTERISTICS: tuple[str, ...] = CHARACTERISTICS[:-1]


def _phrases(strong: str, weak: str = "") -> dict[str, float]:
    table = {p.strip(): 1.0 for p in strong.split(",") if p.strip()}
    table.update({p.strip(): 0.5 for p in weak.split(",") if p.strip()})
    return table


LEXICON: dict[str, dict[str, float]] = {
    "personal_information": _phrases(
        "how old, old are, asl, years old, your age, my age, what grade, which grade,"
        " what school, middle school, high school, grade school, junior high, 7th grade,"
        " 8th grade, 9th grade, freshman, where you live, you live, do you live,"
        " what city, what state, picture of, send picture, send pictures, your picture,"
        " more pictures, any pictures, see you, look like, birthday, real name",
        "age, old, school, grade, teacher, homework, live, from where, where from,"
        " picture, pictures, photo, photos, height, tall, weigh, hair, eyes, last name",
    ),
    "trust_building": _phrases(
        "so cute, very cute, your cute, you cute, your pretty, so pretty, beautiful,"
        " so sweet, mature, trust me, can trust, you trust, understand you, care about,"
        " your special, tell me anything, can tell, your smart, i understand,"
        " not like, your different, good listener, your hot",
        "cute, pretty, sweet, smart, trust, friend, friends, nice, promise, lonely, sad,"
        " understand, talk to, listen, honest, gorgeous, amazing",
    ),
    "isolation": _phrases(
        "home alone, by yourself, you alone, are alone, anyone home, anybody home,"
        " your mom, your dad, your parents, your mother, your father, your sister,"
        " your brother, mom home, dad home, parents home, at work, get home, gets home,"
        " mom works, when mom, when dad, your room, in bed, your bed, sleep over, sleepover,"
        " nobody home, no one, your grandma, stepdad, stepmom",
        "alone, mom, dad, parents, mother, father, sister, brother, grandma, grandpa,"
        " babysit, babysitting, bedroom, room, asleep, sleeping, work, late, curfew",
    ),
    "secrecy": _phrases(
        "secret, secrets, don't tell, dont tell, not tell, tell anyone, tell nobody,"
        " between us, our secret, delete, deleted, erase, get caught, in trouble,"
        " get trouble, go to jail, jail, cops, police, cop, sting, nobody knows,"
        " no one knows, keep quiet, cover, lie to, dont say, don't say, hide",
        "trouble, caught, private, careful, find out, found out, sneak, arrested, illegal,"
        " law, risk",
    ),
    "exclusivity": _phrases(
        "love you, i love, miss you, missed you, my girl, my baby, my girlfriend,"
        " be my, only you, just you, only one, special, marry, married me, soulmate,"
        " you mine, your mine, crush on, think about you, thinking about you, dream about,"
        " want you, need you, kiss you, hug you, relationship, sweetheart, babe, baby,"
        " honey, darling",
        "love, miss, dear, sweetie, crush, kiss, kisses, hug, hugs, together, forever,"
        " mine, date, dating, lover, cuddle",
    ),
    "sexual_content": _phrases(
        "sex, sexy, naked, nude, nudes, horny, cum, cumming, orgasm, penis, dick, cock,"
        " pussy, vagina, boobs, tits, breasts, nipples, masturbate, jerk off, jack off,"
        " blowjob, blow job, oral, lick, suck, virgin, condom, condoms, fuck, fucking,"
        " fucked, make love, making love, bra, panties, underwear, thong, lingerie,"
        " touch you, touch yourself, feel good, turned on, turn you, hard on, shaved,"
        " shave, wet, moan, spank, 69, positions, strip, undress, clothes off, in bed",
        "kiss, kissing, touch, touching, naughty, dirty, bed, shower, bath, body,"
        " legs, butt, ass, hot, rub, massage, experience, experienced",
    ),
    "meeting_arrangement": _phrases(
        "meet, meet up, meeting, come over, pick you, pick up, come get, drive to,"
        " drive down, drive up, hotel, motel, your address, the address, your house,"
        " my house, my place, your place, come see, see you, get together, hang out,"
        " directions, how far, miles, minutes away, hours away, the park, the mall,"
        " bus station, gas station, your street, what street",
        "drive, car, bus, train, tonight, tomorrow, weekend, saturday, sunday, friday,"
        " far, near, close, town, address, street, outside, leave, come, visit",
    ),
    "platform_migration": _phrases(
        "your number, my number, phone number, cell number, call me, call you,"
        " text me, text you, cam, on cam, video chat, video call, skype, msn, yahoo,"
        " aim, myspace, facebook, snapchat, whatsapp, kik, discord, instagram, telegram,"
        " email, emailaddress, cell phone, your cell, my cell, voice, add me",
        "phone, call, cell, text, number, video, webcam, messenger, online, chat,"
        " screen name, picture message",
    ),
    "gifts_and_favours": _phrases(
        "buy you, get you, bring you, gift, gifts, present, presents, money,"
        " pay for, pay you, dollars, bucks, gift card, phone card, shopping, take you,"
        " for you, treat you, spoil you, beer, alcohol, liquor, vodka, drinks, drink,"
        " cigarettes, smoke, weed, candy, ice cream",
        "buy, bought, pay, paid, card, clothes, shoes, dinner, food, movie, movies,"
        " ticket, tickets, reward",
    ),
}

# Stated ages: "i'm 13", "im 13", "i am 13", "13 years old", "13 yo", "13/f", "age 13".
_AGE_WORDS = {
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
}
_NUMBER = r"(\d{1,2}|" + "|".join(_AGE_WORDS) + r")"
_STATED_AGE = re.compile(
    r"(?:\bi\W?m\b|\bi am\b|\bim\b|\bim only\b|\bage\b|\bturned\b|\bturning\b|\bim just\b)"
    r"\s*(?:only|just|almost|like|about)?\s*" + _NUMBER + r"\b(?!\s*(?:min|minutes|hours|"
    r"hrs|miles|mi|pm|am|o'?clock|dollars|bucks|percent|%|inches|feet|ft|lbs|pounds|kg))"
    r"|\b" + _NUMBER + r"\s*(?:years? old|yrs? old|yr old|y/?o|yrs|yo|years)\b"
    r"|\b" + _NUMBER + r"\s*/\s*[mf]\b"
    r"|\b" + _NUMBER + r"\s+[mf]\s+\w"
    r"|\b[mf]\s*/\s*" + _NUMBER + r"\b",
    re.IGNORECASE,
)


def may_state_age(token: str) -> bool:
    """Whether a raw lower-case token could be the age in a statement of age."""
    return (token.isdigit() and len(token) <= 2) or token in _AGE_WORDS


MINOR_AGES = range(8, 18)
ADULT_AGES = range(18, 90)


def stated_age(text: str) -> int | None:
    """The age a message states for its author, if any (first one wins).

    Callers scanning many messages should pass only those with a token for which
    :func:`may_state_age` holds.
    """
    match = _STATED_AGE.search(text)
    if match is None:
        return None
    raw = next(g for g in match.groups() if g is not None)
    age = _AGE_WORDS.get(raw.lower()) if not raw.isdigit() else int(raw)
    if age is None or not (MINOR_AGES.start <= age < ADULT_AGES.stop):
        return None
    return age


def declared_ages(participants: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Ages the input declares for participants (``participants.u1.declared_age``)."""
    ages: dict[str, int] = {}
    for author, facts in participants.items():
        age = facts.get("declared_age") if isinstance(facts, Mapping) else None
        if isinstance(age, int) and not isinstance(age, bool) and 0 < age < 120:
            ages[author] = age
    return ages


def age_gap_rating(ages_by_author: Mapping[str, Iterable[int]]) -> float:
    """How clearly a stated minor is talking with a stated (or unstated) adult.

    1.0: one participant states a minor's age and another states an adult's.
    0.5: a participant states a minor's age and another participant is present
         who states no age (the usual shape of an offender's conversation).
    0.0: otherwise.
    """
    minors = {a for a, ages in ages_by_author.items() if any(x in MINOR_AGES for x in ages)}
    adults = {a for a, ages in ages_by_author.items() if any(x in ADULT_AGES for x in ages)}
    if not minors:
        return 0.0
    if adults - minors:
        return 1.0
    return 0.5
