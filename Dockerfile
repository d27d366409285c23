# envbranch image: one image for every process; the compose file picks the
# component with `serve <component>` (e.g. `serve command-processor`).
#
#   docker build -t envbranch .
#   docker run --rm envbranch --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

# Only what the wheel needs (no .dockerignore: tests, bench and build
# leftovers such as *.egg-info stay out of the image this way).
COPY pyproject.toml README.md ./
COPY domain/ domain/
COPY contract/ contract/
COPY application/ application/
COPY consumers/ consumers/
COPY projections/ projections/
COPY envbranch/ envbranch/

# The postgres extra adds psycopg for ENVBRANCH_EVENT_STORE=postgres.
RUN pip install --no-cache-dir ".[postgres]" \
    && rm -rf /src

# Run as an unprivileged user. Its home is the working directory, so the
# default data directory (.envbranch, used only by the sqlite event store)
# is writable.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin envbranch
USER envbranch
WORKDIR /home/envbranch

ENTRYPOINT ["envbranch"]
CMD ["--help"]
