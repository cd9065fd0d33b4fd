"""Render stage (being written): see issue "The gallery readers browse"."""
import dataclasses


@dataclasses.dataclass
class RenderSettings:
    site_title: str = "Netflix-ish: descriptions nobody wrote"
    page_size: int = 48
