# vigil mllp against the real Kafka broker and PostgreSQL (issue 16), with
# Debian's python3-hl7 as the independent sender and ACK checker:
#   mllp_accept       vendor-shaped messages, ACK codes and ERR segments,
#                     Kafka contents, dead letters, resends, hot reload of the
#                     facility mapping, enrolment by NOTIFY, produce --format
#                     hl7, a real worker storing each observation once, and a
#                     PHI sweep of Kafka, PostgreSQL, the DLQ and the logs
#   mllp_connections  200 concurrent connections, order per connection, the
#                     connection limit and the idle timeout
vigil_script_test(mllp_accept LABEL integration TIMEOUT 180
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_mllp.py accept)
vigil_script_test(mllp_connections LABEL integration TIMEOUT 180
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_mllp.py connections)
