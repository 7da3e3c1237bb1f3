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
CMD exec node /opt/dispatch/server.js --source /function --handler "$HANDLER" \
    --max-log-bytes "${MAX_LOG_BYTES:-1048576}" \
    --concurrency "${CONCURRENCY:-1}" --http
