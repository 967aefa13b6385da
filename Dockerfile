# alertmanager-wecom: a small image that runs as a non-root user.
#   docker build -t alertmanager-wecom .
#   docker run -p 9095:9095 -v $PWD/config.yaml:/etc/alertmanager-wecom/config.yaml:ro \
#     -v wecom-data:/var/lib/alertmanager-wecom -e WECOM_OPS_SECRET alertmanager-wecom
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# [charts]: matplotlib, for `chart: true` targets.
RUN pip install --no-cache-dir --prefix=/install '.[charts]'

FROM python:3.11-slim
COPY --from=build /install /usr/local
# Chinese text in charts (without a CJK font their labels stay ASCII).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-noto-cjk && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /var/lib/alertmanager-wecom --create-home wecom
USER 10001
WORKDIR /var/lib/alertmanager-wecom
VOLUME ["/var/lib/alertmanager-wecom"]
EXPOSE 9095
HEALTHCHECK --interval=30s --timeout=3s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9095/healthz', timeout=2)"
ENTRYPOINT ["alertmanager-wecom", "--log-format", "json"]
CMD ["serve", "--config", "/etc/alertmanager-wecom/config.yaml", "--listen", "0.0.0.0:9095"]
