# A Dispatch image for Python: the base image plus its system packages and its pip requirements.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG SYSTEM_PACKAGES_FILE=system-packages.txt
ARG PACKAGES_FILE=packages.txt
COPY install-system-packages.sh /image/
COPY ${SYSTEM_PACKAGES_FILE} /image/system-packages.txt
COPY ${PACKAGES_FILE} /image/requirements.txt
RUN sh /image/install-system-packages.sh /image/system-packages.txt
RUN mkdir -p /image/site-packages \
 && if grep -q '[^[:space:]]' /image/requirements.txt; then \
      python3 -m pip --version >/dev/null 2>&1 \
        || { echo "pip is not in the base image: add python3-pip to it to install requirements" >&2; exit 1; }; \
      python3 -m pip install --no-cache-dir --disable-pip-version-check --no-input --no-warn-script-location \
        --progress-bar off --target /image/site-packages -r /image/requirements.txt; \
    fi
