# The notifier's pure parts (alerting/): MIME formatting and RFC 2047
# subjects, notice texts, routing rules over an in-memory directory,
# backoff, retry classification and the per-recipient rate limit. No
# services.
vigil_test(test_notifier_mime LABEL unit TIMEOUT 30
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_notifier_mime.c)
vigil_test(test_notifier_route LABEL unit TIMEOUT 30
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_notifier_route.c)
vigil_test(test_notifier_retry LABEL unit TIMEOUT 30
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_notifier_retry.c)
