# The worker's dispatch (consumer/work.c + common/offsets.c + chan) hammered
# from several threads. Labelled kit as well as unit, so scripts/test runs it
# under ThreadSanitizer (ctest -L kit in build-tsan).
vigil_test(dispatch_tsan LABEL unit TIMEOUT 60
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_dispatch_tsan.c)
set_tests_properties(dispatch_tsan PROPERTIES LABELS "unit;kit")
