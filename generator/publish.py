"""Publish stage (being written): see issue "Publishing to S3"."""
import dataclasses


@dataclasses.dataclass
class PublishSettings:
    target: str = ""
    endpoint_url: str = ""
    dry_run: bool = False
