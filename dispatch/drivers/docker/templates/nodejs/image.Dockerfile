# A Dispatch image for Node.js: the base image plus its system packages and its package.json.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG SYSTEM_PACKAGES_FILE=system-packages.txt
ARG PACKAGES_FILE=packages.txt
COPY install-system-packages.sh /image/
COPY ${SYSTEM_PACKAGES_FILE} /image/system-packages.txt
COPY ${PACKAGES_FILE} /image/package.json.txt
RUN sh /image/install-system-packages.sh /image/system-packages.txt
RUN mkdir -p /image/node_modules \
 && if grep -q '[^[:space:]]' /image/package.json.txt; then \
      command -v npm >/dev/null \
        || { echo "npm is not in the base image: add it to install the package.json dependencies" >&2; exit 1; }; \
      cp /image/package.json.txt /image/package.json && cd /image \
      && npm install --no-audit --no-fund --no-update-notifier; \
    fi
