# A Dispatch image for Java: the base image (a JDK) plus its system packages, the function server
# compiled once for all the image's functions, and its pom.xml's runtime dependencies, which Maven
# copies into /image/lib (Maven's own repository is not kept).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG SYSTEM_PACKAGES_FILE=system-packages.txt
ARG PACKAGES_FILE=packages.txt
COPY install-system-packages.sh /image/
COPY ${SYSTEM_PACKAGES_FILE} /image/system-packages.txt
RUN sh /image/install-system-packages.sh /image/system-packages.txt
COPY runtime/ /opt/dispatch/
RUN mkdir -p /opt/dispatch/classes \
 && javac -J-XX:+UseSerialGC -J-XX:TieredStopAtLevel=1 -d /opt/dispatch/classes -encoding UTF-8 -nowarn \
      -XDstringConcat=inline /opt/dispatch/java/*.java
COPY ${PACKAGES_FILE} /image/pom.xml.txt
RUN mkdir -p /image/lib \
 && if grep -q '[^[:space:]]' /image/pom.xml.txt; then \
      command -v mvn >/dev/null \
        || { echo "mvn is not in the base image: add Maven to it to install the pom.xml's dependencies" >&2; exit 1; }; \
      cp /image/pom.xml.txt /image/pom.xml \
      && mvn -B -U -ntp -Dstyle.color=never -f /image/pom.xml \
           org.apache.maven.plugins:maven-dependency-plugin:3.5.0:copy-dependencies \
           -DoutputDirectory=/image/lib -DincludeScope=runtime \
      && rm -rf /root/.m2; \
    fi
