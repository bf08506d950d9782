# RefStore gateway and operator, one image.
#
#   podman build -t refstore .            (or docker build)
#   podman run -p 8000:8000 refstore      -> refstore serve --host 0.0.0.0 --port 8000
#   podman run refstore operator          -> the BucketMapping operator
#
# Runs as UID/GID 10001 on a read-only root filesystem: the only path written is /tmp,
# where the embedded local backend keeps its data unless REFSTORE_LOCAL__ROOT says
# otherwise (set REFSTORE_MINIO__* or a REFSTORE_CONFIG file for MinIO).
#
# BASE_IMAGE is any Debian-like image with python3 and its venv module (>= 3.10) in
# which a venv made at /opt/venv runs unchanged in the final stage (both stages use it).

ARG BASE_IMAGE=python:3.12-slim-bookworm

FROM ${BASE_IMAGE} AS builder

# pip's index and certificates come from the build's environment (the predefined proxy
# arguments, or a pip.conf mounted for the build, as tests/podman.py does); nothing of
# them reaches the final stage.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# pip lives in a venv of its own; the runtime venv is made without pip and filled
# from outside (pip --python), so it holds the application and its dependencies only.
RUN python3 -m venv /opt/pip \
    && python3 -m venv --without-pip /opt/venv

# The dependencies first, from pyproject.toml and the version file alone (an empty package
# stands in for the code), so that a build after a change of the code reuses this layer.
COPY pyproject.toml /deps/
COPY refstore/_version.py /deps/refstore/
RUN --mount=type=cache,target=/root/.cache/pip \
    touch /deps/README.md /deps/refstore/__init__.py \
    && /opt/pip/bin/pip --python /opt/venv/bin/python install "/deps[web,operator]"

COPY pyproject.toml README.md /src/
COPY refstore /src/refstore
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/pip/bin/pip wheel --no-deps --wheel-dir /wheels /src \
    && /opt/pip/bin/pip --python /opt/venv/bin/python install --no-deps --force-reinstall \
        "$(find /wheels -name 'refstore-*.whl')" \
    && /opt/pip/bin/pip --python /opt/venv/bin/python check \
    && /opt/venv/bin/python -c "import refstore.web.app" \
    && /opt/venv/bin/refstore --help > /dev/null


FROM ${BASE_IMAGE}

ARG VERSION=dev
ARG SOURCE=
LABEL org.opencontainers.image.title="refstore" \
      org.opencontainers.image.description="RefStore object-storage gateway (refstore serve) and BucketMapping operator (refstore operator)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT"

# No package tools at run time: drop the base image's own pip/setuptools/wheel (the
# official python images have them; a Debian python3 has only ensurepip's wheels).
RUN rm -rf /usr/local/bin/pip* /usr/local/bin/wheel \
        /usr/local/lib/python3*/site-packages/pip /usr/local/lib/python3*/site-packages/pip-* \
        /usr/local/lib/python3*/site-packages/setuptools* \
        /usr/local/lib/python3*/site-packages/_distutils_hack \
        /usr/local/lib/python3*/site-packages/distutils-precedence.pth \
        /usr/local/lib/python3*/site-packages/wheel* \
        /usr/local/lib/python3*/ensurepip /usr/lib/python3*/ensurepip /usr/share/python-wheels \
    && groupadd --gid 10001 refstore \
    && useradd --no-log-init --uid 10001 --gid 10001 \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin refstore \
    && mkdir -p /var/lib/refstore \
    && ln -s /tmp/refstore-data /var/lib/refstore/refstore-data

COPY --from=builder /opt/venv /opt/venv

# The local backend's default root is ./refstore-data: from this directory that is the
# link to /tmp/refstore-data (made on first use), so the default run needs no setting
# and a MinIO configuration is not contradicted by one.
WORKDIR /var/lib/refstore
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["refstore"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
