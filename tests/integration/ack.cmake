# Acknowledging from where the researcher is (issue #14): the signed link
# (scanner GETs, GET+POST, the tampering matrix, rotation, idempotent pages)
# and the SMS reply through the SMS double's inbound endpoint.
set(_py /usr/bin/python3)
set(_t ${CMAKE_CURRENT_SOURCE_DIR}/integration)
vigil_script_test(ack_links LABEL "integration;security" TIMEOUT 180
  COMMAND ${_py} ${_t}/test_ack.py links)
vigil_script_test(ack_sms LABEL "integration;security" TIMEOUT 180
  COMMAND ${_py} ${_t}/test_ack.py sms)
# vigil console's operations endpoints and route table over real HTTP.
vigil_script_test(console_ops LABEL integration TIMEOUT 120
  COMMAND ${_py} ${_t}/test_console_ops.py)
