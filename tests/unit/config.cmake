vigil_test(test_config LABEL unit TIMEOUT 30 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_config.c)
