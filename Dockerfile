# The Dispatch server: `docker build -t dispatch-server .`, then
# `docker run -p 8080:8080 -p 8081:8081 dispatch-server`. Every setting comes from a DISPATCH_* variable
# (DISPATCH_BUS, DISPATCH_STORE, DISPATCH_ROLE…) or a flag after the image name
# (`docker run dispatch-server server --role handlers`). See "Server image" in README.md.
#
# BASE is any Debian-like image with python3 (3.11.4 or later: Debian bookworm's own 3.11.2 lacks the
# tarfile filters that unpack function sources) and its pip on PATH: the builder stages use its pip,
# the final stage its interpreter. The default carries no Node.js, so Node.js functions need
# --runtime docker or kubernetes there, or a BASE that has node (Debian's nodejs adds about 90 MB).
ARG BASE=python:3.11-slim-bookworm

# The dependencies, from pyproject.toml alone: a change to the code reuses this stage and its layer.
FROM ${BASE} AS dependencies
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# --without-pip and the base's own pip: Debian's python3 has no ensurepip. The venv gets a pip of its
# own, which the local runtime runs for the requirements.txt of function images.
RUN python3 -c "import tarfile; tarfile.data_filter" \
 || { echo "BASE's python3 lacks tarfile filters: use Python 3.11.4 or later" >&2; exit 1; } \
 && python3 -m venv --without-pip /opt/dispatch \
 && python3 -m pip --python /opt/dispatch/bin/python install pip
COPY pyproject.toml /src/
RUN cd /src \
 && /opt/dispatch/bin/python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
 && /opt/dispatch/bin/pip install -r requirements.txt \
 && /opt/dispatch/bin/python -c "import sysconfig; print(sysconfig.get_path('purelib'))" > purelib \
 && echo /opt/dispatch/app > "$(cat purelib)/dispatch-app.pth"

# Dispatch itself, as a wheel installed into /opt/dispatch/app (on the venv's path by the .pth above);
# charts/ is the Helm chart that dispatch/charts links to, shipped in the package.
FROM dependencies AS package
COPY README.md LICENSE /src/
COPY charts /src/charts
COPY dispatch /src/dispatch
RUN /opt/dispatch/bin/pip wheel --no-deps --wheel-dir /wheels /src \
 && /opt/dispatch/bin/pip install --no-deps --target /opt/dispatch/app /wheels/*.whl \
 && /opt/dispatch/app/bin/dispatch --help > /dev/null

FROM ${BASE}
# A numeric uid, so that runAsNonRoot can tell without reading /etc/passwd; its home holds the data.
RUN groupadd --system --gid 10001 dispatch \
 && useradd --system --uid 10001 --gid 10001 --no-log-init --home-dir /var/lib/dispatch \
      --shell /usr/sbin/nologin dispatch \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/dispatch
COPY --from=dependencies /opt/dispatch /opt/dispatch
COPY --from=package /opt/dispatch/app /opt/dispatch/app
ENV PATH=/opt/dispatch/app/bin:/opt/dispatch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DISPATCH_HOST=0.0.0.0 \
    DISPATCH_DATA_DIR=/var/lib/dispatch
USER 10001:10001
WORKDIR /var/lib/dispatch
EXPOSE 8080 8081
# /healthz answers 200 while the store answers. A --role handlers process serves no HTTP: for it the
# check passes. It reads the role, address and port from DISPATCH_ROLE, DISPATCH_HOST and
# DISPATCH_PORT, not from flags: set those by environment.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as r; e = os.environ.get; h = e('DISPATCH_HOST') or '0.0.0.0'; h = {'0.0.0.0': '127.0.0.1', '::': '::1'}.get(h, h); h = f'[{h}]' if ':' in h else h; e('DISPATCH_ROLE') == 'handlers' or r.urlopen(f'http://{h}:' + e('DISPATCH_PORT', '8080') + '/healthz', timeout=4)"]
ENTRYPOINT ["dispatch"]
CMD ["server"]
