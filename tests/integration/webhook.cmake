# The webhook channel (issue #14): signatures verified by the independent
# standardwebhooks package (scripts/setup installs it into .deps/py), a
# receiver that fails twice then accepts, two notifier replicas, routing;
# and over TLS: the configured CA accepted, another CA's certificate refused.
vigil_script_test(webhook_delivery LABEL "integration;security" TIMEOUT 180
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_webhook.py retry)
vigil_script_test(webhook_https LABEL "integration;security" TIMEOUT 180
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/test_webhook.py https)
