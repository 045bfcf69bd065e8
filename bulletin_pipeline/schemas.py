"""Pydantic models of WordPress REST objects, one per collection, plus a generic fallback.

They check what the lake relies on (types of the documented fields) and nothing more: unknown
fields are allowed, and the payload written to the lake is always the record as served, never the
model's dump. `id` is required everywhere; `modified` only where the collection is incremental.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Optional, Type, Union

from pydantic import BaseModel, ConfigDict, TypeAdapter

JsonObject = Dict[str, Any]


class _WordPressModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class Rendered(_WordPressModel):
    rendered: str


class RenderedProtected(Rendered):
    protected: bool = False


class WordPressObject(_WordPressModel):
    """Any REST object: categories, tags, users, custom post types without a model of their own."""

    id: int


class WordPressPost(WordPressObject):
    """Fields every post type shares (pages, media, posts, custom post types)."""

    date: Optional[dt.datetime] = None
    date_gmt: Optional[dt.datetime] = None
    guid: Optional[Rendered] = None
    modified: dt.datetime
    modified_gmt: Optional[dt.datetime] = None
    slug: str
    status: str
    type: str
    link: str
    title: Optional[Rendered] = None
    author: Optional[int] = None
    comment_status: Optional[str] = None
    ping_status: Optional[str] = None
    template: Optional[str] = None
    meta: Union[List[Any], Dict[str, Any], None] = None


class Page(WordPressPost):
    content: RenderedProtected
    excerpt: RenderedProtected
    featured_media: int = 0
    parent: int = 0
    menu_order: int = 0


class Media(WordPressPost):
    description: Optional[Rendered] = None
    caption: Optional[Rendered] = None
    alt_text: str = ""
    media_type: str
    mime_type: str
    media_details: Union[Dict[str, Any], List[Any], None] = None
    post: Optional[int] = None
    source_url: str


class Post(WordPressPost):
    content: RenderedProtected
    excerpt: RenderedProtected
    featured_media: int = 0
    sticky: bool = False
    format: str = "standard"
    categories: List[int] = []
    tags: List[int] = []


MODELS: Dict[str, Type[WordPressObject]] = {"pages": Page, "media": Media, "posts": Post}


def model_for(collection: str, incremental: bool = True) -> Type[WordPressObject]:
    """The collection's own model, else the generic post (incremental) or object model."""
    return MODELS.get(collection, WordPressPost if incremental else WordPressObject)


def page_validator(model: Type[WordPressObject]) -> TypeAdapter[List[Any]]:
    """Validates a whole API page in one call; errors carry the record's index as `loc[0]`."""
    return TypeAdapter(List[model])  # type: ignore[valid-type]
