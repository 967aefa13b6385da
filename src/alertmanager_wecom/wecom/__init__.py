"""The WeCom boundary: the HTTP client, the token cache, the errcode table, the setup checks."""
