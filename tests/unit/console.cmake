# The console's route table (console/route.c).
vigil_test(test_console_route LABEL unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_console_route.c)
# The console's request parsers, tokens, Argon2id passwords and limiter.
vigil_test(test_console_auth_unit LABEL unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_console_auth_unit.c
  LIBS vigil_console)
# Acknowledgement links, webhook signatures (Standard Webhooks' reference
# vector), the message additions and the inbound SMS parsers.
vigil_test(test_acklink LABEL unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_acklink.c)
# The JSON writer of the alert queue's pages (console/jsonw.c) against
# jansson's reader.
vigil_test(test_jsonw LABEL unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_jsonw.c)
