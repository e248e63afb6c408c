"""The built-in lexicon of the number-agreement suite: the words Lakretz et al. (2019)'s
templates are filled with, in singular and plural pairs where number matters.

It is a module of its own because it is data, not logic: `agreement_suites.py` keeps only the
pairs whose two forms are both in a model's vocabulary, and the agreement page lists the rest.
The words are common English, most of them frequent in WikiText-2, and they include the nouns
and names of the built-in corpus (`synthetic_grammar.py`), so that the demo model is tested on
words it knows.
"""

from __future__ import annotations

# (singular, plural) noun pairs; irregular ones apart, since a model may learn them worse
REGULAR_NOUNS: tuple[tuple[str, str], ...] = (
    ("boy", "boys"), ("girl", "girls"), ("author", "authors"), ("player", "players"),
    ("student", "students"), ("teacher", "teachers"), ("farmer", "farmers"),
    ("officer", "officers"), ("soldier", "soldiers"), ("king", "kings"), ("army", "armies"),
    ("city", "cities"), ("company", "companies"), ("country", "countries"), ("team", "teams"),
    ("ship", "ships"), ("band", "bands"), ("church", "churches"), ("building", "buildings"),
    ("government", "governments"), ("club", "clubs"), ("school", "schools"),
    ("village", "villages"), ("town", "towns"), ("song", "songs"), ("album", "albums"),
    ("film", "films"), ("game", "games"), ("party", "parties"), ("station", "stations"),
    ("river", "rivers"), ("road", "roads"), ("bridge", "bridges"), ("castle", "castles"),
    ("tower", "towers"), ("battle", "battles"), ("court", "courts"), ("council", "councils"),
    ("temple", "temples"), ("museum", "museums"), ("novel", "novels"), ("island", "islands"),
    ("league", "leagues"), ("regiment", "regiments"), ("squadron", "squadrons"),
    ("storm", "storms"), ("system", "systems"), ("theatre", "theatres"), ("garden", "gardens"),
    ("harbour", "harbours"), ("railway", "railways"), ("festival", "festivals"),
    ("college", "colleges"), ("character", "characters"), ("campaign", "campaigns"),
)
IRREGULAR_NOUNS: tuple[tuple[str, str], ...] = (
    ("man", "men"), ("woman", "women"), ("child", "children"), ("person", "people"),
    ("foot", "feet"), ("mouse", "mice"), ("tooth", "teeth"), ("wife", "wives"),
    ("leaf", "leaves"), ("knife", "knives"),
)
# nouns of places, the objects of a prepositional attractor ("near the houses")
LOCATION_NOUNS: tuple[tuple[str, str], ...] = (
    ("house", "houses"), ("table", "tables"), ("car", "cars"), ("office", "offices"),
    ("window", "windows"), ("door", "doors"), ("tree", "trees"), ("farm", "farms"),
    ("street", "streets"), ("wall", "walls"), ("hill", "hills"), ("lake", "lakes"),
)
# (singular, plural) verb forms: the forms of be and have, then present-tense verbs
AUXILIARY_VERBS: tuple[tuple[str, str], ...] = (("is", "are"), ("was", "were"), ("has", "have"))
PRESENT_VERBS: tuple[tuple[str, str], ...] = (
    ("remains", "remain"), ("plays", "play"), ("includes", "include"), ("becomes", "become"),
    ("says", "say"), ("appears", "appear"), ("seems", "seem"), ("contains", "contain"),
    ("makes", "make"), ("takes", "take"), ("gives", "give"), ("leads", "lead"),
    ("serves", "serve"), ("uses", "use"), ("holds", "hold"), ("follows", "follow"),
    ("stands", "stand"), ("lives", "live"), ("knows", "know"), ("writes", "write"),
    ("runs", "run"), ("greets", "greet"), ("likes", "like"), ("needs", "need"),
)
ADVERBS: tuple[str, ...] = ("also", "still", "now", "often", "never", "always", "probably",
                            "certainly", "clearly", "usually", "already", "really")
# names, singular attractors; the last ones are the built-in corpus's surnames
NAMES: tuple[str, ...] = ("John", "Mary", "George", "James", "William", "Robert", "Charles",
                          "Henry", "Thomas", "David", "Elizabeth", "Anne", "Carver", "Fairfax",
                          "Hastings", "Kendall", "Marlowe", "Norwood", "Prescott", "Sterling")
PREPOSITIONS: tuple[str, ...] = ("near", "behind", "beside", "with", "from", "of", "in", "on",
                                 "at", "by", "under")
DETERMINERS: tuple[str, ...] = ("The", "the")  # the first one the vocabulary has starts a prefix
