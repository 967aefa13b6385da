"""alertmanager-wecom: deliver Alertmanager and Grafana alerts to WeCom (企业微信) reliably."""

__version__ = "0.1.0"
