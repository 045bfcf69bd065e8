"""Pydantic schemas of WordPress REST objects (documented fields' types, unknown fields allowed; TypedDicts:
nothing is read back). To add a collection, subclass `WordPressPost` and register it in `MODELS`."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, Dict, List, Optional, Type, Union

from pydantic import TypeAdapter
from typing_extensions import NotRequired, TypedDict


class Rendered(TypedDict):
    rendered: str


class RenderedProtected(Rendered):
    protected: NotRequired[bool]


class WordPressObject(TypedDict):
    """Any REST object: categories, tags, users, custom post types without a schema of their own."""

    id: int


class WordPressPost(WordPressObject):
    """Fields every post type shares (pages, media, posts, custom post types)."""

    date: NotRequired[Optional[dt.datetime]]
    date_gmt: NotRequired[Optional[dt.datetime]]
    guid: NotRequired[Optional[Rendered]]
    modified: dt.datetime
    modified_gmt: NotRequired[Optional[dt.datetime]]
    slug: str
    status: str
    type: str
    link: str
    title: NotRequired[Optional[Rendered]]
    author: NotRequired[Optional[int]]
    comment_status: NotRequired[Optional[str]]
    ping_status: NotRequired[Optional[str]]
    template: NotRequired[Optional[str]]
    meta: NotRequired[Union[List[Any], Dict[str, Any], None]]


class Page(WordPressPost):
    content: RenderedProtected
    excerpt: RenderedProtected
    featured_media: NotRequired[int]
    parent: NotRequired[int]
    menu_order: NotRequired[int]


class Media(WordPressPost):
    description: NotRequired[Optional[Rendered]]
    caption: NotRequired[Optional[Rendered]]
    alt_text: NotRequired[str]
    media_type: str
    mime_type: str
    media_details: NotRequired[Union[Dict[str, Any], List[Any], None]]
    post: NotRequired[Optional[int]]
    source_url: str


class Post(WordPressPost):
    content: RenderedProtected
    excerpt: RenderedProtected
    featured_media: NotRequired[int]
    sticky: NotRequired[bool]
    format: NotRequired[str]
    categories: NotRequired[List[int]]
    tags: NotRequired[List[int]]


MODELS: Dict[str, Type[WordPressObject]] = {"pages": Page, "media": Media, "posts": Post}


def model_for(collection: str, incremental: bool = True) -> Type[WordPressObject]:
    """The collection's own schema, else the generic post (incremental) or object schema."""
    return MODELS.get(collection, WordPressPost if incremental else WordPressObject)


@functools.cache
def page_validator(collection: str, incremental: bool = True) -> TypeAdapter[List[Any]]:
    """Validates a whole API page in one call; errors carry the record's index as `loc[0]`."""
    return TypeAdapter(List[model_for(collection, incremental)])  # type: ignore[arg-type, misc]
