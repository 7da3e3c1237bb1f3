# A Dispatch function image for Java: the image, the function's source compiled and its handler
# checked at build time. The image compiled the function server; one whose sources differ from
# this platform's (an image built by an older version) is compiled again here.
ARG IMAGE
FROM ${IMAGE}
ARG HANDLER=
COPY runtime/ /opt/dispatch/current/
COPY function/ /function/
ENV HANDLER=${HANDLER} LANG=C.UTF-8 LC_ALL=C.UTF-8
WORKDIR /
RUN if ! diff -r -q /opt/dispatch/current/java /opt/dispatch/java >/dev/null 2>&1; then \
      rm -rf /opt/dispatch/java /opt/dispatch/classes && mv /opt/dispatch/current/java /opt/dispatch/java \
      && mkdir /opt/dispatch/classes \
      && javac -J-XX:+UseSerialGC -J-XX:TieredStopAtLevel=1 -d /opt/dispatch/classes -encoding UTF-8 -nowarn \
           -XDstringConcat=inline /opt/dispatch/java/*.java; \
    fi \
 && rm -rf /opt/dispatch/current \
 && java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp /opt/dispatch/classes dispatch.runtime.Server \
      --source /function --handler "$HANDLER" --classpath '/image/lib/*' --compile --check
CMD exec java -XX:+UseSerialGC -XX:MaxRAMPercentage=75 -cp /opt/dispatch/classes dispatch.runtime.Server \
    --source /function --handler "$HANDLER" --classpath '/image/lib/*' \
    --max-log-bytes "${MAX_LOG_BYTES:-1048576}" --concurrency "${CONCURRENCY:-1}" \
    --max-output-bytes "${MAX_OUTPUT_BYTES:-6291456}" --processes "${PROCESSES:-64}" --http
