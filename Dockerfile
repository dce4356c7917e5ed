# One image for every Conveyor process: the extract and load worker pools, beat and flower.
# The compose file (or any orchestrator) picks the process with its command; the default is
# the load worker. Configuration and secrets come from the environment at run time, never
# from the image (.dockerignore keeps .env out of the build context).
#
# BASE_IMAGE is what users pull, python:3.11-slim. Where no image registry answers,
# deploy/local-images.sh builds a stand-in from Debian's packages (conveyor-local/python:3.11)
# and docker-compose.yml passes it from CONVEYOR_BASE_IMAGE; the rest of this file is the same.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Never run as root: a task that goes wrong cannot change the installed code. /app is the
# only writable place (beat's local schedule file if no Redis scheduler is configured, or a
# SQLite warehouse under data/).
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin conveyor \
    && mkdir -p /app/data \
    && chown -R conveyor:conveyor /app

WORKDIR /src

# Dependencies first, read from pyproject.toml alone, so that editing the code does not
# reinstall them: this layer is rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['monitor']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself, a regular (non-editable) install into site-packages. Its dependencies
# are already there, so this layer only builds and installs Conveyor's own packages.
COPY README.md ./
COPY app ./app
COPY broker ./broker
COPY workers ./workers
COPY sandbox ./sandbox
# hadolint ignore=DL3013
RUN pip install '.[monitor]' \
    && rm -rf build ./*.egg-info

WORKDIR /app
# Numeric, so that an orchestrator can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001

# Flower's port, when this image runs flower.
EXPOSE 5555

CMD ["celery", "-A", "workers", "worker", "-Q", "load", "-n", "load@%h", "-l", "info"]
