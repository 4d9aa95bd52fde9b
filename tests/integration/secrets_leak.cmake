# Secrets from files never reach logs or /metrics, nor do raw subject ids
# (issue 7, item 5): a short worker + notifier run against the services of
# scripts/services, at log level debug. Needs the services (like integration).
vigil_script_test(secrets_leak LABEL security TIMEOUT 120
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_secrets_leak.py)
