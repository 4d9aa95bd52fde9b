# Issue #12: no message may stall a partition. Records of 1,000,000 bytes,
# 1.5 MiB and 10 MiB (incompressible) among valid ones in a topic that takes
# 20 MB records; dead letters whole or truncated with their SHA-256; the
# dead-letter topic missing under dlq_policy skip and stall; SIGTERM within
# the grace. tests/integration/test_dlq_large.py says what each asserts.
set(_py /usr/bin/python3)
set(_t ${CMAKE_CURRENT_SOURCE_DIR}/integration)
vigil_script_test(dlq_large_worker LABEL integration TIMEOUT 120
  COMMAND ${_py} ${_t}/test_dlq_large.py worker)
vigil_script_test(dlq_missing_skip LABEL integration TIMEOUT 120
  COMMAND ${_py} ${_t}/test_dlq_large.py worker-skip)
vigil_script_test(dlq_missing_stall LABEL integration TIMEOUT 180
  COMMAND ${_py} ${_t}/test_dlq_large.py worker-stall)
vigil_script_test(dlq_large_notifier LABEL integration TIMEOUT 120
  COMMAND ${_py} ${_t}/test_dlq_large.py notifier)
vigil_script_test(dlq_missing_notifier LABEL integration TIMEOUT 120
  COMMAND ${_py} ${_t}/test_dlq_large.py notifier-skip)
