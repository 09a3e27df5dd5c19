"""Implicit stereotypes as a table a reader can extend: (pattern, axis, severity, reason).

The generalisation rules in bias.py need "<group> are <trait>". These rows catch what that
grammar misses: insults framed as comparison ("you throw like a girl"), group membership given as
the cause of what one person does ("he's Asian, so naturally ..."), essentialist wiring ("women
just aren't wired for ..."), what a group will accept or do, backhanded compliments.

In a pattern, `{group}` stands for any group term of bias_lexicon (its axis is looked up from the
term matched) and `{person}` for a pronoun or "you". An axis of "" means "the axis of the group
matched". The severity is the row's base; a negative trait from the lexicon in the same clause
raises it to high, and the context rules of bias.py (counter-speech, reported speech, quotation,
question) lower it as they lower any finding.
"""
from __future__ import annotations

from typing import NamedTuple

from shared.contract.events import Severity


class ImplicitRule(NamedTuple):
    pattern: str  # a regular expression, case-insensitive, with {group} / {person} placeholders
    axis: str  # "" = the axis of the group term matched
    severity: Severity
    reason: str  # says which claim the row stands for, for the explanation


_PERSON = r"(?:you|he|she|they|i|we|him|her|them)"
_IS = r"(?:['’]s|['’]re|\s+is|\s+are|\s+was|\s+were)"

IMPLICIT_RULES: list[ImplicitRule] = [
    ImplicitRule(r"\b(?:throws?|throwing|runs?|running|fights?|fighting|hits?|hitting|drives?|driving"
                 r"|cr(?:y|ies|ying)|scream(?:s|ing)?|whin(?:e|es|ing)|kicks?|kicking|punch(?:es|ing)?"
                 r"|play(?:s|ing)?|talks?|talking|acts?|acting|screams?|gossip(?:s|ing)?)"
                 r"\s+like\s+(?:a\s+|an\s+|some\s+)?(?:little\s+)?{group}\b",
                 "", "medium", "an insult framed as a comparison with the group ('... like a <group>')"),
    ImplicitRule(r"\btypical\s+{group}\s*[,:;!-]+\s*(?:always|never|just|so|all|only|again)\b",
                 "", "medium", "'typical <group>, always ...' ties a behaviour to the whole group"),
    ImplicitRule(r"\b{group}\s+(?:just\s+|simply\s+|really\s+|naturally\s+|biologically\s+)?"
                 r"(?:aren['’]t|are\s+not|isn['’]t|is\s+not|weren['’]t)\s+(?:\w+\s+)?"
                 r"(?:wired|built|made|cut\s+out|designed|meant|equipped)\s+(?:for|to)\b",
                 "", "high", "it says the group is not made for something (an essentialist deficit claim)"),
    ImplicitRule(r"\b{group}\s+(?:are|is)\s+(?:just\s+|simply\s+|naturally\s+)?(?:wired|built|born|hardwired"
                 r"|programmed)\s+(?:for|to)\b",
                 "", "medium", "it says the group is born or wired for something (an essentialist claim)"),
    ImplicitRule(rf"\b{_PERSON}{_IS}\s+(?:an?\s+)?{{group}}\s*[,;]?\s*(?:so|which\s+is\s+why|that['’]s\s+why|"
                 r"therefore|hence)\s+(?:of\s+course|naturally|obviously|clearly|surely|probably"
                 r"|must|no\s+wonder)\b",
                 "", "medium", "it gives one person's group as the reason for what they are or do"),
    ImplicitRule(rf"\b(?:because|since|as)\s+{_PERSON}{_IS}\s+(?:an?\s+)?{{group}}\b"
                 r"(?!\s+(?:and|who|from|in|at|with)\b)",
                 "", "medium", "it explains something by the person's group ('because she is a <group>')"),
    ImplicitRule(rf"\b(?:of\s+course|naturally|obviously|no\s+wonder)\s+{_PERSON}{_IS}\s+(?:\w+\s+)?"
                 r"(?:good|bad|great|terrible|better|worse)\s+at\b.{0,40}\b{group}\b",
                 "", "medium", "it takes a skill as given because of the person's group"),
    ImplicitRule(r"\b{group}\s+(?:will|would|always|never|only|happily|gladly)\s+(?:\w+\s+)?"
                 r"(?:accept|take|do|work\s+for|put\s+up\s+with|settle\s+for|tolerate|sell|believe|say)"
                 r"\s+(?:anything|everything|whatever|any\s+\w+|for\s+(?:less|nothing|cheap|peanuts))\b",
                 "", "high", "it says what the whole group will accept or do"),
    ImplicitRule(r"\b(?:good|smart|pretty|strong|clever|fast|brave|articulate|tough|funny)\s+for\s+an?\s+{group}\b",
                 "", "medium", "a backhanded compliment: good 'for a <group>' implies the group is not"),
    ImplicitRule(r"\b(?:like|as)\s+(?:all|most|every|any)\s+(?:other\s+)?{group}\b",
                 "", "medium", "'like all <group>' extends one person's trait to the group"),
    ImplicitRule(r"\bwhat\s+(?:do|did|would|could)\s+you\s+expect\s+from\s+(?:an?\s+|the\s+)?{group}\b",
                 "", "high", "'what do you expect from a <group>' assumes the worst of the group"),
    ImplicitRule(r"\b(?:real|true)\s+(?:men|man|women|woman)\s+(?:don['’]t|do\s+not|never|always|should|must)\b",
                 "gender", "medium", "it prescribes how a 'real' man or woman behaves (a gender norm)"),
    ImplicitRule(r"\b(?:man\s+up|be\s+a\s+man|boys\s+don['’]t\s+cry|girls\s+don['’]t\s+(?:\w+))\b",
                 "gender", "medium", "a gender norm told as an order or a rule"),
    ImplicitRule(r"\b{group}\s+(?:belong|belongs)\s+(?:in|at)\s+(?:the\s+)?(?:kitchen|home|house|fields?|kitchens)\b",
                 "", "high", "it assigns the group a place it 'belongs'"),
    ImplicitRule(r"\b{group}\s+(?:can|could)\s+only\s+(?:be|work|do|become)\b",
                 "", "medium", "it limits what the group can be or do"),
    ImplicitRule(r"\b(?:as|being)\s+an?\s+{group}\s*,\s*{person}\s+(?:must|probably|surely|obviously"
                 r"|naturally|of\s+course)\b",
                 "", "medium", "it infers something about a person from their group"),
]
