"""Media as WeCom keeps it: ``media/upload`` stores a file for 3 days under a media_id that image
messages name; images are JPG or PNG, over 5 bytes and at most 2 MB; a robot's image message carries the
picture itself (base64) and the md5 of its bytes, which must match. The inbox shows the pictures."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from typing import Any

from alertmanager_wecom.simulator.common import Reply, StateBase, err

IMAGE_MAX = 2 * 1024 * 1024
MEDIA_LIFETIME = 3 * 86400.0
_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def image_type(data: bytes) -> str | None:
    return next((content_type for magic, content_type in _MAGIC.items() if data.startswith(magic)), None)


class Media(StateBase):
    media: dict[str, tuple[bytes, str, float]]  # media_id → (bytes, content type, uploaded at)

    def image_problem(self, data: bytes) -> Reply | None:
        if len(data) <= 5 or image_type(data) is None:
            return err(40005, "invalid file type (images are JPG or PNG)")
        if len(data) > IMAGE_MAX:
            return err(40009, "invalid image size (at most 2 MB)")
        return None

    def keep_media(self, data: bytes, content_type: str) -> str:
        media_id = secrets.token_urlsafe(40)
        self.media[media_id] = (data, content_type, self.clock())
        return media_id

    def media_bytes(self, media_id: str) -> tuple[bytes, str] | None:
        with self._lock:
            found = self.media.get(media_id)
            return (found[0], found[1]) if found else None

    def image_message(self, part: Any) -> tuple[str, str] | Reply:
        """An app's image message: (media_id, what the inbox shows), or WeCom's error."""
        media_id = part.get("media_id") if isinstance(part, dict) else None
        found = self.media.get(media_id) if isinstance(media_id, str) else None
        if found is None or self.clock() - found[2] > MEDIA_LIFETIME or not found[1].startswith("image/"):
            return err(40007, "invalid media_id")
        return str(media_id), f"[image {len(found[0])} bytes]"

    def robot_image(self, part: dict[str, Any]) -> tuple[str, str] | Reply:
        """A robot's image message (base64 + md5): (media id kept for the inbox, what it shows)."""
        encoded, md5 = part.get("base64"), part.get("md5")
        if not isinstance(encoded, str) or not isinstance(md5, str):
            return err(40058, "image.base64 and image.md5 are required")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return err(40058, "image.base64 is not base64")
        if hashlib.md5(data).hexdigest() != md5.lower():  # noqa: S324 - WeCom's checksum
            return err(40058, "image.md5 does not match the image")
        problem = self.image_problem(data)
        if problem is not None:
            return problem
        content_type = image_type(data) or "image/png"
        return self.keep_media(data, content_type), f"[image {len(data)} bytes]"
