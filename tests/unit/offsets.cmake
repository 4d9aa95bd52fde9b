vigil_test(test_offsets LABEL unit TIMEOUT 30 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_offsets.c)
