# The distributor image: the `distributor` command, run as an unprivileged user.
#   docker build -t distributor .
#   docker run --rm --env-file worker.env distributor worker -c 4
# docker-compose.yml builds it for the migrate, worker and beat services.
# Nothing is downloaded but the base image and PyPI packages (no syntax directive: that would
# fetch a BuildKit frontend image).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Dependencies first, from pyproject.toml alone, so that a code change does not reinstall them.
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project itself (the wheel carries the templates, the migrations and the sample issue).
COPY README.md ./
COPY templates ./templates
COPY subscribers ./subscribers
COPY distributor ./distributor
RUN pip install . && rm -rf /src

# Unprivileged; its home is the working directory, where `distributor beat` keeps its
# celerybeat-schedule file.
RUN groupadd --system --gid 10001 distributor \
    && useradd --system --uid 10001 --gid distributor --create-home --home-dir /home/distributor \
        --shell /usr/sbin/nologin distributor
USER 10001:10001
WORKDIR /home/distributor

ENTRYPOINT ["distributor"]
CMD ["--help"]
