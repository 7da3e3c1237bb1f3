# A Dispatch function image for Python: the image, the function server and the function's source,
# its handler checked at build time.
ARG IMAGE
FROM ${IMAGE}
ARG HANDLER=
COPY runtime/ /opt/dispatch/
COPY function/ /function/
ENV HANDLER=${HANDLER} PYTHONPATH=/opt/dispatch PYTHONUNBUFFERED=1 PYTHONIOENCODING=utf-8 PYTHONDONTWRITEBYTECODE=1 \
    LANG=C.UTF-8 LC_ALL=C.UTF-8
WORKDIR /
RUN python3 -m dispatch.runtimes.python3 --source /function --handler "$HANDLER" --library /image/site-packages --check
CMD exec python3 -m dispatch.runtimes.python3 --source /function --handler "$HANDLER" \
    --library /image/site-packages --max-log-bytes "${MAX_LOG_BYTES:-1048576}" \
    --concurrency "${CONCURRENCY:-1}" \
    --max-output-bytes "${MAX_OUTPUT_BYTES:-6291456}" --processes "${PROCESSES:-64}" --http
