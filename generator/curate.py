"""Curate stage (being written): see issue "Curation"."""
import dataclasses


@dataclasses.dataclass
class CurateSettings:
    min_words: int = 8
    max_words: int = 80
