#!/usr/bin/env bash
# Resolves Apache Kafka broker jars from Maven Central for the Kafka trigger tests
# (tests/kafka/broker.ts starts a KRaft broker from them). One folder per version:
#   ${F2S_CACHE:-$HOME/.cache/f2s}/kafka-<version>/libs/*.jar
# A no-op once a version's folder is complete. Java 17+ and Maven come from Debian's
# packages when missing, so nothing is downloaded outside the registries.
#
#   F2S_KAFKA_VERSIONS="3.9.2 4.2.0" bash tests/deps/kafka.sh
set -euo pipefail

CACHE=${F2S_CACHE:-$HOME/.cache/f2s}
# Keep in step with KAFKA_VERSIONS in tests/kafka/broker.ts.
VERSIONS=${F2S_KAFKA_VERSIONS:-"3.9.2 4.2.0"}
# Both 3.9 and 4.x log through slf4j 1.7; slf4j-simple writes to a file the harness names.
SLF4J_VERSION=1.7.36

missing=()
for v in $VERSIONS; do
  [ -e "$CACHE/kafka-$v/.complete" ] || missing+=("$v")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
java_major() {
  java -version 2>&1 | sed -nE 's/.*version "([0-9]+).*/\1/p' | head -n 1
}
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ] || ! command -v mvn >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q -o DPkg::Lock::Timeout=600
  $SUDO apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 \
    openjdk-17-jdk-headless maven
fi

for v in "${missing[@]}"; do
  dir="$CACHE/kafka-$v"
  echo "resolving Apache Kafka $v into $dir/libs"
  rm -rf "$dir"
  mkdir -p "$dir"
  cat >"$dir/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>f2s.tests</groupId>
  <artifactId>kafka-broker-$v</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$v</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-simple</artifactId>
      <version>$SLF4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
  # Retried once: a registry hiccup should not fail a CI run that has 90 minutes.
  resolve() {
    mvn -B -q -Dstyle.color=never -f "$dir/pom.xml" org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$dir/libs"
  }
  resolve || { sleep 5; resolve; }
  if ! ls "$dir/libs" | grep -q "^kafka_2.13-$v.jar$"; then
    echo "kafka.sh: kafka_2.13-$v.jar missing after resolution" >&2
    exit 1
  fi
  touch "$dir/.complete"
  echo "Apache Kafka $v: $(ls "$dir/libs" | wc -l) jars"
done
