# A Dispatch function image for Node.js: the image, the function server and the function's source,
# its handler checked at build time.
ARG IMAGE
FROM ${IMAGE}
ARG HANDLER=
COPY runtime/ /opt/dispatch/
COPY function/ /function/
ENV HANDLER=${HANDLER} NODE_PATH=/image/node_modules LANG=C.UTF-8 LC_ALL=C.UTF-8
WORKDIR /
RUN node /opt/dispatch/server.js --source /function --handler "$HANDLER" --check
# V8's heap as large as the container's memory (MEMORY_MB), as on the local runtime: by default it
# would stop at a fraction of it and abort, not name the limit.
CMD exec node ${MEMORY_MB:+--max-old-space-size=$MEMORY_MB} /opt/dispatch/server.js --source /function --handler "$HANDLER" \
    --max-log-bytes "${MAX_LOG_BYTES:-1048576}" \
    --concurrency "${CONCURRENCY:-1}" \
    --max-output-bytes "${MAX_OUTPUT_BYTES:-6291456}" --processes "${PROCESSES:-64}" --http
