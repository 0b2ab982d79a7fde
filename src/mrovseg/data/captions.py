"""Captions of toy scenes and the rule that takes nouns (phrases) out of captions.

* :func:`toy_caption` writes the caption of a toy scene the way the toy CLIP was pretrained
  (``scripts/pretrain_toy_clip.py``): "a photo of a red circle, a blue ring and a green cross."
  (objects shuffled, one of :data:`TEMPLATES`), or "a photo of the background." for an empty scene.
* :func:`extract_nouns` is the one noun rule of the package (``docs/mgca.md`` §2): MGCA's caption
  datasets and OVSeg's caption mining (``training/ovseg.py``) both use it. Nouns come back in caption
  order, each once:

  - ``vocabulary`` given: every whole-word, case-insensitive occurrence of a vocabulary entry,
    longest entries first, occurrences not overlapping.
  - no vocabulary: the rule-based noun-phrase chunker of :func:`_phrase_nouns` (no tagger, parser
    or download: NLTK's taggers and spaCy's models are separate downloads, our machines have no
    network at run time, DESIGN.md §5). A noun phrase is a run of content words between function
    words (:data:`FUNCTION_WORDS`), verbs (:data:`VERBS`) and punctuation; the head noun is its
    last word, modifiers (adjectives, nouns: "red car", "traffic light") are kept before it.
    Toy captions ("a photo of a red circle, a blue ring and a green cross.") give exactly their
    class names, the nouns matching the class names gives (a test checks every class and template).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

#: Caption templates of the toy CLIP's pretraining (``scripts/pretrain_toy_clip.py``).
TEMPLATES: tuple[str, ...] = (
    "a photo of {}.",
    "a picture of {}.",
    "an image of {}.",
    "a rendering of {}.",
    "a drawing of {}.",
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Words that end a noun phrase and are never part of one: articles, determiners, quantifiers,
#: numerals, pronouns, prepositions, conjunctions, auxiliaries and modals, common adverbs.
FUNCTION_WORDS = _words("""
    a an the this that these those some any many much several few each every all both either neither no
    another other others such one two three four five six seven eight nine ten eleven twelve twenty
    dozen dozens hundred hundreds i me my we us our you your he him his she her it its they them their
    someone somebody something everyone everybody everything anyone anything nobody nothing who whom
    whose which what where when while whilst why how there here of in on at by with without from for to
    into onto over under above below behind beside besides between among near next around across along
    alongside through throughout during down up out off against toward towards inside outside past upon
    via within beneath underneath atop about after before like than as per and or but nor so yet if then
    because though although is are was were be been being am has have had having do does did can could
    will would shall should may might must not very really just also still almost nearly only even quite
    rather too well again away together alone now ever never always often sometimes already soon
""")
#: Function words after which a participle is a verb ("is sleeping", "has fallen", "to be seated").
AUXILIARIES = _words("is are was were be been being am has have had having do does did can could will would "
                     "shall should may might must not to")  # fmt: skip
#: Verb forms that are rarely nouns in captions (base, 3rd person, irregular past). Regular ``-ing``
#: and ``-ed`` forms need no list (see :func:`_phrase_nouns`). Left out on purpose, as mostly nouns
#: in captions: cross, drink(s), cook(s), park(s), sign(s), light(s), watch, show, ski(s), swing(s).
VERBS = _words("""
    sit sits sat stand stands stood lie lies lay lays laid lain rest rests lean leans hang hangs hung
    ride rides rode ridden hold holds held carry carries eat eats ate eaten drank drunk run runs ran walk
    walks fly flies flew flown jump jumps climb climbs swim swims swam surfs look looks watches see sees
    saw seen stare stares gaze gazes play plays wait waits sleep sleeps slept wear wears wore worn pose
    poses smile smiles prepare prepares cut cuts throw throws threw thrown catch catches caught kick
    kicks hit hits take takes took taken make makes made get gets got gotten go goes went gone come comes
    came give gives gave given put puts bring brings brought buy buys bought sell sells sold keep keeps
    kept shows shown appear appears seem seems contain contains features include includes covers
    displays float floats graze grazes feed feeds fed chase chases follow follows lead leads led drive
    drives drove driven pull pulls push pushes reach reaches try tries use uses talk talks speak speaks
    spoke read reads wash washes fill fills passes move moves arrive arrives attend attends perform
    performs visit visits enjoy enjoys celebrate celebrates dance dances grab grabs hug hugs point points
    lick licks sniff sniffs serve serves bake bakes help helps check checks fix fixes opens closes turn
    turns leave found built broken frozen fallen hidden grown drawn lit spread
""")
#: Adjectives dropped from the END of a phrase ("the sky is blue" → "sky"); before a noun they stay.
ADJECTIVES = _words("""
    red green blue yellow purple pink brown black white gray grey silver golden cyan magenta beige dark
    bright colorful colourful big small large little tall short long huge tiny wide narrow thick thin high
    low young old new empty full open busy clean dirty wet dry hot cold warm fresh ripe raw beautiful
    pretty cute nice happy sad funny sunny cloudy snowy grassy sandy rocky muddy foggy rainy modern
    vintage antique various different same single double whole close far ready male female
""")
#: Heads of caption boilerplate: a phrase ending in one is not a thing in the image ("stock photo").
BOILERPLATE = _words("photo photograph picture pic image shot snapshot view closeup close-up illustration "
                     "rendering drawing sketch vector scene")  # fmt: skip
#: Whole phrases that name a place in the picture or a time, not a thing ("the side of the road").
PLACE_WORDS = _words("front top side bottom middle edge end center centre corner left right distance "
                     "foreground way lot day night time back rest")  # fmt: skip
#: Container/quantity nouns dropped before "of" ("a group of people" → "people").
OF_NOUNS = _words(
    "group pair couple bunch lot lots number variety kind type sort piece set herd flock team "
    "crowd row line stack pile collection assortment array selection bit part half slice"
)
#: ``-ing`` words that are nouns ("a building"), and nominal ``-ing`` modifiers ("a city parking lot").
NOUN_ING = _words(
    "building ceiling clothing painting wedding evening morning pudding icing frosting "
    "topping railing awning siding landing bedding lighting stuffing dumpling earring "
    "parking dining living"
)
#: ``-ly`` words that are nouns; other ``-ly`` words (adverbs, "curly") are skipped.
NOUN_LY = _words("family butterfly dragonfly firefly fly belly jelly lily holly rally ally bully gully "
                 "assembly supply")  # fmt: skip

#: Plurals that ``singular`` does not derive by rule, and words it leaves as they are.
IRREGULAR_PLURALS = {
    "men": "man", "women": "woman", "children": "child", "feet": "foot", "teeth": "tooth", "geese": "goose",
    "mice": "mouse", "knives": "knife", "leaves": "leaf", "shelves": "shelf", "wolves": "wolf",
    "loaves": "loaf", "calves": "calf", "halves": "half", "scarves": "scarf", "wives": "wife",
    "lives": "life", "thieves": "thief", "buses": "bus", "lenses": "lens", "cacti": "cactus", "oxen": "ox",
    "menus": "menu",
    "potatoes": "potato", "tomatoes": "tomato", "heroes": "hero", "mangoes": "mango", "volcanoes": "volcano",
    "dominoes": "domino", "mosquitoes": "mosquito", "movies": "movie", "cookies": "cookie", "pies": "pie",
    "ties": "tie", "brownies": "brownie", "selfies": "selfie", "goalies": "goalie", "headaches": "headache",
    "mustaches": "mustache", "moustaches": "moustache", "avalanches": "avalanche", "niches": "niche",
}  # fmt: skip
INVARIANT_NOUNS = _words(
    "people sheep fish deer species series news glasses sunglasses eyeglasses "
    "scissors pants jeans shorts trousers clothes goggles binoculars tongs pajamas "
    "overalls headphones cattle police aircraft tennis iris pelvis chassis debris trellis"
)


def toy_caption(names: Sequence[str], rng: np.random.Generator) -> str:
    """The caption of a toy scene whose visible objects are ``names`` (may be empty).

    Args:
        names: class names of the objects to mention, e.g. ``["red circle", "blue ring"]``.
        rng: the scene's generator (picks the order and the template).
    """
    if len(names):
        listed = [f"a {n}" for n in rng.permutation(list(names))]
        phrase = listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
    else:
        phrase = f"{rng.choice(['a', 'the'])} background"
    return str(rng.choice(TEMPLATES)).format(phrase)


def _vocabulary_nouns(caption: str, vocabulary: Sequence[str]) -> list[str]:
    text = caption.lower()
    taken = np.zeros(len(text) + 1, bool)
    found: list[tuple[int, str]] = []
    for entry in sorted({v.strip().lower() for v in vocabulary if v.strip()}, key=len, reverse=True):
        for match in re.finditer(rf"(?<![\w-]){re.escape(entry)}(?![\w-])", text):
            if not taken[match.start() : match.end()].any():
                taken[match.start() : match.end()] = True
                found.append((match.start(), entry))
    out: list[str] = []
    for _, entry in sorted(found):
        if entry not in out:
            out.append(entry)
    return out


def singular(word: str) -> str:
    """The singular of a plural noun (a head noun), by :data:`IRREGULAR_PLURALS` and the English rules:
    -ies → -y, -sses/-shes/-ches/-xes/-zzes → drop "es", -men → -man, other -s → drop "s"; words ending
    in -ss, -us, -sis and :data:`INVARIANT_NOUNS` ("jeans", "sheep", "glasses") are kept."""
    if word in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[word]
    if word in INVARIANT_NOUNS or len(word) <= 3 or (not word.endswith("s") and not word.endswith("men")):
        return word
    if word.endswith("men"):
        return word[:-3] + "man" if word not in ("abdomen", "omen", "specimen", "stamen") else word
    if word.endswith(("ss", "us", "sis")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zzes")):
        return word[:-2]
    return word[:-1]


def _is_participle(word: str) -> bool:
    """``-ing`` / ``-ed`` with a vowel before the ending ("riding", "parked"; not "ring", "red", "bed",
    "seed") and not a known noun (:data:`NOUN_ING`)."""
    for end in ("ing", "ed"):
        stem = word[: -len(end)]
        if word.endswith(end) and re.search(r"[aeiouy]", stem) and not word.endswith("eed"):
            return word not in NOUN_ING
    return False


_TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*'?|[^\sa-z0-9]")


def _phrase_nouns(caption: str, max_words: int) -> list[str]:
    """The noun phrases of a caption (no vocabulary), by this rule:

    1. Lower-case; tokens are words (with inner hyphens/apostrophes) and single punctuation marks.
    2. A phrase ends at punctuation, at :data:`FUNCTION_WORDS` (and contractions such as "it's"), at
       :data:`VERBS`, and at ``-ing`` / ``-ed`` participles ("man | riding | horse") — except a
       participle that only adjectives precede in its phrase, a content word follows and no auxiliary
       (:data:`AUXILIARIES`, "are flying kites") or verb comes just before, which is a modifier ("a
       sliced tomato", "a large dining table", "a parked car"). A possessive ends its
       phrase with the owner ("a boy's bicycle" → "boy", "bicycle"). ``-ly`` adverbs are skipped.
    3. A phrase keeps its last ``max_words`` words after trailing :data:`ADJECTIVES` are dropped ("the
       sky is blue" → "sky"); it is dropped if its head (last word) is :data:`BOILERPLATE` ("stock
       photo"), if it is one of :data:`PLACE_WORDS` ("the side of"), or if its head is one of
       :data:`OF_NOUNS` and "of" follows ("a group of people" → "people").
    4. The head is made singular (:func:`singular`: "two dogs" → "dog"), so a caption's "dog" and
       "dogs" are one noun; the modifiers stay as written.

    Limits (no tagger): a verb outside :data:`VERBS` that is not a participle joins the phrase
    before it ("a bear roams" → "bear roam"), and a noun in :data:`VERBS` ends one ("a fruit stand").
    """
    text = caption.lower().replace("\u2019", "'").replace("`", "'")
    tokens = _TOKEN.findall(text)
    out: list[str] = []
    phrase: list[str] = []

    def close(following: str | None) -> None:
        words = list(phrase)
        phrase.clear()
        while words and words[-1] in ADJECTIVES:
            words.pop()
        if not words or words[-1] in BOILERPLATE or " ".join(words) in PLACE_WORDS:
            return
        if following == "of" and words[-1] in OF_NOUNS:
            return
        words = words[-max_words:]
        noun = " ".join([*words[:-1], singular(words[-1])])
        if noun not in out:
            out.append(noun)

    for i, token in enumerate(tokens):
        word = token.strip("'-")
        nxt = tokens[i + 1].strip("'-") if i + 1 < len(tokens) else None
        prev = tokens[i - 1] if i else ""
        possessive = word.endswith("'s")
        if possessive:
            word = word[:-2]
        if not word or (not word[0].isalpha() and not word[0].isdigit()):  # punctuation
            close(None)
            continue
        if "'" in word or word in FUNCTION_WORDS or word in VERBS or word.isdigit():
            close(word)  # contractions ("it's", "don't"), function words, verbs, numbers
            continue
        if word.endswith("ly") and word not in NOUN_LY:
            continue
        if _is_participle(word):
            after_verb = prev in AUXILIARIES or prev in VERBS or "'" in prev.strip("'")
            modifier = not after_verb and all(w in ADJECTIVES or _is_participle(w) for w in phrase)
            content = bool(nxt) and nxt[0].isalpha() and nxt not in FUNCTION_WORDS and nxt not in VERBS
            if not (modifier and content):
                close(word)
                continue
        phrase.append(word)
        if possessive:
            close(None)
    close(None)
    return out


def extract_nouns(
    caption: str, vocabulary: Sequence[str] | None = None, max_words: int = 3, max_nouns: int | None = None
) -> list[str]:
    """The nouns / noun phrases of a caption by the rule of the module docstring.

    Args:
        caption: the caption.
        vocabulary: phrases to look for; None uses the noun-phrase rule (:func:`_phrase_nouns`).
        max_words: longest phrase kept by the noun-phrase rule (its last words).
        max_nouns: keep at most this many (the first ones); None keeps all.

    >>> extract_nouns("A man riding a horse on the beach, two dogs and a red kite in the sky.")
    ['man', 'horse', 'beach', 'dog', 'red kite', 'sky']
    """
    if not isinstance(caption, str):
        raise TypeError(f"A caption must be a string, got {type(caption).__name__}: {caption!r}.")
    nouns = (
        _vocabulary_nouns(caption, vocabulary)
        if vocabulary is not None
        else _phrase_nouns(caption, max_words)
    )
    return nouns[:max_nouns] if max_nouns is not None else nouns
