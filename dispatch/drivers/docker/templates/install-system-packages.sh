#!/bin/sh
# Install the system packages listed in $1, one "name version" a line, with the base image's package
# manager (apt-get on Debian and Ubuntu, apk on Alpine). Nothing to install: nothing is run.
set -eu
list="$1"
grep -q '[^[:space:]]' "$list" || exit 0
if command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  # shellcheck disable=SC2046
  apt-get install -y --no-install-recommends $(awk 'NF { print $1 "=" $2 }' "$list")
  rm -rf /var/lib/apt/lists/*
elif command -v apk >/dev/null; then
  # shellcheck disable=SC2046
  apk add --no-cache $(awk 'NF { print $1 "=" $2 }' "$list")
else
  echo "the base image has neither apt-get nor apk: its system packages cannot be installed" >&2
  exit 1
fi
