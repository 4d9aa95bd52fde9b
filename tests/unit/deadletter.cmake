# The publisher's failure classes and the dead-letter steps (whole,
# truncated, stall, abandoned at close) on librdkafka's mock cluster.
vigil_test(test_deadletter LABEL unit TIMEOUT 90
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_deadletter.c)
# A stop that hangs ends by itself at its deadline with exit status 4
# (group_arm_exit); one that finishes in time ends normally.
vigil_test(test_group_exit LABEL unit TIMEOUT 60
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_group_exit.c)
