"""The ASGI app: the webhook, admin and verification routes, inbound auth, the hardened listener."""
