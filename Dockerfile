# gridedge container image: small, non-root, outbox on a volume, health checked over HTTP.
#
#   docker build -t gridedge .
#   docker run -d --name gridedge -p 127.0.0.1:9108:9108 -v gridedge-data:/var/lib/gridedge gridedge
#
# Every dependency installs from a binary wheel (amd64 and arm64 alike), so neither stage needs a
# compiler and the image builds the same on a Raspberry Pi as on a laptop.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md config.example.toml ./
COPY drivers/ drivers/
COPY gridedge/ gridedge/
# The project is pure Python: build its wheel, then install it into a virtual environment with
# binary wheels only, so a dependency without one for this platform fails the build loudly.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist . \
    && python -m venv /opt/gridedge \
    && /opt/gridedge/bin/pip install --no-cache-dir --only-binary=:all: /dist/gridedge-*.whl

FROM ${PYTHON_IMAGE} AS runtime
# A fixed numeric id, so volume ownership and runAsNonRoot checks do not depend on names.
RUN groupadd --system --gid 10001 gridedge \
    && useradd --system --uid 10001 --gid gridedge --home-dir /var/lib/gridedge \
        --shell /usr/sbin/nologin gridedge \
    && mkdir -p /var/lib/gridedge /etc/gridedge \
    && chown gridedge:gridedge /var/lib/gridedge
COPY --from=build /opt/gridedge /opt/gridedge
COPY docker/gridedge.toml /etc/gridedge/gridedge.toml
ENV PATH=/opt/gridedge/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /var/lib/gridedge
# The outbox lives here: keep it on a volume so readings survive a new container.
VOLUME ["/var/lib/gridedge"]
EXPOSE 9108
# 200 while the gateway does its job, 503 when it does not (README, "Health"); urlopen raises on
# 503, so the check fails without curl in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9108/health', timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["gridedge"]
CMD ["run", "-c", "/etc/gridedge/gridedge.toml"]
