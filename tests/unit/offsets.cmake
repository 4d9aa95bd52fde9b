vigil_test(test_offsets LABEL unit TIMEOUT 30 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_offsets.c)

# The consumer-group engine with a test role on librdkafka's mock cluster:
# a full role stashes and pauses (never drops), and a partition revoked
# while paused is read again when it comes back.
vigil_test(test_group LABEL unit TIMEOUT 240
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_group.c LIBS vigil_testkafka)
