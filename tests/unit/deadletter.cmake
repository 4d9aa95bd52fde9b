# The publisher's failure classes and the dead-letter steps (whole,
# truncated, stall, abandoned at close) on librdkafka's mock cluster.
vigil_test(test_deadletter LABEL unit TIMEOUT 90
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_deadletter.c)
