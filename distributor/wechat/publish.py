"""An issue made ready for WeChat: its images on WeChat's servers, a cover, draft articles.

WeChat shows only images it hosts (``media/uploadimg`` URLs) and wants a permanent material as
each article's cover. The rewriting of ``<img src>`` is pure and tested on its own; the uploads
are the one side effect, each image once per message however often it appears.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from distributor.channels.wechat.client import WechatClient
from distributor.channels.wechat.protocol import DraftArticle
from distributor.errors import RenderError
from distributor.render.wechat import WechatArticle

# <img … src="…" …>: the attribute's value, in double or single quotes.
_IMG_SRC = re.compile(r"""(<img\b[^>]*?\bsrc\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_DATA_URI = re.compile(r"data:(image/(?:jpeg|jpg|png));base64,(.*)", re.IGNORECASE | re.DOTALL)
WECHAT_IMAGE_HOST = re.compile(r"^https?://mmbiz\.qpic\.cn/", re.IGNORECASE)

Image = tuple[str, bytes, str]  # file name, bytes, content type
DEFAULT_COVER = Path(__file__).resolve().parent.parent / "samples" / "cover.jpg"


def default_cover() -> bytes:
    """The cover every article gets unless the issue brings one: a plain JPEG under 64 KB (so
    it is also a valid ``thumb``), shipped with the package."""
    return DEFAULT_COVER.read_bytes()


def image_sources(html: str) -> list[str]:
    """The ``src`` of every ``<img>``, in order, each once."""
    return list(dict.fromkeys(match[3] for match in _IMG_SRC.finditer(html)))


def rewrite_images(html: str, urls: dict[str, str]) -> str:
    """``html`` with each ``<img src>`` replaced by its WeChat URL from ``urls``."""
    return _IMG_SRC.sub(
        lambda match: f"{match[1]}{match[2]}{urls.get(match[3], match[3])}{match[2]}", html
    )


def read_image(src: str) -> Image:
    """The bytes of an image the article names. Images travel inside the issue as ``data:``
    URIs (JPEG or PNG); a link to another site cannot be fetched from here and WeChat would
    drop it, so it is refused with the address."""
    found = _DATA_URI.fullmatch(unquote(src.strip()))
    if found is None:
        raise RenderError(
            f"the image {src[:80]!r} is not inside the issue (a data: URI of a JPEG or PNG): "
            "WeChat shows only images uploaded to it",
            code="wechat.image_outside",
            src=src[:80],
        )
    content_type = found[1].lower().replace("image/jpg", "image/jpeg")
    try:
        data = base64.b64decode(found[2], validate=False)
    except binascii.Error:
        raise RenderError(
            f"the image {src[:80]!r} is not valid base64", code="wechat.image_base64", src=src[:80]
        ) from None
    extension = "png" if content_type == "image/png" else "jpg"
    return f"image.{extension}", data, content_type


def upload_images(
    articles: Sequence[WechatArticle], upload: Callable[[Image], str]
) -> dict[str, str]:
    """Each distinct image of ``articles`` uploaded once: its source → its WeChat URL."""
    urls: dict[str, str] = {}
    for article in articles:
        for src in image_sources(article.content_html):
            if src not in urls and not WECHAT_IMAGE_HOST.match(src):
                urls[src] = upload(read_image(src))
    return urls


def prepare_articles(
    client: WechatClient, articles: Sequence[WechatArticle], cover: bytes | None = None
) -> list[DraftArticle]:
    """Upload the images and the cover; the draft articles that name them."""
    urls = upload_images(articles, lambda image: client.upload_image(image[1], image[0], image[2]))
    thumb = client.add_material(cover or default_cover(), "cover.jpg", "image/jpeg").media_id
    return [
        DraftArticle(
            title=article.title,
            content=rewrite_images(article.content_html, urls),
            thumb_media_id=thumb,
            author=article.author,
            digest=article.digest,
            content_source_url=article.content_source_url,
        )
        for article in articles
    ]


def articles_to_json(articles: Sequence[DraftArticle]) -> list[dict[str, Any]]:
    return [asdict(article) for article in articles]


def articles_from_json(stored: Sequence[dict[str, Any]]) -> list[DraftArticle]:
    return [DraftArticle(**fields) for fields in stored]
