"""WeCom's callback crypto (接收消息服务器, doc 90968): the signature, and AES-256-CBC of the messages.

signature = sha1 hex of the sorted, concatenated [token, timestamp, nonce, encrypted];
key = base64decode(EncodingAESKey + "="), IV = key[:16]; PKCS#7 to 32-byte blocks (WeCom's, not AES's 16);
plaintext = 16 random bytes + 4-byte big-endian length + message + receive id (the corp id).
Checked against the published vectors (tests/samples/wecom-callback-vectors.json) in tests/test_callback.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import struct

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_BLOCK_BITS = 32 * 8


class CallbackError(Exception):
    """A callback that must be refused: forged, for another corp, or not WeCom's format. The message
    says why, without any secret."""


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte key of a 43-character EncodingAESKey; ValueError when it is not one."""
    if len(encoding_aes_key) != 43:
        raise ValueError(
            "an EncodingAESKey has 43 characters (WeCom's app settings → 接收消息 → 设置API接收)"
        )
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        raise ValueError("an EncodingAESKey is made of letters and digits (base64)") from None
    if len(key) != 32:
        raise ValueError("an EncodingAESKey decodes to 32 bytes")
    return key


class CallbackCrypto:
    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self._token = token
        self._key = aes_key(encoding_aes_key)
        self.receive_id = receive_id

    def signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        return hashlib.sha1("".join(sorted([self._token, timestamp, nonce, encrypted])).encode()).hexdigest()  # noqa: S324 - WeCom's scheme

    def check_signature(self, signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        expected = self.signature(timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
            raise CallbackError("signature does not match (wrong token, or not from WeCom)")

    def decrypt(self, encrypted: str) -> str:
        """The message inside `encrypted`; CallbackError unless it is well-formed and for our receive id."""
        try:
            data = base64.b64decode(encrypted, validate=True)
        except binascii.Error:
            raise CallbackError("encrypted part is not base64") from None
        if not data or len(data) % 16:
            raise CallbackError("encrypted part is not whole AES blocks")
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).decryptor()
        padded = decryptor.update(data) + decryptor.finalize()
        unpadder = padding.PKCS7(_BLOCK_BITS).unpadder()
        try:
            plain = unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise CallbackError("bad padding (wrong EncodingAESKey?)") from None
        if len(plain) < 20:
            raise CallbackError("decrypted message too short")
        (length,) = struct.unpack(">I", plain[16:20])
        message, receive_id = plain[20 : 20 + length], plain[20 + length :]
        if len(message) != length:
            raise CallbackError("decrypted message shorter than its length")
        if not hmac.compare_digest(receive_id, self.receive_id.encode()):
            raise CallbackError("message is for another corp (receive id does not match corp_id)")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            raise CallbackError("decrypted message is not UTF-8") from None

    def url_check(self, now: int) -> tuple[str, dict[str, str]]:
        """What WeCom sends when a callback URL is saved: a random plaintext, and the query carrying it
        encrypted and signed (``msg_signature, timestamp, nonce, echostr``); the URL must answer the
        plaintext. Used by the simulator (as WeCom) and by `check`."""
        plaintext = str(secrets.randbelow(10**18))
        echostr = self.encrypt(plaintext)
        timestamp, nonce = str(now), str(secrets.randbelow(10**9))
        signature = self.signature(timestamp, nonce, echostr)
        return plaintext, {
            "msg_signature": signature,
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": echostr,
        }

    def encrypt(self, message: str, random_prefix: bytes | None = None) -> str:
        """`message` as WeCom encrypts it (for passive replies, and for the simulator and tests)."""
        body = message.encode("utf-8")
        prefix = random_prefix if random_prefix is not None else os.urandom(16)
        plain = prefix + struct.pack(">I", len(body)) + body + self.receive_id.encode()
        padder = padding.PKCS7(_BLOCK_BITS).padder()
        padded = padder.update(plain) + padder.finalize()
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).encryptor()
        return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()
