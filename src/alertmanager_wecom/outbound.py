"""HTTP clients for the APIs the service calls besides WeCom (Alertmanager's silences, Prometheus's
queries): their auth and TLS settings applied in one place, no redirects followed (a redirect would carry
the credentials elsewhere)."""

from __future__ import annotations

import httpx

from alertmanager_wecom.config.apis import AlertmanagerAPI


def api_client(api: AlertmanagerAPI) -> httpx.AsyncClient:
    headers = {}
    auth: httpx.BasicAuth | None = None
    if api.bearer_token is not None:
        headers["Authorization"] = f"Bearer {api.bearer_token.reveal()}"
    if api.basic_auth is not None:
        auth = httpx.BasicAuth(api.basic_auth.username, api.basic_auth.password.reveal())
    verify: bool | str = api.ca_file or not api.insecure_skip_verify
    return httpx.AsyncClient(
        headers=headers, auth=auth, verify=verify, timeout=api.timeout, follow_redirects=False
    )
