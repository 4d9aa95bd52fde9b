# The local services harness (scripts/services) and what it promises.
# Both need `eval "$(scripts/services up)"` first (label integration).

# Debian's librdkafka 2.0.2 against the Kafka 4.1 broker: admin API,
# idempotent lz4/zstd producers, a two-member consumer group, commits.
vigil_test(kafka_compat LABEL integration TIMEOUT 120
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_kafka_compat.c)

# A second, independent `services up` next to the main one: every endpoint
# answers, and `down` leaves no process and no folder behind.
vigil_script_test(services_lifecycle LABEL integration TIMEOUT 180
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_services_lifecycle.sh)
