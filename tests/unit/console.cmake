# The console's route table (console/route.c).
vigil_test(test_console_route LABEL unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_console_route.c)
